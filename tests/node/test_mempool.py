"""The mempool admits a transaction only if it applies to the committed state after those
already admitted (CheckTx), says why at once when it does not, gossips it once, bounds each
sender's share, and after every block drops what the block carried and evicts what no longer
applies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier
from learnchain.consensus.messages import Block, SignedTx, TxKind
from learnchain.consensus.state import ChainState
from learnchain.consensus.types import Address, ChainId, Signature, Tokens
from learnchain.node.chain.mempool import Mempool, MempoolError
from tests.consensus.chain import Chain, make_genesis_state, make_keys, sign_tx

KEYS = make_keys(3)
USER, OTHER = make_keys(2, seed=9)
RECIPIENT = Address(b"\x07" * 20)


def transfer(nonce: int, amount: int = 1, key: PrivateKey = USER) -> SignedTx:
    return sign_tx(key, TxKind.TRANSFER, nonce, recipient=RECIPIENT, amount=Tokens(amount))


def make_chain() -> Chain:
    return Chain(make_genesis_state(KEYS, accounts=[(USER, 100), (OTHER, 100)]), KEYS)


def commit(chain: Chain, txs: list[SignedTx]) -> tuple[Block, ChainState]:
    block = chain.next_block(txs)
    assert block.txs == tuple(txs)
    return block, chain.commit(block)


def make_mempool(
    chain: Chain, capacity: int = 10, per_sender: int = 10
) -> tuple[Mempool, list[SignedTx]]:
    gossiped: list[SignedTx] = []
    mempool = Mempool(chain.state, SignatureVerifier(), gossiped.append, capacity, per_sender)
    return mempool, gossiped


def test_a_valid_transaction_is_admitted_and_gossiped_once() -> None:
    mempool, gossiped = make_mempool(make_chain())
    tx = transfer(0)
    assert mempool.add(tx) == tx.hash()
    assert mempool.add(tx) == tx.hash()
    assert mempool.reap() == (tx,) and gossiped == [tx]


def test_a_senders_transactions_are_admitted_in_nonce_order_only() -> None:
    mempool, _ = make_mempool(make_chain())
    with pytest.raises(MempoolError, match="nonce 1 is not the expected 0"):
        mempool.add(transfer(1))
    mempool.add(transfer(0))
    mempool.add(transfer(1))
    assert len(mempool) == 2


@pytest.mark.parametrize(
    ("tx", "error"),
    [
        (SignedTx(transfer(0).tx, Signature(bytes(64))), "signature is invalid"),
        (transfer(0, amount=1000), "cannot transfer 1000 from a balance of 100"),
        (transfer(3), "nonce 3 is not the expected 0"),
    ],
)
def test_a_transaction_that_would_not_apply_is_refused_with_the_reason(
    tx: SignedTx, error: str
) -> None:
    mempool, gossiped = make_mempool(make_chain())
    with pytest.raises(MempoolError, match=error):
        mempool.add(tx)
    assert len(mempool) == 0 and gossiped == []


def test_a_transaction_for_another_chain_is_refused() -> None:
    mempool, _ = make_mempool(make_chain())
    other = replace(transfer(0).tx, chain_id=ChainId("other-chain"))
    with pytest.raises(MempoolError, match="other-chain"):
        mempool.add(SignedTx(other, USER.sign(other.sign_bytes())))


def test_the_pool_and_each_senders_share_of_it_are_bounded() -> None:
    mempool, _ = make_mempool(make_chain(), capacity=3, per_sender=2)
    mempool.add(transfer(0))
    mempool.add(transfer(1))
    with pytest.raises(MempoolError, match="2 transactions waiting"):
        mempool.add(transfer(2))
    mempool.add(transfer(0, key=OTHER))
    with pytest.raises(MempoolError, match="full"):
        mempool.add(transfer(1, key=OTHER))


def test_a_block_drops_what_it_carried_and_the_rest_wait_in_order() -> None:
    chain = make_chain()
    mempool, _ = make_mempool(chain)
    txs = [transfer(n) for n in range(3)]
    for tx in txs:
        mempool.add(tx)
    block, state = commit(chain, [txs[0]])
    assert mempool.update(block, state) == 0
    assert mempool.reap() == (txs[1], txs[2])


def test_transactions_a_block_made_invalid_are_evicted() -> None:
    chain = make_chain()
    mempool, _ = make_mempool(chain)
    mempool.add(transfer(0, amount=60))
    mempool.add(transfer(1, amount=30))
    spent_elsewhere = transfer(0, amount=90)  # another node's proposer saw this one first
    block, state = commit(chain, [spent_elsewhere])
    assert mempool.update(block, state) == 2
    assert len(mempool) == 0
    mempool.add(transfer(1, amount=10))
    assert len(mempool) == 1
