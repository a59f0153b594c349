"""Chain parameters and the genesis they come from."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from learnchain.consensus.encoding import (
    encode_bytes,
    encode_int,
    encode_list,
    encode_str,
    encode_uint,
)
from learnchain.consensus.types import (
    Address,
    ChainId,
    Hash,
    PublicKey,
    Stake,
    Threshold,
    TimeMs,
    Tokens,
)


class Mode(enum.StrEnum):
    """How model updates are made (docs/protocol.md §3)."""

    AGGREGATE = "aggregate"  # every validator contributes; the proposer aggregates
    SOLO = "solo"  # the proposer trains alone


class TrainingEnd(enum.IntEnum):
    """Why the model no longer changes (docs/protocol.md §3.4)."""

    NONE = 0  # training goes on
    BUDGET = 1  # the training_heights budget is spent
    TARGET = 2  # the recorded score reached target_score
    PLATEAU = 3  # plateau_rounds updates in a row without min_improvement


MODES = tuple(mode.value for mode in Mode)
DEFAULT_VOTE_RELAY_FROM = 8
SCORE_UNIT = 1_000_000  # scores on chain are micro-units of the metric (accuracy, or -loss)
MAX_LEARNING_MS = 86_400_000  # a day: a longer round deadline or verdict timeout is a typo


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Everything the state transition is parameterised by; all of it lives in the genesis."""

    threshold: Threshold = Threshold(2, 3)  # the share of stake a decision needs: 2/3 or 1/2
    mode: Mode = Mode.AGGREGATE  # "aggregate" (FL rounds, §3.2) or "solo" (one trainer)
    min_stake: Stake = Stake(100)  # the least bond a validator may hold
    max_validators: int = 100  # the active set: the largest bonds, at most this many
    unbonding_blocks: int = 20  # blocks an unbonded stake stays slashable before it is paid out
    block_reward: Tokens = Tokens(10)  # tokens minted per block that updates the model
    proposer_reward_percent: int = 50  # aggregate mode: the rest is split among contributors
    slash_double_sign_percent: int = 5  # of the bond, for two votes in one step (evidence)
    slash_downtime_percent: int = 1  # of the bond, for downtime_jail_blocks missed in a row
    downtime_jail_blocks: int = 50  # consecutive blocks missed before jailing
    jail_blocks: int = 100  # how long a jailed validator is out of the active set
    evidence_max_age: int = 100  # blocks after which evidence of double signing is too old
    max_block_txs: int = 1000  # transactions per block
    max_contributions: int = 100  # contributions an aggregate may list
    training_heights: int = 0  # the model may change up to this height; 0: training never ends
    # From this many validators on, a validator sends its vote for a block to the round's
    # proposer alone, which relays the votes it counts to every peer in batches: O(n) gossip
    # messages a step instead of O(n²). 0: never (every validator sends to every peer).
    vote_relay_from: int = DEFAULT_VOTE_RELAY_FROM
    # Learning rounds (§3.2). The aggregating proposer waits for contributions at most this
    # long after the model it builds on was committed (then aggregates what it has).
    round_deadline: int = 60_000  # milliseconds
    # A validator may take this long to fetch and score a proposed model before it prevotes
    # (the propose step is extended for a pending verdict up to it; Alg.1 line 57 after it).
    verdict_timeout: int = 30_000  # milliseconds
    # Training ends by itself (§3.4): when the recorded score reaches ``target_score`` (None: no
    # target), or after ``plateau_rounds`` updates without improving the best recorded score by
    # ``min_improvement`` (0: no plateau rule). Scores are micro-units, higher is better.
    target_score: int | None = None
    plateau_rounds: int = 20  # see target_score
    min_improvement: int = 1000  # see target_score
    # Incentives (§3.5): a contribution that validators holding more than the threshold of stake
    # value below -forfeit_margin (micro-units) forfeits contribution_deposit of its author's bond.
    contribution_deposit: Tokens = Tokens(10)
    forfeit_margin: int = 0  # see contribution_deposit
    # A first-time proposal of a model update that the vote rejects (§3.6) forfeits
    # proposal_deposit of its proposer's bond once a rejection proof is committed.
    proposal_deposit: Tokens = Tokens(10)
    # Reputation (§3.9), parts per million: each learning round a contributor's reputation
    # decays by this and moves by the others' appraisals; an aggregate leaves out the lowest.
    # 0: no reputation (precommits carry the settlement values alone).
    reputation_decay: int = 0

    @property
    def keeps_reputation(self) -> bool:
        """True when the chain keeps contributors' reputations (§3.9)."""
        return self.reputation_decay > 0

    def validate(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        if self.mode not in MODES:  # a Mode, or a string from outside
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        bounded = {
            "proposer_reward_percent": self.proposer_reward_percent,
            "slash_double_sign_percent": self.slash_double_sign_percent,
            "slash_downtime_percent": self.slash_downtime_percent,
        }
        for name, value in bounded.items():
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be between 0 and 100, got {value}")
        positive = {
            "min_stake": self.min_stake,
            "max_validators": self.max_validators,
            "unbonding_blocks": self.unbonding_blocks,
            "downtime_jail_blocks": self.downtime_jail_blocks,
            "jail_blocks": self.jail_blocks,
            "evidence_max_age": self.evidence_max_age,
            "max_block_txs": self.max_block_txs,
            "max_contributions": self.max_contributions,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.vote_relay_from < 0:
            raise ValueError(f"vote_relay_from must not be negative, got {self.vote_relay_from}")
        if self.training_heights < 0:
            raise ValueError(f"training_heights must not be negative, got {self.training_heights}")
        if self.block_reward < 0:
            raise ValueError(f"block_reward must not be negative, got {self.block_reward}")
        for name, value in (
            ("round_deadline", self.round_deadline),
            ("verdict_timeout", self.verdict_timeout),
        ):
            if not 1 <= value <= MAX_LEARNING_MS:
                raise ValueError(f"{name} must be between 1 and {MAX_LEARNING_MS} ms, got {value}")
        if not 0 <= self.plateau_rounds <= 1_000_000:
            raise ValueError(
                f"plateau_rounds must be between 0 and 1000000, got {self.plateau_rounds}"
            )
        if not 0 <= self.contribution_deposit <= self.min_stake:
            raise ValueError(
                f"contribution_deposit must be between 0 and min_stake ({self.min_stake}), "
                f"got {self.contribution_deposit}"
            )
        if not 0 <= self.proposal_deposit <= self.min_stake:
            raise ValueError(
                f"proposal_deposit must be between 0 and min_stake ({self.min_stake}), "
                f"got {self.proposal_deposit}"
            )
        if not 0 <= self.forfeit_margin <= SCORE_UNIT:
            raise ValueError(
                f"forfeit_margin must be between 0 and {SCORE_UNIT} (micro-units), "
                f"got {self.forfeit_margin}"
            )
        if not 0 <= self.min_improvement <= SCORE_UNIT:
            raise ValueError(
                f"min_improvement must be between 0 and {SCORE_UNIT} (micro-units), "
                f"got {self.min_improvement}"
            )
        if self.target_score is not None and abs(self.target_score) > 1000 * SCORE_UNIT:
            raise ValueError(f"target_score is out of range, got {self.target_score}")
        if not 0 <= self.reputation_decay < SCORE_UNIT:
            raise ValueError(
                f"reputation_decay must be at least 0 and below {SCORE_UNIT} (parts per "
                f"million; 0: no reputation), got {self.reputation_decay}"
            )

    def is_training_height(self, height: int) -> bool:
        """True when a block at ``height`` may still change the model (after the training
        budget, blocks carry transactions only: docs/protocol.md §3)."""
        return self.training_heights == 0 or height <= self.training_heights

    def encode(self) -> bytes:
        """Canonical bytes (part of the state root)."""
        return (
            encode_uint(self.threshold.numerator)
            + encode_uint(self.threshold.denominator)
            + encode_str(self.mode)
            + b"".join(
                encode_uint(v)
                for v in (
                    self.min_stake,
                    self.max_validators,
                    self.unbonding_blocks,
                    self.block_reward,
                    self.proposer_reward_percent,
                    self.slash_double_sign_percent,
                    self.slash_downtime_percent,
                    self.downtime_jail_blocks,
                    self.jail_blocks,
                    self.evidence_max_age,
                    self.max_block_txs,
                    self.max_contributions,
                    self.training_heights,
                    self.vote_relay_from,
                    self.round_deadline,
                    self.verdict_timeout,
                    self.plateau_rounds,
                    self.min_improvement,
                    self.contribution_deposit,
                    self.forfeit_margin,
                    self.proposal_deposit,
                )
            )
            + (b"\x00" if self.target_score is None else b"\x01" + encode_int(self.target_score))
            # without reputation, the bytes from before it existed
            + (encode_uint(self.reputation_decay) if self.keeps_reputation else b"")
        )


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    """A validator bonded at genesis."""

    public_key: PublicKey
    stake: Stake
    endpoint: str = ""
    moniker: str = ""


@dataclass(frozen=True, slots=True)
class Genesis:
    """The chain's first state: parameters, validators, balances and the initial model."""

    chain_id: ChainId
    params: ChainParams
    validators: tuple[GenesisValidator, ...]
    accounts: tuple[tuple[Address, Tokens], ...]
    initial_model_hash: Hash
    app_hash: Hash  # hash of what the consensus does not read (the learning task)
    genesis_time_ms: TimeMs = TimeMs(0)  # the chain's start; block 1's time is one ms later

    def encode(self) -> bytes:
        """Canonical bytes."""
        return (
            encode_str(self.chain_id)
            + self.params.encode()
            + encode_list(
                encode_bytes(v.public_key) + encode_uint(v.stake) + encode_str(v.endpoint)
                for v in self.validators
            )
            + encode_list(encode_bytes(a) + encode_uint(b) for a, b in self.accounts)
            + encode_bytes(self.initial_model_hash)
            + encode_bytes(self.app_hash)
            + encode_uint(self.genesis_time_ms)
        )
