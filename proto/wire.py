"""Conversions between consensus dataclasses and protobuf messages, checking every field.

Decoding is where network input becomes protocol values: lengths, ranges and enums are checked
here and a bad message raises ``WireError`` with a one-line reason (signatures are checked by the
engine, which sees the values next).
"""

from __future__ import annotations

from learnchain.consensus.events import SignState
from learnchain.consensus.incentives import PendingShare
from learnchain.consensus.learning_record import LearningRecord
from learnchain.consensus.messages import (
    MAX_SCORE,
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    Contribution,
    DuplicateVoteEvidence,
    Proposal,
    RejectedProposal,
    SignedProposal,
    SignedTx,
    SignedVote,
    Tx,
    TxKind,
    Vote,
)
from learnchain.consensus.params import MODES, ChainParams, Mode, TrainingEnd
from learnchain.consensus.state import Account, Bond, ChainState, Unbonding
from learnchain.consensus.types import (
    ADDRESS_LENGTH,
    HASH_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_MONIKER_LENGTH,
    PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH,
    Address,
    ChainId,
    Hash,
    Height,
    Nonce,
    PublicKey,
    Round,
    Signature,
    Stake,
    Step,
    Threshold,
    TimeMs,
    Tokens,
    VoteType,
    is_valid_moniker,
)
from learnchain.consensus.upgrades import (
    MAX_UPGRADE_NAME_LENGTH,
    UpgradePlan,
    is_valid_upgrade_name,
)
from learnchain.consensus.validators import Validator, ValidatorSet
from learnchain.proto import learnchain_pb2 as pb

MAX_CHAIN_ID_LENGTH = 64
MAX_ROUND = 1 << 20
MAX_LIST = 10_000
MAX_TIME_MS = 1 << 53  # far beyond any real clock, and exact as a JSON number


class WireError(ValueError):
    """A message that does not decode to valid protocol values."""


def _check_bytes(value: bytes, length: int, what: str) -> bytes:
    if len(value) != length:
        raise WireError(f"{what} must be {length} bytes, got {len(value)}")
    return value


def _address(value: bytes, what: str = "address") -> Address:
    return Address(_check_bytes(value, ADDRESS_LENGTH, what))


def _hash(value: bytes, what: str = "hash") -> Hash:
    return Hash(_check_bytes(value, HASH_LENGTH, what))


def _signature(value: bytes) -> Signature:
    return Signature(_check_bytes(value, SIGNATURE_LENGTH, "signature"))


def _public_key(value: bytes) -> PublicKey:
    return PublicKey(_check_bytes(value, PUBLIC_KEY_LENGTH, "public key"))


def _chain_id(value: str) -> ChainId:
    if not 0 < len(value) <= MAX_CHAIN_ID_LENGTH:
        raise WireError(f"chain id must be 1 to {MAX_CHAIN_ID_LENGTH} characters")
    return ChainId(value)


def _round(value: int, allow_nil: bool = False) -> Round:
    if not (-1 if allow_nil else 0) <= value <= MAX_ROUND:
        raise WireError(f"round {value} is out of range")
    return Round(value)


def _height(value: int) -> Height:
    if value > 1 << 62:
        raise WireError(f"height {value} is out of range")
    return Height(value)


def _list_len(items: object, what: str) -> None:
    if len(items) > MAX_LIST:  # type: ignore[arg-type]
        raise WireError(f"too many {what}")


# ---- votes, commits, evidence ---------------------------------------------------------------


def vote_to_proto(signed: SignedVote) -> pb.Vote:
    """A signed vote as protobuf."""
    v = signed.vote
    return pb.Vote(
        chain_id=v.chain_id,
        vote_type=int(v.vote_type),
        height=v.height,
        round=v.round,
        block_hash=v.block_hash or b"",
        validator=v.validator,
        signature=signed.signature,
        score=v.score,
        time_ms=v.time_ms,
        values=v.values,
        rejects=v.rejects or b"",
    )


def _values(message: pb.Vote | pb.CommitSig) -> tuple[int, ...]:
    """A vote extension's contribution values, bounded."""
    _list_len(message.values, "contribution values")
    for value in message.values:
        if abs(value) > MAX_SCORE:
            raise WireError(f"contribution value {value} is out of range")
    return tuple(message.values)


def _score(message: pb.Vote | pb.CommitSig | pb.LearningRecord, name: str) -> int | None:
    """An optional score field, bounded."""
    if not message.HasField(name):
        return None
    value: int = getattr(message, name)
    if abs(value) > MAX_SCORE:
        raise WireError(f"{name} {value} is out of range")
    return value


def _time(value: int) -> TimeMs:
    """A Unix time in milliseconds, bounded."""
    if value > MAX_TIME_MS:
        raise WireError(f"time {value} ms is out of range")
    return TimeMs(value)


def vote_from_proto(message: pb.Vote) -> SignedVote:
    """A signed vote from protobuf, fields checked."""
    if message.vote_type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        raise WireError(f"unknown vote type {message.vote_type}")
    block_hash = _hash(message.block_hash, "vote block hash") if message.block_hash else None
    vote = Vote(
        _chain_id(message.chain_id),
        VoteType(message.vote_type),
        _height(message.height),
        _round(message.round),
        block_hash,
        _address(message.validator, "vote validator"),
        _score(message, "score"),
        _time(message.time_ms),
        _values(message),
        _hash(message.rejects, "rejected block hash") if message.rejects else None,
    )
    if vote.rejects is not None and (vote.vote_type != VoteType.PREVOTE or block_hash is not None):
        raise WireError("only a nil prevote names a rejected block")
    if vote.vote_type != VoteType.PRECOMMIT or block_hash is None:
        extensions = {
            "contribution values": bool(vote.values),
            "a score": vote.score is not None,
            "a time": bool(vote.time_ms),
        }
        for what, present in extensions.items():
            if present:
                raise WireError(f"only a precommit for a block carries {what}")
    return SignedVote(vote, _signature(message.signature))


def commit_to_proto(commit: Commit) -> pb.Commit:
    """A commit as protobuf."""
    return pb.Commit(
        height=commit.height,
        round=commit.round,
        block_hash=commit.block_hash,
        signatures=[
            pb.CommitSig(
                validator=s.validator,
                signature=s.signature,
                score=s.score,
                time_ms=s.time_ms,
                values=s.values,
            )
            for s in commit.signatures
        ],
    )


def commit_from_proto(message: pb.Commit) -> Commit:
    """A commit from protobuf, fields checked."""
    _list_len(message.signatures, "commit signatures")
    return Commit(
        _height(message.height),
        _round(message.round),
        _hash(message.block_hash, "commit block hash"),
        tuple(
            CommitSig(
                _address(s.validator, "commit validator"),
                _signature(s.signature),
                _score(s, "score"),
                _time(s.time_ms),
                _values(s),
            )
            for s in message.signatures
        ),
    )


def evidence_to_proto(evidence: DuplicateVoteEvidence) -> pb.Evidence:
    """Evidence as protobuf."""
    return pb.Evidence(vote_a=vote_to_proto(evidence.vote_a), vote_b=vote_to_proto(evidence.vote_b))


def evidence_from_proto(message: pb.Evidence) -> DuplicateVoteEvidence:
    """Evidence from protobuf, fields checked."""
    if not message.HasField("vote_a") or not message.HasField("vote_b"):
        raise WireError("evidence needs two votes")
    return DuplicateVoteEvidence.of(
        vote_from_proto(message.vote_a), vote_from_proto(message.vote_b)
    )


def contribution_to_proto(c: Contribution) -> pb.Contribution:
    """A contribution as protobuf."""
    return pb.Contribution(
        chain_id=c.chain_id,
        height=c.height,
        validator=c.validator,
        weights_hash=c.weights_hash,
        samples=c.samples,
        signature=c.signature,
    )


def contribution_from_proto(message: pb.Contribution) -> Contribution:
    """A contribution from protobuf, fields checked."""
    return Contribution(
        _chain_id(message.chain_id),
        _height(message.height),
        _address(message.validator, "contribution validator"),
        _hash(message.weights_hash, "contribution weights hash"),
        message.samples,
        _signature(message.signature),
    )


# ---- transactions -------------------------------------------------------------------------


def tx_to_proto(signed: SignedTx) -> pb.Tx:
    """A signed transaction as protobuf."""
    tx = signed.tx
    message = pb.Tx(
        chain_id=tx.chain_id,
        kind=int(tx.kind),
        sender=tx.sender,
        nonce=tx.nonce,
        amount=tx.amount,
        recipient=tx.recipient,
        endpoint=tx.endpoint,
        signature=signed.signature,
        moniker=tx.moniker,
    )
    if tx.evidence is not None:
        message.evidence.CopyFrom(evidence_to_proto(tx.evidence))
    if tx.upgrade is not None:
        message.upgrade.CopyFrom(upgrade_plan_to_proto(tx.upgrade))
    return message


def upgrade_plan_to_proto(plan: UpgradePlan) -> pb.UpgradePlan:
    """An upgrade plan as protobuf."""
    return pb.UpgradePlan(name=plan.name, height=plan.height)


def upgrade_plan_from_proto(message: pb.UpgradePlan) -> UpgradePlan:
    """An upgrade plan from protobuf, its name checked."""
    if not is_valid_upgrade_name(message.name):
        raise WireError(
            f"upgrade name is at most {MAX_UPGRADE_NAME_LENGTH} lower-case letters, digits, . _ -"
        )
    return UpgradePlan(message.name, Height(message.height))


def upgrade_signals_to_proto(signals: dict[Address, UpgradePlan]) -> list[pb.UpgradeSignal]:
    """Validators' upgrade signals as protobuf, by address."""
    return [
        pb.UpgradeSignal(address=a, plan=upgrade_plan_to_proto(p))
        for a, p in sorted(signals.items())
    ]


def tx_from_proto(message: pb.Tx) -> SignedTx:
    """A signed transaction from protobuf, fields checked."""
    if message.kind not in {k.value for k in TxKind}:
        raise WireError(f"unknown transaction kind {message.kind}")
    if message.recipient and len(message.recipient) != ADDRESS_LENGTH:
        raise WireError(f"recipient must be a {ADDRESS_LENGTH}-byte address")
    if len(message.endpoint) > MAX_ENDPOINT_LENGTH:
        raise WireError("endpoint is too long")
    if not is_valid_moniker(message.moniker):
        raise WireError(f"moniker is at most {MAX_MONIKER_LENGTH} printable characters")
    evidence = evidence_from_proto(message.evidence) if message.HasField("evidence") else None
    upgrade = upgrade_plan_from_proto(message.upgrade) if message.HasField("upgrade") else None
    tx = Tx(
        _chain_id(message.chain_id),
        TxKind(message.kind),
        _public_key(message.sender),
        Nonce(message.nonce),
        Tokens(message.amount),
        Address(message.recipient),
        message.endpoint,
        evidence,
        message.moniker,
        upgrade,
    )
    return SignedTx(tx, _signature(message.signature))


# ---- blocks and proposals -----------------------------------------------------------------


def header_to_proto(h: BlockHeader) -> pb.BlockHeader:
    """A header as protobuf."""
    return pb.BlockHeader(
        chain_id=h.chain_id,
        height=h.height,
        prev_hash=h.prev_hash,
        proposer=h.proposer,
        model_hash=h.model_hash,
        state_root=h.state_root,
        txs_root=h.txs_root,
        evidence_root=h.evidence_root,
        last_commit_root=h.last_commit_root,
        contributions_root=h.contributions_root,
        time_ms=h.time_ms,
        rejections_root=h.rejections_root,
    )


def header_from_proto(m: pb.BlockHeader) -> BlockHeader:
    """A header from protobuf, fields checked."""
    return BlockHeader(
        _chain_id(m.chain_id),
        _height(m.height),
        _hash(m.prev_hash, "prev hash"),
        _address(m.proposer, "proposer"),
        _hash(m.model_hash, "model hash"),
        _hash(m.state_root, "state root"),
        _hash(m.txs_root, "txs root"),
        _hash(m.evidence_root, "evidence root"),
        _hash(m.last_commit_root, "last commit root"),
        _hash(m.contributions_root, "contributions root"),
        _time(m.time_ms),
        _hash(m.rejections_root, "rejections root"),
    )


def block_to_proto(block: Block) -> pb.Block:
    """A block as protobuf."""
    message = pb.Block(
        header=header_to_proto(block.header),
        txs=[tx_to_proto(t) for t in block.txs],
        evidence=[evidence_to_proto(e) for e in block.evidence],
        contributions=[contribution_to_proto(c) for c in block.contributions],
        rejections=[rejection_to_proto(r) for r in block.rejections],
        screened=[contribution_to_proto(c) for c in block.screened],
    )
    if block.last_commit is not None:
        message.last_commit.CopyFrom(commit_to_proto(block.last_commit))
    return message


def block_from_proto(message: pb.Block) -> Block:
    """A block from protobuf, fields checked (roots are checked by the state transition)."""
    if not message.HasField("header"):
        raise WireError("block has no header")
    _list_len(message.txs, "transactions")
    _list_len(message.evidence, "evidence items")
    _list_len(message.contributions, "contributions")
    _list_len(message.rejections, "rejection proofs")
    _list_len(message.screened, "screened-out contributions")
    return Block(
        header_from_proto(message.header),
        tuple(tx_from_proto(t) for t in message.txs),
        tuple(evidence_from_proto(e) for e in message.evidence),
        commit_from_proto(message.last_commit) if message.HasField("last_commit") else None,
        tuple(contribution_from_proto(c) for c in message.contributions),
        tuple(rejection_from_proto(r) for r in message.rejections),
        tuple(contribution_from_proto(c) for c in message.screened),
    )


def rejection_to_proto(rejection: RejectedProposal) -> pb.RejectedProposal:
    """A rejection proof as protobuf (its proposal without a block)."""
    p = rejection.proposal
    return pb.RejectedProposal(
        proposal=pb.Proposal(
            chain_id=p.chain_id,
            height=p.height,
            round=p.round,
            block_hash=p.block_hash,
            valid_round=p.valid_round,
            signature=rejection.signature,
        ),
        prevotes=[vote_to_proto(v) for v in rejection.prevotes],
    )


def rejection_from_proto(message: pb.RejectedProposal) -> RejectedProposal:
    """A rejection proof from protobuf, fields checked (signatures and stake by the state
    transition)."""
    _list_len(message.prevotes, "rejecting prevotes")
    p = message.proposal
    proposal = _proposal_fields(p)
    return RejectedProposal(
        proposal, _signature(p.signature), tuple(vote_from_proto(v) for v in message.prevotes)
    )


def _proposal_fields(message: pb.Proposal) -> Proposal:
    return Proposal(
        _chain_id(message.chain_id),
        _height(message.height),
        _round(message.round),
        _hash(message.block_hash, "proposal block hash"),
        _round(message.valid_round, allow_nil=True),
    )


def proposal_to_proto(signed: SignedProposal) -> pb.Proposal:
    """A signed proposal with its block as protobuf."""
    p = signed.proposal
    return pb.Proposal(
        chain_id=p.chain_id,
        height=p.height,
        round=p.round,
        block_hash=p.block_hash,
        valid_round=p.valid_round,
        signature=signed.signature,
        block=block_to_proto(signed.block),
    )


def proposal_from_proto(message: pb.Proposal) -> SignedProposal:
    """A signed proposal from protobuf, fields checked."""
    if not message.HasField("block"):
        raise WireError("proposal carries no block")
    proposal = _proposal_fields(message)
    return SignedProposal(proposal, _signature(message.signature), block_from_proto(message.block))


# ---- state and sign state (stored locally) --------------------------------------------------


def validator_set_to_proto(vs: ValidatorSet) -> pb.ValidatorSet:
    return pb.ValidatorSet(
        validators=[
            pb.Validator(
                address=v.address,
                public_key=v.public_key,
                power=v.power,
                priority=v.priority,
                endpoint=v.endpoint,
            )
            for v in vs.validators
        ],
        proposer=vs.proposer,
    )


def _validator_set_from_proto(m: pb.ValidatorSet) -> ValidatorSet:
    return ValidatorSet(
        tuple(
            Validator(
                _address(v.address),
                _public_key(v.public_key),
                Stake(v.power),
                v.priority,
                v.endpoint,
            )
            for v in m.validators
        ),
        Address(m.proposer),
    )


def _params_to_proto(p: ChainParams) -> pb.ChainParams:
    return pb.ChainParams(
        threshold_numerator=p.threshold.numerator,
        threshold_denominator=p.threshold.denominator,
        mode=p.mode,
        min_stake=p.min_stake,
        max_validators=p.max_validators,
        unbonding_blocks=p.unbonding_blocks,
        block_reward=p.block_reward,
        proposer_reward_percent=p.proposer_reward_percent,
        slash_double_sign_percent=p.slash_double_sign_percent,
        slash_downtime_percent=p.slash_downtime_percent,
        downtime_jail_blocks=p.downtime_jail_blocks,
        jail_blocks=p.jail_blocks,
        evidence_max_age=p.evidence_max_age,
        max_block_txs=p.max_block_txs,
        max_contributions=p.max_contributions,
        training_heights=p.training_heights,
        vote_relay_from=p.vote_relay_from,
        round_deadline=p.round_deadline,
        verdict_timeout=p.verdict_timeout,
        target_score=p.target_score,
        plateau_rounds=p.plateau_rounds,
        min_improvement=p.min_improvement,
        contribution_deposit=p.contribution_deposit,
        forfeit_margin=p.forfeit_margin,
        proposal_deposit=p.proposal_deposit,
        reputation_decay=p.reputation_decay,
    )


def _params_from_proto(m: pb.ChainParams) -> ChainParams:
    if m.mode not in MODES:
        raise WireError(f"mode must be one of {', '.join(MODES)}")
    return ChainParams(
        threshold=Threshold(m.threshold_numerator, m.threshold_denominator),
        mode=Mode(m.mode),
        min_stake=Stake(m.min_stake),
        max_validators=m.max_validators,
        unbonding_blocks=m.unbonding_blocks,
        block_reward=Tokens(m.block_reward),
        proposer_reward_percent=m.proposer_reward_percent,
        slash_double_sign_percent=m.slash_double_sign_percent,
        slash_downtime_percent=m.slash_downtime_percent,
        downtime_jail_blocks=m.downtime_jail_blocks,
        jail_blocks=m.jail_blocks,
        evidence_max_age=m.evidence_max_age,
        max_block_txs=m.max_block_txs,
        max_contributions=m.max_contributions,
        training_heights=m.training_heights,
        vote_relay_from=m.vote_relay_from,
        round_deadline=m.round_deadline,
        verdict_timeout=m.verdict_timeout,
        target_score=m.target_score if m.HasField("target_score") else None,
        plateau_rounds=m.plateau_rounds,
        min_improvement=m.min_improvement,
        contribution_deposit=Tokens(m.contribution_deposit),
        forfeit_margin=m.forfeit_margin,
        proposal_deposit=Tokens(m.proposal_deposit),
        reputation_decay=m.reputation_decay,
    )


def learning_to_proto(record: LearningRecord) -> pb.LearningRecord:
    """Training as the chain records it, as protobuf."""
    return pb.LearningRecord(
        model_height=record.model_height,
        model_score=record.model_score,
        best_score=record.best_score,
        stale_rounds=record.stale_rounds,
        scored_height=record.scored_height,
        scored=record.scored,
        end=int(record.end),
        end_height=record.end_height,
    )


def learning_from_proto(m: pb.LearningRecord) -> LearningRecord:
    """Training as the chain records it, from protobuf (the node's own store or a peer)."""
    if m.end not in {int(end) for end in TrainingEnd}:
        raise WireError(f"unknown training end {m.end}")
    return LearningRecord(
        model_height=Height(m.model_height),
        best_score=_score(m, "best_score"),
        stale_rounds=m.stale_rounds,
        scored_height=Height(m.scored_height),
        scored=_score(m, "scored"),
        end=TrainingEnd(m.end),
        end_height=Height(m.end_height),
    )


def bond_to_proto(address: Address, bond: Bond) -> pb.Bond:
    """A validator's bond as protobuf."""
    return pb.Bond(
        address=address,
        public_key=bond.public_key,
        bonded=bond.bonded,
        endpoint=bond.endpoint,
        jailed_until=bond.jailed_until,
        jailed=bond.jailed,
        missed=bond.missed,
        moniker=bond.moniker,
    )


def state_to_proto(state: ChainState) -> pb.ChainState:
    """A chain state as protobuf (for the node's own store)."""
    return pb.ChainState(
        chain_id=state.chain_id,
        params=_params_to_proto(state.params),
        height=state.height,
        last_block_hash=state.last_block_hash,
        model_hash=state.model_hash,
        app_hash=state.app_hash,
        accounts=[
            pb.Account(address=a, balance=acc.balance, nonce=acc.nonce)
            for a, acc in sorted(state.accounts.items())
        ],
        bonds=[bond_to_proto(a, b) for a, b in sorted(state.bonds.items())],
        unbonding=[
            pb.Unbonding(address=u.address, amount=u.amount, release_height=u.release_height)
            for u in state.unbonding
        ],
        last_validators=validator_set_to_proto(state.last_validators),
        validators=validator_set_to_proto(state.validators),
        next_validators=validator_set_to_proto(state.next_validators),
        slashed=[pb.SlashRecord(address=a, height=h) for a, h in sorted(state.slashed)],
        learning=learning_to_proto(state.learning),
        last_block_time_ms=state.last_block_time_ms,
        pending_share=(
            None
            if state.pending_share is None
            else pb.PendingShare(
                height=state.pending_share.height,
                contributors=state.pending_share.contributors,
                pool=state.pending_share.pool,
                rejected=state.pending_share.rejected,
                screened=state.pending_share.screened,
            )
        ),
        reputations=[
            pb.Reputation(address=a, value=v) for a, v in sorted(state.reputations.items())
        ],
        upgrade_signals=upgrade_signals_to_proto(state.upgrade_signals),
        upgrade_plan=(
            None if state.upgrade_plan is None else upgrade_plan_to_proto(state.upgrade_plan)
        ),
    )


def state_from_proto(m: pb.ChainState) -> ChainState:
    """A chain state from the node's own store."""
    return ChainState(
        chain_id=ChainId(m.chain_id),
        params=_params_from_proto(m.params),
        height=Height(m.height),
        last_block_hash=Hash(m.last_block_hash),
        model_hash=Hash(m.model_hash),
        app_hash=Hash(m.app_hash),
        accounts={
            Address(a.address): Account(Tokens(a.balance), Nonce(a.nonce)) for a in m.accounts
        },
        bonds={
            Address(b.address): Bond(
                PublicKey(b.public_key),
                Tokens(b.bonded),
                b.endpoint,
                Height(b.jailed_until),
                b.jailed,
                b.missed,
                b.moniker,
            )
            for b in m.bonds
        },
        unbonding=tuple(
            Unbonding(Address(u.address), Tokens(u.amount), Height(u.release_height))
            for u in m.unbonding
        ),
        last_validators=_validator_set_from_proto(m.last_validators),
        validators=_validator_set_from_proto(m.validators),
        next_validators=_validator_set_from_proto(m.next_validators),
        slashed=frozenset((Address(s.address), Height(s.height)) for s in m.slashed),
        learning=learning_from_proto(m.learning),
        last_block_time_ms=TimeMs(m.last_block_time_ms),
        pending_share=(
            PendingShare(
                Height(m.pending_share.height),
                tuple(Address(a) for a in m.pending_share.contributors),
                Tokens(m.pending_share.pool),
                tuple(_address(a, "rejected proposer") for a in m.pending_share.rejected),
                tuple(_address(a, "screened-out contributor") for a in m.pending_share.screened),
            )
            if m.HasField("pending_share")
            else None
        ),
        reputations={_address(r.address, "reputation's address"): r.value for r in m.reputations},
        upgrade_signals={
            _address(u.address, "upgrade signal's address"): upgrade_plan_from_proto(u.plan)
            for u in m.upgrade_signals
        },
        upgrade_plan=(
            upgrade_plan_from_proto(m.upgrade_plan) if m.HasField("upgrade_plan") else None
        ),
    )


def sign_state_to_proto(s: SignState) -> pb.SignState:
    """The double-sign guard's state as protobuf."""
    message = pb.SignState(
        height=s.height,
        round=s.round,
        step=int(s.step),
        locked_round=s.locked_round,
        locked_block_hash=s.locked_block_hash or b"",
        votes=[vote_to_proto(m) for m in s.messages if isinstance(m, SignedVote)],
    )
    for m in s.messages:
        if isinstance(m, SignedProposal):
            message.proposal.CopyFrom(proposal_to_proto(m))
    return message


def sign_state_from_proto(m: pb.SignState) -> SignState:
    """The double-sign guard's state from the node's store."""
    messages: list[SignedProposal | SignedVote] = []
    if m.HasField("proposal"):
        messages.append(proposal_from_proto(m.proposal))
    messages += [vote_from_proto(v) for v in m.votes]
    return SignState(
        Height(m.height),
        Round(m.round),
        Step(m.step),
        Round(m.locked_round),
        Hash(m.locked_block_hash) if m.locked_block_hash else None,
        tuple(messages),
    )


def get_reputation(reply: pb.ValidatorsResponse, address: bytes) -> int | None:
    """A validator's reputation as a Validators reply gives it (micro-units of loss, §3.9); None
    when the chain keeps none."""
    return reply.reputations.get(address.hex(), 0) if reply.keeps_reputation else None
