"""The mempool admits signed transactions of this chain once, gossips them once, and forgets
them when a block carries them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.messages import SignedTx, TxKind
from consensus.types import Address, ChainId, Signature, Tokens
from node.mempool import Mempool, MempoolError
from tests.consensus.chain import (
    CHAIN,
    Chain,
    make_genesis_state,
    make_keys,
    sign_tx,
    with_forced_txs,
)

KEYS = make_keys(3)
RECIPIENT = Address(b"\x07" * 20)


def make_tx(nonce: int = 0) -> SignedTx:
    return sign_tx(KEYS[0], TxKind.TRANSFER, nonce, recipient=RECIPIENT, amount=Tokens(1))


def make_mempool(capacity: int = 10) -> tuple[Mempool, list[SignedTx]]:
    gossiped: list[SignedTx] = []
    return Mempool(CHAIN, gossiped.append, capacity), gossiped


def test_a_valid_transaction_is_admitted_and_gossiped_once() -> None:
    mempool, gossiped = make_mempool()
    tx = make_tx()
    assert mempool.add(tx) == tx.hash()
    assert mempool.add(tx) == tx.hash()
    assert mempool.reap() == (tx,)
    assert gossiped == [tx]


def test_a_badly_signed_transaction_is_refused_and_changes_nothing() -> None:
    mempool, gossiped = make_mempool()
    forged = SignedTx(make_tx().tx, Signature(bytes(64)))
    with pytest.raises(MempoolError, match="signature"):
        mempool.add(forged)
    assert len(mempool) == 0 and gossiped == []


def test_a_transaction_for_another_chain_is_refused() -> None:
    mempool, _ = make_mempool()
    tx = make_tx().tx
    other = replace(tx, chain_id=ChainId("other-chain"))
    signed = SignedTx(other, KEYS[0].sign(other.sign_bytes()))
    with pytest.raises(MempoolError, match="other-chain"):
        mempool.add(signed)


def test_a_full_mempool_refuses_new_transactions() -> None:
    mempool, _ = make_mempool(capacity=2)
    mempool.add(make_tx(0))
    mempool.add(make_tx(1))
    with pytest.raises(MempoolError, match="full"):
        mempool.add(make_tx(2))
    assert len(mempool) == 2


def test_transactions_a_block_carried_are_forgotten_and_the_rest_stay_in_order() -> None:
    mempool, _ = make_mempool()
    txs = [make_tx(n) for n in range(3)]
    for tx in txs:
        mempool.add(tx)
    chain = Chain(make_genesis_state(KEYS, accounts=[(KEYS[0], 100)]), KEYS)
    mempool.update(with_forced_txs(chain.next_block(), (txs[1],)))
    assert mempool.reap() == (txs[0], txs[2])
    assert txs[1].hash() not in mempool
