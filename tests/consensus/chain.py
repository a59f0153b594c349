"""Small builders for consensus tests: keys, genesis, signed transactions, committed blocks."""

from __future__ import annotations

from dataclasses import replace

from learnchain.consensus.crypto import PrivateKey, SignatureVerifier, compute_hash
from learnchain.consensus.messages import (
    Block,
    Commit,
    CommitSig,
    Contribution,
    SignedTx,
    Tx,
    TxKind,
    Vote,
)
from learnchain.consensus.params import ChainParams, Genesis, GenesisValidator
from learnchain.consensus.simulation import compute_key
from learnchain.consensus.state import ChainState, build_block, compute_genesis_state, process_block
from learnchain.consensus.types import (
    ZERO_HASH,
    Address,
    ChainId,
    Hash,
    Nonce,
    Round,
    Signature,
    Stake,
    TimeMs,
    Tokens,
    VoteType,
)

CHAIN = ChainId("test-chain")
MODEL = compute_hash(b"model-0")


def make_keys(count: int, seed: int = 0) -> list[PrivateKey]:
    """Deterministic keys."""
    return [compute_key(seed, i) for i in range(count)]


def make_genesis_state(
    validators: list[PrivateKey],
    stakes: list[int] | None = None,
    accounts: list[tuple[PrivateKey, int]] | None = None,
    params: ChainParams | None = None,
) -> ChainState:
    """A genesis state with ``validators`` bonded and ``accounts`` funded."""
    stakes = stakes or [100] * len(validators)
    genesis = Genesis(
        chain_id=CHAIN,
        params=params or ChainParams(),
        validators=tuple(
            GenesisValidator(k.public_key, Stake(s), f"127.0.0.1:{26000 + i}")
            for i, (k, s) in enumerate(zip(validators, stakes, strict=True))
        ),
        accounts=tuple((k.address, Tokens(b)) for k, b in (accounts or [])),
        initial_model_hash=MODEL,
        app_hash=ZERO_HASH,
    )
    return compute_genesis_state(genesis)


def sign_tx(key: PrivateKey, kind: TxKind, nonce: int, **fields: object) -> SignedTx:
    """A signed transaction from ``key``."""
    tx = Tx(CHAIN, kind, key.public_key, Nonce(nonce), **fields)  # type: ignore[arg-type]
    return SignedTx(tx, Signature(key.sign(tx.sign_bytes())))


def sign_commit(
    state: ChainState,
    block: Block,
    keys: list[PrivateKey],
    round_: int = 0,
    scores: dict[Address, int] | None = None,
    times: dict[Address, int] | None = None,
    values: dict[Address, tuple[int, ...]] | None = None,
) -> Commit:
    """A commit for ``block`` signed by those of ``keys`` that validate the block's height, each
    precommit carrying its signer's score from ``scores`` and contribution values from
    ``values`` (the vote extension) and its time from ``times``, if any."""
    sigs = []
    for key in sorted(keys, key=lambda k: k.address):
        if state.validators.get_validator(key.address) is None:
            continue
        score = (scores or {}).get(key.address)
        time_ms = TimeMs((times or {}).get(key.address, 0))
        valued = (values or {}).get(key.address, ())
        vote = Vote(
            CHAIN,
            VoteType.PRECOMMIT,
            block.height,
            Round(round_),
            block.hash,
            key.address,
            score,
            time_ms,
            valued,
        )
        signature = Signature(key.sign(vote.sign_bytes()))
        sigs.append(CommitSig(key.address, signature, score, time_ms, valued))
    return Commit(block.height, Round(round_), block.hash, tuple(sigs))


class Chain:
    """A chain driven block by block, with every validator signing every commit."""

    def __init__(self, state: ChainState, keys: list[PrivateKey]) -> None:
        self.state = state
        self.keys = keys
        self.signers = keys
        self.verifier = SignatureVerifier()
        self.last_commit: Commit | None = None

    def next_block(
        self, txs: list[SignedTx] | None = None, model_hash: Hash | None = None, **kw: object
    ) -> Block:
        """Build (but do not apply) the next block, proposed by the round-0 proposer."""
        block, _ = build_block(
            self.state,
            self.state.validators.proposer,
            txs or [],
            kw.pop("evidence", ()),  # type: ignore[arg-type]
            self.last_commit,
            model_hash or self.state.model_hash,
            kw.pop("contributions", ()),  # type: ignore[arg-type]
            self.verifier,
            kw.pop("rejections", ()),  # type: ignore[arg-type]
            kw.pop("screened", ()),  # type: ignore[arg-type]
        )
        return block

    def commit(
        self,
        block: Block,
        signers: list[PrivateKey] | None = None,
        scores: dict[Address, int] | None = None,
        times: dict[Address, int] | None = None,
        round_: int = 0,
        values: dict[Address, tuple[int, ...]] | None = None,
    ) -> ChainState:
        """Apply ``block`` as the state transition would, and sign its commit at ``round_``
        (with scores, contribution values and precommit times)."""
        new_state = process_block(self.state, block, self.verifier)
        self.last_commit = sign_commit(
            self.state, block, signers or self.signers, round_, scores, times, values
        )
        self.state = new_state
        return new_state

    def advance(self, txs: list[SignedTx] | None = None, **kw: object) -> ChainState:
        """Build and commit the next block."""
        return self.commit(self.next_block(txs, **kw))  # type: ignore[arg-type]


def with_params(**changes: object) -> ChainParams:
    """Default params with ``changes``."""
    return replace(ChainParams(), **changes)  # type: ignore[arg-type]


def with_forced_txs(block: Block, txs: tuple[SignedTx, ...]) -> Block:
    """``block`` carrying ``txs`` and a matching txs root (only the txs themselves are wrong)."""
    from learnchain.consensus.messages import compute_txs_root

    header = replace(block.header, txs_root=compute_txs_root(txs))
    return replace(block, header=header, txs=txs)


def contribute(chain: Chain, keys: list, samples: int = 10) -> tuple[Contribution, ...]:  # type: ignore[type-arg]
    """Signed contributions by ``keys`` to the model of ``chain``'s state."""
    height = chain.state.learning.model_height
    made = []
    for key in keys:
        unsigned = Contribution(
            CHAIN, height, key.address, compute_hash(key.address), samples, Signature(b"")
        )
        made.append(replace(unsigned, signature=Signature(key.sign(unsigned.sign_bytes()))))
    return tuple(made)
