"""The chain state and its transition: ``process_block`` and the ``process_*`` steps it is made of.

A state is immutable; processing a block returns a new one or raises ``InvalidBlock`` and changes
nothing. Token accounting: balances + bonded + unbonding change only by block rewards (minted),
slashes and forfeited deposits nobody earned (burned); see consensus/incentives.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from learnchain.consensus.crypto import (
    SignatureVerifier,
    compute_address,
    compute_hash,
    is_valid_public_key,
)
from learnchain.consensus.encoding import (
    encode_bytes,
    encode_int,
    encode_list,
    encode_str,
    encode_uint,
)
from learnchain.consensus.incentives import (
    PendingShare,
    compute_appraisal,
    compute_pending_share,
    compute_reputation_reports,
    compute_settlement,
)
from learnchain.consensus.learning_record import (
    LearningRecord,
    compute_learning_record,
    compute_record_after_update,
)
from learnchain.consensus.messages import (
    Block,
    BlockHeader,
    Commit,
    Contribution,
    DuplicateVoteEvidence,
    RejectedProposal,
    SignedTx,
    TxKind,
    compute_contributions_root,
    compute_evidence_root,
    compute_last_commit_root,
    compute_rejections_root,
    compute_txs_root,
    is_body_consistent,
)
from learnchain.consensus.params import ChainParams, Genesis, TrainingEnd
from learnchain.consensus.rejections import (
    InvalidRejection,
    compute_forfeit,
    get_rejected_proposer,
)
from learnchain.consensus.reputation import (
    Reputation,
    compute_next_reputations,
    compute_reputation_exclusions,
)
from learnchain.consensus.types import (
    ADDRESS_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_MONIKER_LENGTH,
    ZERO_HASH,
    Address,
    ChainId,
    Hash,
    Height,
    Nonce,
    PublicKey,
    Stake,
    TimeMs,
    Tokens,
    is_quorum,
    is_valid_moniker,
)
from learnchain.consensus.upgrades import (
    UpgradeNeeded,
    UpgradePlan,
    compute_scheduled_plan,
    compute_upgrade_signals,
    get_upgrade_handler,
    is_upgrade_due,
    is_valid_upgrade_name,
)
from learnchain.consensus.validators import (
    Validator,
    ValidatorSet,
    compute_incremented,
    compute_updated,
)


class InvalidBlock(ValueError):
    """A block that the state transition refuses."""


class InvalidTx(ValueError):
    """A transaction that the state transition refuses."""


@dataclass(frozen=True, slots=True)
class Account:
    """Liquid tokens and the next expected nonce."""

    balance: Tokens = Tokens(0)
    nonce: Nonce = Nonce(0)

    def encode(self) -> bytes:
        """Canonical bytes."""
        return encode_uint(self.balance) + encode_uint(self.nonce)


@dataclass(frozen=True, slots=True)
class Bond:
    """A validator's bonded stake and standing."""

    public_key: PublicKey
    bonded: Tokens
    endpoint: str = ""
    jailed_until: Height = Height(0)
    jailed: bool = False
    missed: int = 0  # consecutive blocks whose commit lacks this validator's signature
    moniker: str = ""  # the name its last stake gave (genesis validators: the genesis's)
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Unchanged bonds are shared between states: encode each once for every later state root.
        # The moniker comes last and only when set, so bonds without one encode as before.
        object.__setattr__(
            self,
            "_encoded",
            encode_bytes(self.public_key)
            + encode_uint(self.bonded)
            + encode_str(self.endpoint)
            + encode_uint(self.jailed_until)
            + encode_uint(int(self.jailed))
            + encode_uint(self.missed)
            + (encode_str(self.moniker) if self.moniker else b""),
        )

    def encode(self) -> bytes:
        """Canonical bytes."""
        return self._encoded


@dataclass(frozen=True, slots=True)
class Unbonding:
    """Tokens leaving a bond, returned to the account at ``release_height``."""

    address: Address
    amount: Tokens
    release_height: Height


@dataclass(frozen=True)
class ChainState:
    """The state after block ``height`` (height 0 is the genesis)."""

    chain_id: ChainId
    params: ChainParams
    height: Height
    last_block_hash: Hash
    model_hash: Hash
    app_hash: Hash
    accounts: dict[Address, Account]
    bonds: dict[Address, Bond]
    unbonding: tuple[Unbonding, ...]
    last_validators: ValidatorSet  # signed the commit of block ``height``
    validators: ValidatorSet  # decide block ``height + 1``
    next_validators: ValidatorSet  # decide block ``height + 2``
    slashed: frozenset[tuple[Address, Height]] = field(default=frozenset())
    learning: LearningRecord = field(default=LearningRecord())
    last_block_time_ms: TimeMs = TimeMs(0)  # block ``height``'s BFT time (genesis: its time)
    pending_share: PendingShare | None = None  # block ``height``'s contributors' reward (§3.5)
    # contributors' reputations, micro-units of loss, zero ones left out (§3.9)
    reputations: dict[Address, Reputation] = field(default_factory=dict)
    # validators' pending upgrade signals, and the plan they scheduled (consensus/upgrades.py)
    upgrade_signals: dict[Address, UpgradePlan] = field(default_factory=dict)
    upgrade_plan: UpgradePlan | None = None

    def get_account(self, address: Address) -> Account:
        """An account; unknown addresses hold nothing."""
        return self.accounts.get(address, Account())

    def compute_root(self) -> Hash:
        """The state root: a hash of everything a block changes (not of the block hash itself)."""
        return compute_hash(
            encode_str(self.chain_id)
            + self.params.encode()
            + encode_uint(self.height)
            + self.model_hash
            + self.app_hash
            + encode_list(
                encode_bytes(a) + acc.encode() for a, acc in sorted(self.accounts.items())
            )
            + encode_list(encode_bytes(a) + b.encode() for a, b in sorted(self.bonds.items()))
            + encode_list(
                encode_bytes(u.address) + encode_uint(u.amount) + encode_uint(u.release_height)
                for u in self.unbonding
            )
            + self.validators.encode()
            + self.next_validators.encode()
            + encode_list(encode_bytes(a) + encode_uint(h) for a, h in sorted(self.slashed))
            + self.learning.encode()
            + encode_uint(self.last_block_time_ms)
            + (b"\x00" if self.pending_share is None else b"\x01" + self.pending_share.encode())
            # without reputations, the bytes from before they existed
            + (
                encode_list(
                    encode_bytes(a) + encode_int(v) for a, v in sorted(self.reputations.items())
                )
                if self.reputations
                else b""
            )
            # without upgrade signals or a plan, the bytes from before upgrades existed
            + (
                b"U"
                + encode_list(
                    encode_bytes(a) + p.encode() for a, p in sorted(self.upgrade_signals.items())
                )
                + (b"\x00" if self.upgrade_plan is None else b"\x01" + self.upgrade_plan.encode())
                if self.upgrade_signals or self.upgrade_plan is not None
                else b""
            )
        )


def get_total_tokens(state: ChainState) -> int:
    """All tokens in existence: liquid, bonded and unbonding."""
    return (
        sum(a.balance for a in state.accounts.values())
        + sum(b.bonded for b in state.bonds.values())
        + sum(u.amount for u in state.unbonding)
    )


def compute_genesis_state(genesis: Genesis) -> ChainState:
    """The state at height 0."""
    genesis.params.validate()
    accounts: dict[Address, Account] = {}
    for address, balance in genesis.accounts:
        if len(address) != ADDRESS_LENGTH or balance < 0:
            raise ValueError("genesis account needs a 20-byte address and a balance >= 0")
        accounts[address] = Account(Tokens(accounts.get(address, Account()).balance + balance))
    bonds: dict[Address, Bond] = {}
    members: list[Validator] = []
    for gv in genesis.validators:
        if not is_valid_public_key(gv.public_key):
            raise ValueError(
                f"genesis validator {gv.moniker or gv.public_key.hex()}: bad public key"
            )
        if gv.stake < genesis.params.min_stake:
            raise ValueError(
                f"genesis validator {gv.moniker or gv.public_key.hex()}: stake {gv.stake} "
                f"is below min_stake {genesis.params.min_stake}"
            )
        address = compute_address(gv.public_key)
        if address in bonds:
            raise ValueError("genesis lists a validator twice")
        bonds[address] = Bond(gv.public_key, Tokens(gv.stake), gv.endpoint)
        members.append(Validator(address, gv.public_key, gv.stake, 0, gv.endpoint))
    if not members:
        raise ValueError("genesis needs at least one validator")
    validators = ValidatorSet.from_genesis(members)
    return ChainState(
        chain_id=genesis.chain_id,
        params=genesis.params,
        height=Height(0),
        last_block_hash=ZERO_HASH,
        model_hash=genesis.initial_model_hash,
        app_hash=genesis.app_hash,
        accounts=accounts,
        bonds=bonds,
        unbonding=(),
        last_validators=validators,
        validators=validators,
        next_validators=compute_incremented(validators, times=1),
        last_block_time_ms=genesis.genesis_time_ms,
    )


def is_validator_set_changing(state: ChainState) -> bool:
    """True when the set for the height after next differs from the next height's in members,
    powers or endpoints (a stake, unstake, jail or unjail that takes effect at H+2)."""
    return compute_membership(state.validators) != compute_membership(state.next_validators)


def compute_membership(validators: ValidatorSet) -> list[tuple[Address, Stake, str]]:
    """A set's members, powers and endpoints, without proposer priorities."""
    return [(v.address, v.power, v.endpoint) for v in validators.validators]


def is_model_frozen(state: ChainState) -> bool:
    """True when no block after ``state`` may change the model: training ended, or its budget
    (``training_heights``) is spent."""
    return not state.learning.is_training() or not state.params.is_training_height(
        Height(state.height + 1)
    )


def is_awaiting_blocks(state: ChainState) -> bool:
    """True when ``state`` holds changes that only further blocks carry out (§2.2.1): a
    validator-set change that takes effect at H+2, unbonding that matures at a later height, an
    upgrade plan's height still ahead, or,
    once no learning round follows, the last update's reward share and the record of training's
    end. A resting chain counts these as work, as CometBFT makes the blocks a changed
    application state needs."""
    if is_validator_set_changing(state) or state.unbonding or state.upgrade_plan is not None:
        return True
    return is_model_frozen(state) and (
        state.pending_share is not None or state.learning.is_training()
    )


def compute_weighted_median_time(commit: Commit, validators: ValidatorSet) -> TimeMs | None:
    """The stake-weighted median of a commit's precommit times (CometBFT's BFT time): with less
    than a third of the stake faulty it lies within the honest validators' clocks."""
    timed = sorted(
        (s.time_ms, validators.get_power(s.validator))
        for s in commit.signatures
        if s.time_ms and validators.get_power(s.validator)
    )
    remaining = sum(power for _, power in timed) // 2
    for time_ms, power in timed:
        if remaining <= power:
            return TimeMs(time_ms)
        remaining -= power
    return None


def compute_block_time(state: ChainState, last_commit: Commit | None) -> TimeMs:
    """The BFT time of the block after ``state``: the median of its last commit's times, and
    always later than the block before it."""
    floor = TimeMs(state.last_block_time_ms + 1)
    median = (
        None
        if last_commit is None
        else compute_weighted_median_time(last_commit, state.last_validators)
    )
    return floor if median is None else TimeMs(max(median, floor))


class _Working:
    """A mutable copy of a state while one block is applied."""

    def __init__(self, state: ChainState, height: Height) -> None:
        self.state = state
        self.height = height
        self.accounts = dict(state.accounts)
        self.bonds = dict(state.bonds)
        self.unbonding = list(state.unbonding)
        self.slashed = set(state.slashed)
        self.pending_share: PendingShare | None = None
        self.reputations = dict(state.reputations)
        self.upgrade_signals = dict(state.upgrade_signals)


class CheckState:
    """CometBFT's check state: the last committed state with the mempool's admitted transactions
    applied in order, so a transaction is admitted only if it would apply after them."""

    def __init__(self, state: ChainState, verifier: SignatureVerifier) -> None:
        self._work = _Working(state, Height(state.height + 1))
        self._verifier = verifier

    def apply(self, signed: SignedTx) -> None:
        """Apply ``signed`` on top of what was admitted, or raise InvalidTx changing nothing."""
        process_tx(self._work, signed, self._verifier)


def is_valid_commit(
    chain_id: ChainId,
    commit: Commit,
    validator_set: ValidatorSet,
    state_params: ChainParams,
    verifier: SignatureVerifier,
) -> bool:
    """True when ``commit`` holds distinct valid precommits from more than threshold stake."""
    seen: set[Address] = set()
    signed_power = 0
    for sig in commit.signatures:
        validator = validator_set.get_validator(sig.validator)
        if validator is None or sig.validator in seen:
            return False
        if not verifier.is_valid(
            validator.public_key, commit.get_sign_bytes(chain_id, sig), sig.signature
        ):
            return False
        seen.add(sig.validator)
        signed_power += validator.power
    return is_quorum(signed_power, validator_set.total_power, state_params.threshold)


def process_evidence(
    work: _Working, evidence: DuplicateVoteEvidence, verifier: SignatureVerifier
) -> None:
    """Check duplicate-vote evidence and slash and jail the equivocator."""
    a, b = evidence.vote_a.vote, evidence.vote_b.vote
    if (a.chain_id, a.vote_type, a.height, a.round, a.validator) != (
        b.chain_id,
        b.vote_type,
        b.height,
        b.round,
        b.validator,
    ):
        raise InvalidTx("evidence votes differ in chain, type, height, round or validator")
    if a.block_hash == b.block_hash:
        raise InvalidTx("evidence votes do not conflict")
    if a.chain_id != work.state.chain_id:
        raise InvalidTx("evidence is from another chain")
    if not (work.height - work.state.params.evidence_max_age <= a.height <= work.height):
        raise InvalidTx(f"evidence height {a.height} is outside the evidence window")
    if (a.validator, a.height) in work.slashed:
        raise InvalidTx("evidence for this validator and height was already processed")
    bond = work.bonds.get(a.validator)
    if bond is None:
        raise InvalidTx("evidence names a validator with no bond")
    for signed in (evidence.vote_a, evidence.vote_b):
        if not verifier.is_valid(bond.public_key, signed.vote.sign_bytes(), signed.signature):
            raise InvalidTx("evidence vote has an invalid signature")
    process_slash(work, a.validator, work.state.params.slash_double_sign_percent)
    work.slashed.add((a.validator, a.height))


def get_rejected_proposers(
    work: _Working, rejections: tuple[RejectedProposal, ...], verifier: SignatureVerifier
) -> list[Address]:
    """The proposers that the block's rejection proofs prove the vote rejected (§3.6)."""
    rounds: set[int] = set()
    proposers: list[Address] = []
    for rejection in rejections:
        if rejection.proposal.round in rounds:
            raise InvalidBlock("block proves one round's rejection twice")
        rounds.add(rejection.proposal.round)
        try:
            proposers.append(get_proposer_rejected_here(work, rejection, verifier))
        except InvalidRejection as error:
            raise InvalidBlock(f"invalid rejection proof: {error}") from error
    return proposers


def get_proposer_rejected_here(
    work: _Working, rejection: RejectedProposal, verifier: SignatureVerifier
) -> Address:
    """The proposer ``rejection`` proves rejected at the height being built, or
    InvalidRejection."""
    state = work.state
    return get_rejected_proposer(
        rejection, state.chain_id, work.height, state.validators, state.params, verifier
    )


def process_rejection_deposits(
    work: _Working, proposers: list[Address], header: BlockHeader, contributors: list[Address]
) -> None:
    """Forfeit the rejected proposers' deposits to the update the height accepted (§3.6): in
    aggregate mode by value at the contributors' settlement, in solo mode to the proposer now;
    burned when the block keeps the model."""
    if not proposers:
        return
    if work.pending_share is not None:
        work.pending_share = replace(work.pending_share, rejected=tuple(proposers))
        return
    forfeit = compute_forfeit(
        proposers,
        {address: bond.bonded for address, bond in work.bonds.items()},
        work.state.params.proposal_deposit,
        header.model_hash != work.state.model_hash,
        header.proposer,
        contributors,
    )
    for address, amount in forfeit.taken.items():
        bond = work.bonds[address]
        work.bonds[address] = replace(bond, bonded=Tokens(bond.bonded - amount))
    for address, amount in forfeit.paid.items():
        process_credit(work, address, amount)


def process_slash(work: _Working, address: Address, percent: int) -> None:
    """Burn ``percent`` of a validator's bonded and unbonding tokens and jail it."""
    bond = work.bonds[address]
    penalty = bond.bonded * percent // 100
    work.bonds[address] = replace(
        bond,
        bonded=Tokens(bond.bonded - penalty),
        jailed=True,
        jailed_until=Height(work.height + work.state.params.jail_blocks),
        missed=0,
    )
    work.unbonding = [
        replace(u, amount=Tokens(u.amount - u.amount * percent // 100))
        if u.address == address
        else u
        for u in work.unbonding
    ]


def process_tx(work: _Working, signed: SignedTx, verifier: SignatureVerifier) -> None:
    """Apply one transaction, or raise InvalidTx leaving ``work`` unchanged.

    Every check comes before the first change, so a refused transaction changes nothing.
    """
    tx = signed.tx
    if tx.chain_id != work.state.chain_id:
        raise InvalidTx(f"transaction is for chain {tx.chain_id!r}")
    if not verifier.is_valid(tx.sender, tx.sign_bytes(), signed.signature):
        raise InvalidTx("transaction signature is invalid")
    sender = compute_address(tx.sender)
    account = work.accounts.get(sender, Account())
    if tx.nonce != account.nonce:
        raise InvalidTx(f"nonce {tx.nonce} is not the expected {account.nonce}")
    if tx.amount < 0:
        raise InvalidTx("amount must not be negative")
    params = work.state.params
    if tx.kind == TxKind.TRANSFER:
        if len(tx.recipient) != ADDRESS_LENGTH:
            raise InvalidTx("recipient must be a 20-byte address")
        if tx.amount <= 0 or account.balance < tx.amount:
            raise InvalidTx(f"cannot transfer {tx.amount} from a balance of {account.balance}")
        work.accounts[sender] = Account(Tokens(account.balance - tx.amount), Nonce(tx.nonce + 1))
        process_credit(work, tx.recipient, tx.amount)
        return
    if tx.kind == TxKind.STAKE:
        if tx.amount <= 0 or account.balance < tx.amount:
            raise InvalidTx(f"cannot stake {tx.amount} from a balance of {account.balance}")
        if len(tx.endpoint) > MAX_ENDPOINT_LENGTH:
            raise InvalidTx("endpoint is too long")
        if not is_valid_moniker(tx.moniker):
            raise InvalidTx(f"moniker is at most {MAX_MONIKER_LENGTH} printable characters")
        bond = work.bonds.get(sender)
        bonded = tx.amount + (bond.bonded if bond else 0)
        if bonded < params.min_stake:
            raise InvalidTx(f"bond of {bonded} would be below min_stake {params.min_stake}")
        account = replace(account, balance=Tokens(account.balance - tx.amount))
        work.bonds[sender] = (
            replace(
                bond,
                bonded=Tokens(bonded),
                endpoint=tx.endpoint or bond.endpoint,
                moniker=tx.moniker or bond.moniker,
            )
            if bond
            else Bond(tx.sender, Tokens(bonded), tx.endpoint, moniker=tx.moniker)
        )
    elif tx.kind == TxKind.UNSTAKE:
        bond = work.bonds.get(sender)
        if bond is None or tx.amount <= 0 or bond.bonded < tx.amount:
            raise InvalidTx(
                f"cannot unstake {tx.amount} from a bond of {bond.bonded if bond else 0}"
            )
        remaining = bond.bonded - tx.amount
        if remaining == 0 and not bond.jailed:
            del work.bonds[sender]
        else:
            work.bonds[sender] = replace(bond, bonded=Tokens(remaining))
        work.unbonding.append(
            Unbonding(sender, tx.amount, Height(work.height + params.unbonding_blocks))
        )
    elif tx.kind == TxKind.UNJAIL:
        bond = work.bonds.get(sender)
        if bond is None or not bond.jailed:
            raise InvalidTx("validator is not jailed")
        if work.height < bond.jailed_until:
            raise InvalidTx(f"validator is jailed until height {bond.jailed_until}")
        if bond.bonded < params.min_stake:
            raise InvalidTx(f"bond of {bond.bonded} is below min_stake {params.min_stake}")
        work.bonds[sender] = replace(bond, jailed=False, missed=0)
    elif tx.kind == TxKind.EVIDENCE:
        if tx.evidence is None:
            raise InvalidTx("evidence transaction carries no evidence")
        process_evidence(work, tx.evidence, verifier)
    elif tx.kind == TxKind.UPGRADE:
        process_upgrade_signal(work, sender, tx.upgrade)
    else:
        raise InvalidTx(f"unknown transaction kind {tx.kind}")
    work.accounts[sender] = replace(account, nonce=Nonce(tx.nonce + 1))


def process_upgrade_signal(work: _Working, sender: Address, plan: UpgradePlan | None) -> None:
    """A validator's signal for an upgrade plan (replacing its earlier one); InvalidTx, changing
    nothing, unless the sender decides this block and the plan names a later height."""
    if plan is None or not is_valid_upgrade_name(plan.name):
        raise InvalidTx("an upgrade names its plan: lower-case letters, digits, '.', '_', '-'")
    if plan.height <= work.height:
        raise InvalidTx(f"upgrade height {plan.height} is not after this block ({work.height})")
    if not work.state.validators.get_power(sender):
        raise InvalidTx("only a validator signals an upgrade")
    work.upgrade_signals[sender] = plan


def compute_upgraded_state(state: ChainState, height: Height) -> ChainState:
    """The state block ``height`` starts from: ``state`` itself, or, when an upgrade plan halts
    the chain at ``height``, the plan's handler applied to it (UpgradeNeeded when this build
    does not carry it)."""
    plan = state.upgrade_plan
    if plan is None or not is_upgrade_due(plan, height):
        return state
    handler = get_upgrade_handler(plan.name)
    if handler is None:
        raise UpgradeNeeded(plan)
    return replace(handler(state), upgrade_signals={}, upgrade_plan=None)


def compute_next_upgrade_plan(work: _Working) -> UpgradePlan | None:
    """The plan after a block: the one its validators' pending signals now schedule, else the
    one scheduled before (until its height)."""
    state = work.state
    validators = state.validators
    scheduled = compute_scheduled_plan(
        work.upgrade_signals, validators.get_power, validators.total_power, state.params.threshold
    )
    if scheduled is not None:
        return scheduled
    before = state.upgrade_plan
    return before if before is not None and before.height > work.height else None


def process_contributions(
    work: _Working,
    contributions: tuple[Contribution, ...],
    model_hash: Hash,
    verifier: SignatureVerifier,
    screened: tuple[Contribution, ...] = (),
) -> None:
    """Check aggregate-mode contributions, those aggregated and those screened out: signed by
    distinct current validators, trained from the current model (§3.2, §3.5)."""
    state = work.state
    if contributions and state.params.mode != "aggregate":
        raise InvalidBlock("solo mode blocks carry no contributions")
    if contributions and model_hash == state.model_hash:
        raise InvalidBlock("a block that keeps the model carries no contributions")
    if screened and not contributions:
        raise InvalidBlock("screened-out contributions without an aggregate")
    if len(contributions) + len(screened) > state.params.max_contributions:
        raise InvalidBlock("too many contributions")
    seen: set[Address] = set()
    for c in (*contributions, *screened):
        check_contribution(state, c, verifier)
        if c.validator in seen:
            raise InvalidBlock("two contributions from one validator")
        if c.height != state.learning.model_height:
            raise InvalidBlock("contribution is not trained from the current model")
        seen.add(c.validator)
    if state.params.keeps_reputation and contributions:
        left_out = get_reputation_exclusions(state)
        if any(c.validator in left_out for c in contributions):
            raise InvalidBlock("an aggregate includes a contribution its reputation leaves out")


def get_reputation_exclusions(state: ChainState) -> frozenset[Address]:
    """The validators whose contributions no aggregate may include, by their reputations
    (§3.9): judged over the whole validator set, so that a proposer cannot keep its own in by
    naming just enough contributions for a quorum."""
    validators = state.validators
    return compute_reputation_exclusions(
        [(v.address, v.power) for v in validators.validators],
        state.reputations,
        validators.total_power,
        state.params.threshold,
    )


def check_contribution(
    state: ChainState, contribution: Contribution, verifier: SignatureVerifier
) -> None:
    """Raise InvalidBlock unless ``contribution`` is signed by a current validator, for this
    chain, with samples (its height is the caller's to check)."""
    validator = state.validators.get_validator(contribution.validator)
    if validator is None:
        raise InvalidBlock("contribution from a non-validator")
    if not verifier.is_valid(
        validator.public_key, contribution.sign_bytes(), contribution.signature
    ):
        raise InvalidBlock("contribution signature is invalid")
    if contribution.chain_id != state.chain_id:
        raise InvalidBlock(f"contribution is for chain {contribution.chain_id!r}")
    if contribution.samples <= 0:
        raise InvalidBlock("contribution has no samples")


def process_rewards(
    work: _Working,
    header: BlockHeader,
    contributions: tuple[Contribution, ...],
    screened: tuple[Contribution, ...] = (),
) -> None:
    """Mint the block reward for a model update: the proposer's part now; in aggregate mode the
    contributors' part waits for their values, and the screened-out contributions' deposits
    for theirs (§3.5)."""
    params = work.state.params
    if header.model_hash == work.state.model_hash or params.block_reward == 0:
        return
    contributors = tuple(c.validator for c in contributions)
    if params.mode != "aggregate":
        contributors = ()
    proposer_share, work.pending_share = compute_pending_share(
        params, header.height, contributors, tuple(c.validator for c in screened)
    )
    process_credit(work, header.proposer, proposer_share)


def process_credit(work: _Working, address: Address, amount: int) -> None:
    """Add ``amount`` to an account's balance."""
    account = work.accounts.get(address, Account())
    work.accounts[address] = replace(account, balance=Tokens(account.balance + amount))


def process_settlement(work: _Working, last_commit: Commit | None) -> None:
    """Settle the previous block's pending contributors' share by the appraisal its commit
    carries: rewards in proportion to value, deposits forfeited by harmful contributions."""
    pending = work.state.pending_share
    if pending is None:
        return
    params = work.state.params
    appraisal = (
        None
        if last_commit is None
        else compute_appraisal(last_commit, work.state.last_validators, len(pending.judged), params)
    )
    owners = {*pending.judged, *pending.rejected}
    bonded = {a: b.bonded for a, b in work.bonds.items() if a in owners}
    settlement = compute_settlement(pending, appraisal, bonded, params)
    for address, amount in settlement.forfeits.items():
        bond = work.bonds[address]
        work.bonds[address] = replace(bond, bonded=Tokens(bond.bonded - amount))
    for address, amount in (*settlement.rewards.items(), *settlement.transfers.items()):
        process_credit(work, address, amount)
    process_reputations(work, pending, last_commit)


def process_reputations(work: _Working, pending: PendingShare, last_commit: Commit | None) -> None:
    """Move the reputations of the pending block's contributors by the reputation values its
    commit carries, when validators holding more than half of the power reported (§3.9)."""
    params = work.state.params
    if not params.keeps_reputation or last_commit is None:
        return
    validators = work.state.last_validators
    reports = compute_reputation_reports(last_commit, validators, len(pending.judged))
    if reports is None:
        return  # too few reported to stand for the set, as with the settlement values
    work.reputations = compute_next_reputations(
        work.reputations,
        pending.judged,
        reports,
        params.reputation_decay,
        left_out=pending.screened,
        recovery_ppm=params.reputation_decay,
    )


def process_downtime(work: _Working, last_commit: Commit | None) -> None:
    """Count consecutive missed signatures; jail (and lightly slash) long-absent validators."""
    if last_commit is None:
        return
    signers = last_commit.signers()
    params = work.state.params
    for validator in work.state.last_validators.validators:
        bond = work.bonds.get(validator.address)
        if bond is None or bond.jailed:
            continue
        if validator.address in signers:
            if bond.missed:
                work.bonds[validator.address] = replace(bond, missed=0)
            continue
        missed = bond.missed + 1
        work.bonds[validator.address] = replace(bond, missed=missed)
        if missed >= params.downtime_jail_blocks:
            process_slash(work, validator.address, params.slash_downtime_percent)


def process_unbonding(work: _Working) -> None:
    """Return matured unbonding tokens to their accounts."""
    remaining: list[Unbonding] = []
    for entry in work.unbonding:
        if entry.release_height <= work.height:
            process_credit(work, entry.address, entry.amount)
        else:
            remaining.append(entry)
    work.unbonding = remaining
    for address, bond in list(work.bonds.items()):
        if bond.bonded == 0 and not bond.jailed:
            del work.bonds[address]


def compute_active_powers(bonds: dict[Address, Bond], params: ChainParams) -> dict[Address, Stake]:
    """The validators that should be active: unjailed, at least min_stake, the largest first."""
    eligible = sorted(
        (
            (address, bond)
            for address, bond in bonds.items()
            if not bond.jailed and bond.bonded >= params.min_stake
        ),
        key=lambda item: (-item[1].bonded, item[0]),
    )[: params.max_validators]
    return {address: Stake(bond.bonded) for address, bond in eligible}


def compute_next_validator_set(work: _Working) -> ValidatorSet:
    """The set for height h+2: the state's next set with this block's staking changes applied."""
    current = work.state.next_validators
    wanted = compute_active_powers(work.bonds, work.state.params)
    changes: dict[Address, Validator] = {}
    for validator in current.validators:
        if validator.address not in wanted:
            changes[validator.address] = replace(validator, power=Stake(0))
    for address, power in wanted.items():
        member = current.get_validator(address)
        bond = work.bonds[address]
        if member is None or member.power != power or member.endpoint != bond.endpoint:
            changes[address] = Validator(address, bond.public_key, power, 0, bond.endpoint)
    updated = compute_updated(current, changes) if changes else current
    if not updated.validators:
        raise InvalidBlock("the block would leave the chain without validators")
    return compute_incremented(updated, times=1)


def process_header_checks(state: ChainState, block: Block, verifier: SignatureVerifier) -> None:
    """Objective checks of a header against the state it builds on."""
    header = block.header
    if header.chain_id != state.chain_id:
        raise InvalidBlock(f"block is for chain {header.chain_id!r}, not {state.chain_id!r}")
    if header.height != state.height + 1:
        raise InvalidBlock(f"block height {header.height} does not follow {state.height}")
    if header.prev_hash != state.last_block_hash:
        raise InvalidBlock("block does not build on the last block")
    if state.validators.get_validator(header.proposer) is None:
        raise InvalidBlock("block proposer is not a validator")
    if not is_body_consistent(block):
        raise InvalidBlock("block body does not match its header roots")
    if len(block.txs) > state.params.max_block_txs:
        raise InvalidBlock("block has too many transactions")
    commit = block.last_commit
    if state.height == 0:
        if commit is not None:
            raise InvalidBlock("the first block has no last commit")
        if header.time_ms != compute_block_time(state, None):
            raise InvalidBlock("the first block's time is not the genesis time + 1 ms")
        return
    if (
        commit is None
        or commit.height != state.height
        or commit.block_hash != state.last_block_hash
    ):
        raise InvalidBlock("block's last commit is not for the previous block")
    if not is_valid_commit(state.chain_id, commit, state.last_validators, state.params, verifier):
        raise InvalidBlock("block's last commit is invalid or lacks a quorum")
    if header.time_ms != compute_block_time(state, commit):
        raise InvalidBlock("block time is not the BFT time of its last commit")


def compute_next_state(
    state: ChainState,
    block: Block,
    verifier: SignatureVerifier,
) -> ChainState:
    """Apply a block's body to ``state`` (no header-root checks); the new state or InvalidBlock."""
    header = block.header
    state = compute_upgraded_state(state, header.height)
    work = _Working(state, header.height)
    learning = compute_learning_record(
        state.learning, state.params, state.height, block.last_commit, state.last_validators
    )
    model_changed = header.model_hash != state.model_hash
    if not learning.is_training() and (model_changed or block.contributions):
        reason = TrainingEnd(learning.end).name.lower()
        raise InvalidBlock(
            f"training ended at height {learning.end_height - 1} ({reason}): "
            "the model no longer changes"
        )
    if model_changed:
        learning = compute_record_after_update(learning, header.height)
    process_contributions(work, block.contributions, header.model_hash, verifier, block.screened)
    seen_evidence: set[Hash] = set()
    for evidence in block.evidence:
        if evidence.hash() in seen_evidence:
            raise InvalidBlock("block lists the same evidence twice")
        seen_evidence.add(evidence.hash())
        try:
            process_evidence(work, evidence, verifier)
        except InvalidTx as error:
            raise InvalidBlock(f"invalid evidence: {error}") from error
    rejected = get_rejected_proposers(work, block.rejections, verifier)
    for signed in block.txs:
        try:
            process_tx(work, signed, verifier)
        except InvalidTx as error:
            raise InvalidBlock(f"invalid transaction: {error}") from error
    process_settlement(work, block.last_commit)
    process_rewards(work, header, block.contributions, block.screened)
    process_rejection_deposits(work, rejected, header, [c.validator for c in block.contributions])
    process_downtime(work, block.last_commit)
    process_unbonding(work)
    work.slashed = {
        (a, h) for a, h in work.slashed if h + state.params.evidence_max_age >= work.height
    }
    work.upgrade_signals = compute_upgrade_signals(work.upgrade_signals, work.height)
    return ChainState(
        chain_id=state.chain_id,
        params=state.params,
        height=header.height,
        last_block_hash=block.hash,
        model_hash=header.model_hash,
        app_hash=state.app_hash,
        accounts=work.accounts,
        bonds=work.bonds,
        unbonding=tuple(work.unbonding),
        last_validators=state.validators,
        validators=state.next_validators,
        next_validators=compute_next_validator_set(work),
        slashed=frozenset(work.slashed),
        learning=learning,
        last_block_time_ms=header.time_ms,
        pending_share=work.pending_share,
        reputations=work.reputations,
        upgrade_signals=work.upgrade_signals,
        upgrade_plan=compute_next_upgrade_plan(work),
    )


def process_block(state: ChainState, block: Block, verifier: SignatureVerifier) -> ChainState:
    """The state after ``block``, or InvalidBlock if any objective check fails."""
    process_header_checks(state, block, verifier)
    new_state = compute_next_state(state, block, verifier)
    if new_state.compute_root() != block.header.state_root:
        raise InvalidBlock("block's state root does not match the state it produces")
    return new_state


def build_block(
    state: ChainState,
    proposer: Address,
    txs: list[SignedTx],
    evidence: tuple[DuplicateVoteEvidence, ...],
    last_commit: Commit | None,
    model_hash: Hash,
    contributions: tuple[Contribution, ...],
    verifier: SignatureVerifier,
    rejections: tuple[RejectedProposal, ...] = (),
    screened: tuple[Contribution, ...] = (),
) -> tuple[Block, ChainState]:
    """A valid block on top of ``state`` with what applies of ``evidence``, ``rejections``
    and ``txs``; ``screened``: contributions the proposer's screening left out (§3.5).

    Returns the block and the state it produces. Items that do not apply are left out (in the
    order ``compute_next_state`` applies them: evidence, rejections, then transactions).
    """
    state = compute_upgraded_state(state, Height(state.height + 1))
    work = _Working(state, Height(state.height + 1))
    usable_evidence: list[DuplicateVoteEvidence] = []
    for item in evidence:
        try:
            process_evidence(work, item, verifier)
        except InvalidTx:
            continue
        usable_evidence.append(item)
    usable_rejections: list[RejectedProposal] = []
    proven_rounds: set[int] = set()
    for rejection in rejections:
        if rejection.proposal.round in proven_rounds:
            continue
        try:
            get_proposer_rejected_here(work, rejection, verifier)
        except InvalidRejection:
            continue
        proven_rounds.add(rejection.proposal.round)
        usable_rejections.append(rejection)
    applicable: list[SignedTx] = []
    for signed in txs:
        if len(applicable) == state.params.max_block_txs:
            break
        try:
            process_tx(work, signed, verifier)  # raises before changing anything
        except InvalidTx:
            continue
        applicable.append(signed)
    draft = BlockHeader(
        chain_id=state.chain_id,
        height=Height(state.height + 1),
        prev_hash=state.last_block_hash,
        proposer=proposer,
        model_hash=model_hash,
        state_root=ZERO_HASH,
        txs_root=compute_txs_root(tuple(applicable)),
        evidence_root=compute_evidence_root(tuple(usable_evidence)),
        last_commit_root=compute_last_commit_root(last_commit),
        contributions_root=compute_contributions_root(contributions, screened),
        time_ms=compute_block_time(state, last_commit),
        rejections_root=compute_rejections_root(tuple(usable_rejections)),
    )
    body = Block(
        draft,
        tuple(applicable),
        tuple(usable_evidence),
        last_commit,
        contributions,
        tuple(usable_rejections),
        screened,
    )
    new_state = compute_next_state(state, body, verifier)
    header = replace(draft, state_root=new_state.compute_root())
    block = replace(body, header=header)
    return block, replace(new_state, last_block_hash=block.hash)
