"""The mempool: signed transactions waiting for a block, bounded and gossiped on first sight."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from consensus.crypto import is_valid_signature
from consensus.messages import Block, SignedTx
from consensus.types import ChainId, Hash

MAX_MEMPOOL = 10_000


class MempoolError(ValueError):
    """A transaction the mempool refuses; nothing was added."""


class Mempool:
    """Transactions by hash, in arrival order."""

    def __init__(
        self,
        chain_id: ChainId,
        gossip: Callable[[SignedTx], None],
        capacity: int = MAX_MEMPOOL,
    ) -> None:
        self.chain_id = chain_id
        self._gossip = gossip
        self._capacity = capacity
        self._txs: OrderedDict[Hash, SignedTx] = OrderedDict()

    def add(self, signed: SignedTx) -> Hash:
        """Admit a transaction (its signature checked first) and gossip it; its hash."""
        tx = signed.tx
        if not is_valid_signature(tx.sender, tx.sign_bytes(), signed.signature):
            raise MempoolError("transaction signature is invalid")
        if tx.chain_id != self.chain_id:
            raise MempoolError(f"transaction is for chain {tx.chain_id!r}")
        tx_hash = signed.hash()
        if tx_hash in self._txs:
            return tx_hash
        if len(self._txs) >= self._capacity:
            raise MempoolError("mempool is full")
        self._txs[tx_hash] = signed
        self._gossip(signed)
        return tx_hash

    def reap(self) -> tuple[SignedTx, ...]:
        """Every waiting transaction, oldest first, for a proposal."""
        return tuple(self._txs.values())

    def update(self, block: Block) -> None:
        """Forget the transactions a committed block carried."""
        for tx in block.txs:
            self._txs.pop(tx.hash(), None)

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs
