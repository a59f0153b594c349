"""Votes, proposals, blocks, commits, contributions and evidence; their sign bytes and hashes."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from functools import cached_property

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.encoding import (
    encode_bytes,
    encode_int,
    encode_list,
    encode_optional_bytes,
    encode_str,
    encode_uint,
)
from learnchain.consensus.types import (
    ZERO_HASH,
    Address,
    ChainId,
    Hash,
    Height,
    Nonce,
    PublicKey,
    Round,
    Signature,
    TimeMs,
    Tokens,
    VoteType,
)
from learnchain.consensus.upgrades import UpgradePlan

_VOTE_DOMAIN = b"learnchain/vote/v1"
_PROPOSAL_DOMAIN = b"learnchain/proposal/v1"
_CONTRIBUTION_DOMAIN = b"learnchain/contribution/v1"
_TX_DOMAIN = b"learnchain/tx/v1"
_VOTE_FIELDS = struct.Struct(">BQq32s20s")
_SCORE = struct.Struct(">q")
_TIME = struct.Struct(">Q")
_COUNT = struct.Struct(">I")
MAX_SCORE = 10**15  # scores are micro-units of the task's metric (higher is better)
EMPTY_LIST_ROOT = compute_hash(encode_list(()))  # the root of an empty body list


def encode_score(score: int | None) -> bytes:
    """A vote extension's score: nothing when absent, so score-less votes sign the same bytes."""
    return b"" if score is None else b"\x01" + _SCORE.pack(score)


def encode_vote_time(time_ms: int) -> bytes:
    """A precommit's time: nothing when absent (prevotes, nil votes), so those sign as before."""
    return b"" if not time_ms else b"\x02" + _TIME.pack(time_ms)


def encode_values(values: tuple[int, ...]) -> bytes:
    """A vote extension's contribution values: nothing when absent, so votes without them sign
    the same bytes as before."""
    if not values:
        return b""
    return b"\x03" + _COUNT.pack(len(values)) + b"".join(_SCORE.pack(v) for v in values)


def encode_rejects(rejects: Hash | None) -> bytes:
    """A nil prevote's rejected proposal: nothing when absent, so other votes sign as before."""
    return b"" if rejects is None else b"\x04" + rejects


def compute_vote_sign_bytes(
    chain_id: ChainId,
    vote_type: VoteType,
    height: Height,
    round_: Round,
    block_hash: Hash | None,
    validator: Address,
    score: int | None = None,
    time_ms: int = 0,
    values: tuple[int, ...] = (),
    rejects: Hash | None = None,
) -> bytes:
    """What a validator signs for a vote: domain, chain id, type, height, round, block hash, its
    address and, on a precommit for a model update, its score of the model (the extension); on a
    precommit for a block, its clock's time (from which the next block's BFT time comes); on a
    precommit for an aggregate, its values of the contributions (§3.5); on a nil prevote against
    a model update its learner rejected, that proposal's block hash (§3.6)."""
    return (
        _VOTE_DOMAIN
        + encode_str(chain_id)
        + (b"\x01" if block_hash is not None else b"\x00")
        + _VOTE_FIELDS.pack(vote_type, height, round_, block_hash or ZERO_HASH, validator)
        + encode_score(score)
        + encode_vote_time(time_ms)
        + encode_values(values)
        + encode_rejects(rejects)
    )


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit for a block hash, or for nil (``block_hash`` None)."""

    chain_id: ChainId
    vote_type: VoteType
    height: Height
    round: Round
    block_hash: Hash | None
    validator: Address
    # The vote extension (CometBFT ABCI++): on a precommit for a block that changes the model,
    # the validator's score of that model on its private vote set (docs/protocol.md §3.3).
    score: int | None = None
    # A precommit for a block: the validator's time, at least that block's time + 1 ms.
    time_ms: TimeMs = TimeMs(0)
    # A precommit for a block with contributions: each one's value (the extension's second part).
    values: tuple[int, ...] = ()
    # A nil prevote against a first-time proposal whose model update this validator's learner
    # rejected: that proposal's block hash (a rejection proof counts these, §3.6).
    rejects: Hash | None = None
    _sign_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One vote is checked by every peer, and again in commits and evidence: encode it once.
        sign_bytes = compute_vote_sign_bytes(
            self.chain_id,
            self.vote_type,
            self.height,
            self.round,
            self.block_hash,
            self.validator,
            self.score,
            self.time_ms,
            self.values,
            self.rejects,
        )
        object.__setattr__(self, "_sign_bytes", sign_bytes)

    def sign_bytes(self) -> bytes:
        """What the validator signs: domain, chain id, type, height, round, block hash, address."""
        return self._sign_bytes


@dataclass(frozen=True, slots=True)
class SignedVote:
    """A vote and its validator's signature."""

    vote: Vote
    signature: Signature

    def encode(self) -> bytes:
        """Canonical bytes (for hashing a commit or evidence)."""
        return encode_bytes(self.vote.sign_bytes()) + encode_bytes(self.signature)


@dataclass(frozen=True, slots=True)
class CommitSig:
    """One validator's precommit signature inside a commit."""

    validator: Address
    signature: Signature
    score: int | None = None  # the precommit's extension
    time_ms: TimeMs = TimeMs(0)  # the precommit's time
    values: tuple[int, ...] = ()  # the precommit's values of the block's contributions


@dataclass(frozen=True, slots=True)
class Commit:
    """Precommits for one block at one round, from more than the threshold of stake."""

    height: Height
    round: Round
    block_hash: Hash
    signatures: tuple[CommitSig, ...]

    def get_sign_bytes(self, chain_id: ChainId, signature: CommitSig) -> bytes:
        """The sign bytes of the precommit that ``signature`` signs (without building it)."""
        return compute_vote_sign_bytes(
            chain_id,
            VoteType.PRECOMMIT,
            self.height,
            self.round,
            self.block_hash,
            signature.validator,
            signature.score,
            signature.time_ms,
            signature.values,
        )

    def encode(self) -> bytes:
        """Canonical bytes."""
        return (
            encode_uint(self.height)
            + encode_int(self.round)
            + encode_bytes(self.block_hash)
            + encode_list(
                encode_bytes(s.validator)
                + encode_bytes(s.signature)
                + encode_score(s.score)
                + encode_vote_time(s.time_ms)
                + encode_values(s.values)
                for s in self.signatures
            )
        )

    def signers(self) -> frozenset[Address]:
        """The validators whose precommits the commit holds."""
        return frozenset(s.validator for s in self.signatures)


@dataclass(frozen=True, slots=True)
class Contribution:
    """Aggregate mode: a validator's signed local update trained from the model committed at
    ``height`` (the state's ``model_height``): valid until the model changes (§3.2)."""

    chain_id: ChainId
    height: Height
    validator: Address
    weights_hash: Hash
    samples: int
    signature: Signature

    def sign_bytes(self) -> bytes:
        """What the contributor signs."""
        return (
            _CONTRIBUTION_DOMAIN
            + encode_str(self.chain_id)
            + encode_uint(self.height)
            + encode_bytes(self.validator)
            + encode_bytes(self.weights_hash)
            + encode_uint(self.samples)
        )

    def encode(self) -> bytes:
        """Canonical bytes."""
        return encode_bytes(self.sign_bytes()) + encode_bytes(self.signature)


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two conflicting signed votes by one validator at one height, round and type."""

    vote_a: SignedVote
    vote_b: SignedVote

    @staticmethod
    def of(first: SignedVote, second: SignedVote) -> DuplicateVoteEvidence:
        """Evidence with its votes in canonical order, so both finders produce the same bytes."""
        a, b = sorted((first, second), key=lambda v: v.vote.block_hash or b"")
        return DuplicateVoteEvidence(a, b)

    @property
    def validator(self) -> Address:
        """The equivocator."""
        return self.vote_a.vote.validator

    @property
    def height(self) -> Height:
        """The height of the infraction."""
        return self.vote_a.vote.height

    def encode(self) -> bytes:
        """Canonical bytes."""
        return self.vote_a.encode() + self.vote_b.encode()

    def hash(self) -> Hash:
        """The evidence's identity."""
        return compute_hash(self.encode())


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What a block hash commits to; ``state_root`` is the state after applying this block."""

    chain_id: ChainId
    height: Height
    prev_hash: Hash
    proposer: Address
    model_hash: Hash
    state_root: Hash
    txs_root: Hash
    evidence_root: Hash
    last_commit_root: Hash
    contributions_root: Hash
    time_ms: TimeMs = TimeMs(0)  # BFT time: the weighted median of the last commit's times
    rejections_root: Hash = EMPTY_LIST_ROOT

    def encode(self) -> bytes:
        """Canonical bytes."""
        return (
            encode_str(self.chain_id)
            + encode_uint(self.height)
            + self.prev_hash
            + self.proposer
            + self.model_hash
            + self.state_root
            + self.txs_root
            + self.evidence_root
            + self.last_commit_root
            + self.contributions_root
            + encode_uint(self.time_ms)
            + self.rejections_root
        )


@dataclass(frozen=True)
class Block:
    """A header and the body its roots commit to."""

    header: BlockHeader
    txs: tuple[SignedTx, ...] = ()
    evidence: tuple[DuplicateVoteEvidence, ...] = ()
    last_commit: Commit | None = None
    contributions: tuple[Contribution, ...] = field(default=())
    rejections: tuple[RejectedProposal, ...] = field(default=())
    # contributions the proposer's screening left out of the aggregate, for the validators to
    # appraise too: a harmful one forfeits its deposit (§3.5)
    screened: tuple[Contribution, ...] = field(default=())

    @cached_property
    def hash(self) -> Hash:
        """The block's identity: SHA-256 of the canonical header."""
        return compute_hash(self.header.encode())

    @property
    def height(self) -> Height:
        """The block's height."""
        return self.header.height


def compute_txs_root(txs: tuple[SignedTx, ...]) -> Hash:
    """Hash over the encoded transactions, in order."""
    return compute_hash(encode_list(encode_bytes(tx.encode()) for tx in txs))


def compute_evidence_root(evidence: tuple[DuplicateVoteEvidence, ...]) -> Hash:
    """Hash over the evidence, in order."""
    return compute_hash(encode_list(e.encode() for e in evidence))


def compute_last_commit_root(commit: Commit | None) -> Hash:
    """Hash of the previous block's commit (zero for the first block)."""
    return ZERO_HASH if commit is None else compute_hash(commit.encode())


def compute_contributions_root(
    contributions: tuple[Contribution, ...], screened: tuple[Contribution, ...] = ()
) -> Hash:
    """Hash over the contributions, in order, then the screened-out ones (none: as before
    blocks listed them)."""
    listed = encode_list(c.encode() for c in contributions)
    if screened:
        listed += encode_list(c.encode() for c in screened)
    return compute_hash(listed)


def compute_rejections_root(rejections: tuple[RejectedProposal, ...]) -> Hash:
    """Hash over the rejection proofs, in order."""
    return compute_hash(encode_list(r.encode() for r in rejections))


def is_body_consistent(block: Block) -> bool:
    """True when the header's roots match the block's body."""
    header = block.header
    return (
        header.txs_root == compute_txs_root(block.txs)
        and header.evidence_root == compute_evidence_root(block.evidence)
        and header.last_commit_root == compute_last_commit_root(block.last_commit)
        and header.contributions_root
        == compute_contributions_root(block.contributions, block.screened)
        and header.rejections_root == compute_rejections_root(block.rejections)
    )


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's signed block at (height, round); ``valid_round`` is Tendermint's vr."""

    chain_id: ChainId
    height: Height
    round: Round
    block_hash: Hash
    valid_round: Round

    def sign_bytes(self) -> bytes:
        """What the proposer signs."""
        return (
            _PROPOSAL_DOMAIN
            + encode_str(self.chain_id)
            + encode_uint(self.height)
            + encode_int(self.round)
            + self.block_hash
            + encode_int(self.valid_round)
        )


@dataclass(frozen=True, slots=True)
class RejectedProposal:
    """Proof that the vote rejected a model update (§3.6): the round's proposal, signed by its
    proposer, and nil prevotes naming its block hash from more than the threshold of stake."""

    proposal: Proposal
    signature: Signature  # the proposer's, over ``proposal.sign_bytes()``
    prevotes: tuple[SignedVote, ...]

    def encode(self) -> bytes:
        """Canonical bytes."""
        return (
            encode_bytes(self.proposal.sign_bytes())
            + encode_bytes(self.signature)
            + encode_list(v.encode() for v in self.prevotes)
        )


@dataclass(frozen=True, slots=True)
class SignedProposal:
    """A signed proposal travelling with its block."""

    proposal: Proposal
    signature: Signature
    block: Block


class TxKind(enum.IntEnum):
    """What a transaction does."""

    TRANSFER = 1
    STAKE = 2
    UNSTAKE = 3
    UNJAIL = 4
    EVIDENCE = 5
    UPGRADE = 6  # a validator signals an upgrade plan (consensus/upgrades.py)


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction; the fields a kind does not use keep their defaults."""

    chain_id: ChainId
    kind: TxKind
    sender: PublicKey
    nonce: Nonce
    amount: Tokens = Tokens(0)
    recipient: Address = Address(b"")
    endpoint: str = ""
    evidence: DuplicateVoteEvidence | None = None
    moniker: str = ""  # a stake's name for its validator (Cosmos's description moniker)
    upgrade: UpgradePlan | None = None  # an upgrade transaction's plan

    def sign_bytes(self) -> bytes:
        """What the sender signs: domain, chain id, kind, key, nonce and the payload (the
        moniker, then an upgrade's plan, last and only when there is one, so transactions
        without them sign as before)."""
        return (
            _TX_DOMAIN
            + encode_str(self.chain_id)
            + encode_uint(self.kind)
            + encode_bytes(self.sender)
            + encode_uint(self.nonce)
            + encode_uint(self.amount)
            + encode_bytes(self.recipient)
            + encode_str(self.endpoint)
            + encode_optional_bytes(None if self.evidence is None else self.evidence.encode())
            + (encode_str(self.moniker) if self.moniker else b"")
            + (b"U" + self.upgrade.encode() if self.upgrade is not None else b"")
        )


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction and its sender's signature."""

    tx: Tx
    signature: Signature

    def encode(self) -> bytes:
        """Canonical bytes."""
        return encode_bytes(self.tx.sign_bytes()) + encode_bytes(self.signature)

    def hash(self) -> Hash:
        """The transaction's identity (mempool and replay checks)."""
        return compute_hash(self.encode())
