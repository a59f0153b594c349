"""The mempool: signed transactions waiting for a block, admitted CheckTx-style.

A transaction is admitted only if it applies to the last committed state after the transactions
already admitted (``consensus.state.CheckState``): a wrong nonce, a balance too small or a bad
stake is refused at once with the state transition's reason. After each block the transactions
it carried are dropped and the rest are checked again against the new state; those that no
longer apply are evicted. The pool is bounded, and so is each sender's share of it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from learnchain.consensus.crypto import SignatureVerifier, compute_address
from learnchain.consensus.messages import Block, SignedTx
from learnchain.consensus.state import ChainState, CheckState, InvalidTx
from learnchain.consensus.types import Address, Hash

MAX_MEMPOOL = 10_000
MAX_PER_SENDER = 64  # transactions one sender may have waiting
log = logging.getLogger("learnchain.mempool")


class MempoolError(ValueError):
    """A transaction the mempool refuses, with the reason; nothing was added."""


class Mempool:
    """Admitted transactions by hash, in arrival order."""

    def __init__(
        self,
        state: ChainState,
        verifier: SignatureVerifier,
        gossip: Callable[[SignedTx], None],
        capacity: int = MAX_MEMPOOL,
        per_sender: int = MAX_PER_SENDER,
    ) -> None:
        self._verifier = verifier
        self._gossip = gossip
        self._capacity = capacity
        self._per_sender = per_sender
        self._txs: OrderedDict[Hash, SignedTx] = OrderedDict()
        self._by_sender: dict[Address, int] = {}
        self._check = CheckState(state, verifier)

    def add(self, signed: SignedTx) -> Hash:
        """Admit a transaction (signature first, then the state transition's checks) and
        gossip it; its hash. MempoolError says why it was refused."""
        tx = signed.tx
        if not self._verifier.is_valid(tx.sender, tx.sign_bytes(), signed.signature):
            raise MempoolError("transaction signature is invalid")
        tx_hash = signed.hash()
        if tx_hash in self._txs:
            return tx_hash
        if len(self._txs) >= self._capacity:
            raise MempoolError("mempool is full")
        sender = compute_address(tx.sender)
        if self._by_sender.get(sender, 0) >= self._per_sender:
            raise MempoolError(f"sender has {self._per_sender} transactions waiting already")
        try:
            self._check.apply(signed)
        except InvalidTx as error:
            raise MempoolError(str(error)) from None
        self._keep(tx_hash, signed, sender)
        self._gossip(signed)
        return tx_hash

    def reap(self) -> tuple[SignedTx, ...]:
        """Every waiting transaction, oldest first, for a proposal."""
        return tuple(self._txs.values())

    def update(self, block: Block, state: ChainState) -> int:
        """A block was committed, giving ``state``: forget its transactions and check the rest
        against ``state`` again; how many were evicted."""
        for tx in block.txs:
            self._txs.pop(tx.hash(), None)
        waiting, self._txs, self._by_sender = self._txs, OrderedDict(), {}
        self._check = CheckState(state, self._verifier)
        evicted = 0
        for tx_hash, signed in waiting.items():
            try:
                self._check.apply(signed)
            except InvalidTx as error:
                evicted += 1
                log.debug("evicted transaction %s: %s", tx_hash.hex()[:12], error)
                continue
            self._keep(tx_hash, signed, compute_address(signed.tx.sender))
        return evicted

    def _keep(self, tx_hash: Hash, signed: SignedTx, sender: Address) -> None:
        self._txs[tx_hash] = signed
        self._by_sender[sender] = self._by_sender.get(sender, 0) + 1

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs
