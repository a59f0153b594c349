from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vote(_message.Message):
    __slots__ = ("chain_id", "vote_type", "height", "round", "block_hash", "validator", "signature", "score", "time_ms", "values", "rejects")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VOTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    vote_type: int
    height: int
    round: int
    block_hash: bytes
    validator: bytes
    signature: bytes
    score: int
    time_ms: int
    values: _containers.RepeatedScalarFieldContainer[int]
    rejects: bytes
    def __init__(self, chain_id: _Optional[str] = ..., vote_type: _Optional[int] = ..., height: _Optional[int] = ..., round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., validator: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., score: _Optional[int] = ..., time_ms: _Optional[int] = ..., values: _Optional[_Iterable[int]] = ..., rejects: _Optional[bytes] = ...) -> None: ...

class CommitSig(_message.Message):
    __slots__ = ("validator", "signature", "score", "time_ms", "values")
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    validator: bytes
    signature: bytes
    score: int
    time_ms: int
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, validator: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., score: _Optional[int] = ..., time_ms: _Optional[int] = ..., values: _Optional[_Iterable[int]] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("height", "round", "block_hash", "signatures")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    block_hash: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[CommitSig]
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[CommitSig, _Mapping]]] = ...) -> None: ...

class Contribution(_message.Message):
    __slots__ = ("chain_id", "height", "validator", "weights_hash", "samples", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_HASH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    validator: bytes
    weights_hash: bytes
    samples: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., validator: _Optional[bytes] = ..., weights_hash: _Optional[bytes] = ..., samples: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("vote_a", "vote_b")
    VOTE_A_FIELD_NUMBER: _ClassVar[int]
    VOTE_B_FIELD_NUMBER: _ClassVar[int]
    vote_a: Vote
    vote_b: Vote
    def __init__(self, vote_a: _Optional[_Union[Vote, _Mapping]] = ..., vote_b: _Optional[_Union[Vote, _Mapping]] = ...) -> None: ...

class Tx(_message.Message):
    __slots__ = ("chain_id", "kind", "sender", "nonce", "amount", "recipient", "endpoint", "evidence", "signature", "moniker", "upgrade")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    MONIKER_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    kind: int
    sender: bytes
    nonce: int
    amount: int
    recipient: bytes
    endpoint: str
    evidence: Evidence
    signature: bytes
    moniker: str
    upgrade: UpgradePlan
    def __init__(self, chain_id: _Optional[str] = ..., kind: _Optional[int] = ..., sender: _Optional[bytes] = ..., nonce: _Optional[int] = ..., amount: _Optional[int] = ..., recipient: _Optional[bytes] = ..., endpoint: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., signature: _Optional[bytes] = ..., moniker: _Optional[str] = ..., upgrade: _Optional[_Union[UpgradePlan, _Mapping]] = ...) -> None: ...

class UpgradePlan(_message.Message):
    __slots__ = ("name", "height")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    height: int
    def __init__(self, name: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...

class UpgradeSignal(_message.Message):
    __slots__ = ("address", "plan")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    plan: UpgradePlan
    def __init__(self, address: _Optional[bytes] = ..., plan: _Optional[_Union[UpgradePlan, _Mapping]] = ...) -> None: ...

class BlockHeader(_message.Message):
    __slots__ = ("chain_id", "height", "prev_hash", "proposer", "model_hash", "state_root", "txs_root", "evidence_root", "last_commit_root", "contributions_root", "time_ms", "rejections_root")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_ROOT_FIELD_NUMBER: _ClassVar[int]
    TXS_ROOT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_ROOT_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_ROOT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_ROOT_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_ROOT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    prev_hash: bytes
    proposer: bytes
    model_hash: bytes
    state_root: bytes
    txs_root: bytes
    evidence_root: bytes
    last_commit_root: bytes
    contributions_root: bytes
    time_ms: int
    rejections_root: bytes
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., proposer: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., state_root: _Optional[bytes] = ..., txs_root: _Optional[bytes] = ..., evidence_root: _Optional[bytes] = ..., last_commit_root: _Optional[bytes] = ..., contributions_root: _Optional[bytes] = ..., time_ms: _Optional[int] = ..., rejections_root: _Optional[bytes] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("header", "txs", "evidence", "last_commit", "contributions", "rejections", "screened")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TXS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCREENED_FIELD_NUMBER: _ClassVar[int]
    header: BlockHeader
    txs: _containers.RepeatedCompositeFieldContainer[Tx]
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    last_commit: Commit
    contributions: _containers.RepeatedCompositeFieldContainer[Contribution]
    rejections: _containers.RepeatedCompositeFieldContainer[RejectedProposal]
    screened: _containers.RepeatedCompositeFieldContainer[Contribution]
    def __init__(self, header: _Optional[_Union[BlockHeader, _Mapping]] = ..., txs: _Optional[_Iterable[_Union[Tx, _Mapping]]] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ..., last_commit: _Optional[_Union[Commit, _Mapping]] = ..., contributions: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ..., rejections: _Optional[_Iterable[_Union[RejectedProposal, _Mapping]]] = ..., screened: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ...) -> None: ...

class RejectedProposal(_message.Message):
    __slots__ = ("proposal", "prevotes")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    PREVOTES_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    prevotes: _containers.RepeatedCompositeFieldContainer[Vote]
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., prevotes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("chain_id", "height", "round", "block_hash", "valid_round", "signature", "block")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    VALID_ROUND_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    round: int
    block_hash: bytes
    valid_round: int
    signature: bytes
    block: Block
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., valid_round: _Optional[int] = ..., signature: _Optional[bytes] = ..., block: _Optional[_Union[Block, _Mapping]] = ...) -> None: ...

class BlockWithCommit(_message.Message):
    __slots__ = ("block", "commit")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    block: Block
    commit: Commit
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ...) -> None: ...

class BlockBatch(_message.Message):
    __slots__ = ("blocks",)
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockWithCommit]
    def __init__(self, blocks: _Optional[_Iterable[_Union[BlockWithCommit, _Mapping]]] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("address", "balance", "nonce")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    balance: int
    nonce: int
    def __init__(self, address: _Optional[bytes] = ..., balance: _Optional[int] = ..., nonce: _Optional[int] = ...) -> None: ...

class Bond(_message.Message):
    __slots__ = ("address", "public_key", "bonded", "endpoint", "jailed_until", "jailed", "missed", "moniker")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    BONDED_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    JAILED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    JAILED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    MONIKER_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    public_key: bytes
    bonded: int
    endpoint: str
    jailed_until: int
    jailed: bool
    missed: int
    moniker: str
    def __init__(self, address: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., bonded: _Optional[int] = ..., endpoint: _Optional[str] = ..., jailed_until: _Optional[int] = ..., jailed: _Optional[bool] = ..., missed: _Optional[int] = ..., moniker: _Optional[str] = ...) -> None: ...

class Unbonding(_message.Message):
    __slots__ = ("address", "amount", "release_height")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    amount: int
    release_height: int
    def __init__(self, address: _Optional[bytes] = ..., amount: _Optional[int] = ..., release_height: _Optional[int] = ...) -> None: ...

class Validator(_message.Message):
    __slots__ = ("address", "public_key", "power", "priority", "endpoint")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    public_key: bytes
    power: int
    priority: int
    endpoint: str
    def __init__(self, address: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., power: _Optional[int] = ..., priority: _Optional[int] = ..., endpoint: _Optional[str] = ...) -> None: ...

class ValidatorSet(_message.Message):
    __slots__ = ("validators", "proposer")
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    validators: _containers.RepeatedCompositeFieldContainer[Validator]
    proposer: bytes
    def __init__(self, validators: _Optional[_Iterable[_Union[Validator, _Mapping]]] = ..., proposer: _Optional[bytes] = ...) -> None: ...

class ChainParams(_message.Message):
    __slots__ = ("threshold_numerator", "threshold_denominator", "mode", "min_stake", "max_validators", "unbonding_blocks", "block_reward", "proposer_reward_percent", "slash_double_sign_percent", "slash_downtime_percent", "downtime_jail_blocks", "jail_blocks", "evidence_max_age", "max_block_txs", "max_contributions", "training_heights", "vote_relay_from", "round_deadline", "verdict_timeout", "target_score", "plateau_rounds", "min_improvement", "contribution_deposit", "forfeit_margin", "proposal_deposit", "reputation_decay")
    THRESHOLD_NUMERATOR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_DENOMINATOR_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_STAKE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    UNBONDING_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REWARD_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_REWARD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SLASH_DOUBLE_SIGN_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SLASH_DOWNTIME_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DOWNTIME_JAIL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    JAIL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_TXS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_HEIGHTS_FIELD_NUMBER: _ClassVar[int]
    VOTE_RELAY_FROM_FIELD_NUMBER: _ClassVar[int]
    ROUND_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_SCORE_FIELD_NUMBER: _ClassVar[int]
    PLATEAU_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    MIN_IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    FORFEIT_MARGIN_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    REPUTATION_DECAY_FIELD_NUMBER: _ClassVar[int]
    threshold_numerator: int
    threshold_denominator: int
    mode: str
    min_stake: int
    max_validators: int
    unbonding_blocks: int
    block_reward: int
    proposer_reward_percent: int
    slash_double_sign_percent: int
    slash_downtime_percent: int
    downtime_jail_blocks: int
    jail_blocks: int
    evidence_max_age: int
    max_block_txs: int
    max_contributions: int
    training_heights: int
    vote_relay_from: int
    round_deadline: int
    verdict_timeout: int
    target_score: int
    plateau_rounds: int
    min_improvement: int
    contribution_deposit: int
    forfeit_margin: int
    proposal_deposit: int
    reputation_decay: int
    def __init__(self, threshold_numerator: _Optional[int] = ..., threshold_denominator: _Optional[int] = ..., mode: _Optional[str] = ..., min_stake: _Optional[int] = ..., max_validators: _Optional[int] = ..., unbonding_blocks: _Optional[int] = ..., block_reward: _Optional[int] = ..., proposer_reward_percent: _Optional[int] = ..., slash_double_sign_percent: _Optional[int] = ..., slash_downtime_percent: _Optional[int] = ..., downtime_jail_blocks: _Optional[int] = ..., jail_blocks: _Optional[int] = ..., evidence_max_age: _Optional[int] = ..., max_block_txs: _Optional[int] = ..., max_contributions: _Optional[int] = ..., training_heights: _Optional[int] = ..., vote_relay_from: _Optional[int] = ..., round_deadline: _Optional[int] = ..., verdict_timeout: _Optional[int] = ..., target_score: _Optional[int] = ..., plateau_rounds: _Optional[int] = ..., min_improvement: _Optional[int] = ..., contribution_deposit: _Optional[int] = ..., forfeit_margin: _Optional[int] = ..., proposal_deposit: _Optional[int] = ..., reputation_decay: _Optional[int] = ...) -> None: ...

class LearningRecord(_message.Message):
    __slots__ = ("model_height", "model_score", "best_score", "stale_rounds", "scored_height", "scored", "end", "end_height")
    MODEL_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_SCORE_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    STALE_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SCORED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    END_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    model_height: int
    model_score: int
    best_score: int
    stale_rounds: int
    scored_height: int
    scored: int
    end: int
    end_height: int
    def __init__(self, model_height: _Optional[int] = ..., model_score: _Optional[int] = ..., best_score: _Optional[int] = ..., stale_rounds: _Optional[int] = ..., scored_height: _Optional[int] = ..., scored: _Optional[int] = ..., end: _Optional[int] = ..., end_height: _Optional[int] = ...) -> None: ...

class SlashRecord(_message.Message):
    __slots__ = ("address", "height")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    height: int
    def __init__(self, address: _Optional[bytes] = ..., height: _Optional[int] = ...) -> None: ...

class ChainState(_message.Message):
    __slots__ = ("chain_id", "params", "height", "last_block_hash", "model_hash", "app_hash", "accounts", "bonds", "unbonding", "last_validators", "validators", "next_validators", "slashed", "learning", "last_block_time_ms", "pending_share", "reputations", "upgrade_signals", "upgrade_plan")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    APP_HASH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    BONDS_FIELD_NUMBER: _ClassVar[int]
    UNBONDING_FIELD_NUMBER: _ClassVar[int]
    LAST_VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    SLASHED_FIELD_NUMBER: _ClassVar[int]
    LEARNING_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PENDING_SHARE_FIELD_NUMBER: _ClassVar[int]
    REPUTATIONS_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_PLAN_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    params: ChainParams
    height: int
    last_block_hash: bytes
    model_hash: bytes
    app_hash: bytes
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    bonds: _containers.RepeatedCompositeFieldContainer[Bond]
    unbonding: _containers.RepeatedCompositeFieldContainer[Unbonding]
    last_validators: ValidatorSet
    validators: ValidatorSet
    next_validators: ValidatorSet
    slashed: _containers.RepeatedCompositeFieldContainer[SlashRecord]
    learning: LearningRecord
    last_block_time_ms: int
    pending_share: PendingShare
    reputations: _containers.RepeatedCompositeFieldContainer[Reputation]
    upgrade_signals: _containers.RepeatedCompositeFieldContainer[UpgradeSignal]
    upgrade_plan: UpgradePlan
    def __init__(self, chain_id: _Optional[str] = ..., params: _Optional[_Union[ChainParams, _Mapping]] = ..., height: _Optional[int] = ..., last_block_hash: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., app_hash: _Optional[bytes] = ..., accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., bonds: _Optional[_Iterable[_Union[Bond, _Mapping]]] = ..., unbonding: _Optional[_Iterable[_Union[Unbonding, _Mapping]]] = ..., last_validators: _Optional[_Union[ValidatorSet, _Mapping]] = ..., validators: _Optional[_Union[ValidatorSet, _Mapping]] = ..., next_validators: _Optional[_Union[ValidatorSet, _Mapping]] = ..., slashed: _Optional[_Iterable[_Union[SlashRecord, _Mapping]]] = ..., learning: _Optional[_Union[LearningRecord, _Mapping]] = ..., last_block_time_ms: _Optional[int] = ..., pending_share: _Optional[_Union[PendingShare, _Mapping]] = ..., reputations: _Optional[_Iterable[_Union[Reputation, _Mapping]]] = ..., upgrade_signals: _Optional[_Iterable[_Union[UpgradeSignal, _Mapping]]] = ..., upgrade_plan: _Optional[_Union[UpgradePlan, _Mapping]] = ...) -> None: ...

class Reputation(_message.Message):
    __slots__ = ("address", "value")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    value: int
    def __init__(self, address: _Optional[bytes] = ..., value: _Optional[int] = ...) -> None: ...

class PendingShare(_message.Message):
    __slots__ = ("height", "contributors", "pool", "rejected", "screened")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTORS_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    SCREENED_FIELD_NUMBER: _ClassVar[int]
    height: int
    contributors: _containers.RepeatedScalarFieldContainer[bytes]
    pool: int
    rejected: _containers.RepeatedScalarFieldContainer[bytes]
    screened: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, height: _Optional[int] = ..., contributors: _Optional[_Iterable[bytes]] = ..., pool: _Optional[int] = ..., rejected: _Optional[_Iterable[bytes]] = ..., screened: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SignState(_message.Message):
    __slots__ = ("height", "round", "step", "locked_round", "locked_block_hash", "votes", "proposal")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOCKED_ROUND_FIELD_NUMBER: _ClassVar[int]
    LOCKED_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    step: int
    locked_round: int
    locked_block_hash: bytes
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    proposal: Proposal
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., step: _Optional[int] = ..., locked_round: _Optional[int] = ..., locked_block_hash: _Optional[bytes] = ..., votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ..., proposal: _Optional[_Union[Proposal, _Mapping]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TxAck(_message.Message):
    __slots__ = ("tx_hash",)
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    def __init__(self, tx_hash: _Optional[bytes] = ...) -> None: ...

class ContributionAnnouncement(_message.Message):
    __slots__ = ("contribution",)
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    contribution: Contribution
    def __init__(self, contribution: _Optional[_Union[Contribution, _Mapping]] = ...) -> None: ...

class FetchWeightsRequest(_message.Message):
    __slots__ = ("weights_hash", "public_key", "time_ms", "signature", "chain_id", "stripe", "stripes")
    WEIGHTS_HASH_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    STRIPE_FIELD_NUMBER: _ClassVar[int]
    STRIPES_FIELD_NUMBER: _ClassVar[int]
    weights_hash: bytes
    public_key: bytes
    time_ms: int
    signature: bytes
    chain_id: str
    stripe: int
    stripes: int
    def __init__(self, weights_hash: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., time_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., chain_id: _Optional[str] = ..., stripe: _Optional[int] = ..., stripes: _Optional[int] = ...) -> None: ...

class WeightsChunk(_message.Message):
    __slots__ = ("data", "total_size", "part")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    total_size: int
    part: int
    def __init__(self, data: _Optional[bytes] = ..., total_size: _Optional[int] = ..., part: _Optional[int] = ...) -> None: ...

class GetBlocksRequest(_message.Message):
    __slots__ = ("from_height", "to_height", "chain_id")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TO_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    to_height: int
    chain_id: str
    def __init__(self, from_height: _Optional[int] = ..., to_height: _Optional[int] = ..., chain_id: _Optional[str] = ...) -> None: ...

class HelloRequest(_message.Message):
    __slots__ = ("chain_id", "node_id", "endpoint", "public_key", "nonce", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    node_id: bytes
    endpoint: str
    public_key: bytes
    nonce: bytes
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., node_id: _Optional[bytes] = ..., endpoint: _Optional[str] = ..., public_key: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("chain_id", "node_id", "height", "public_key", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    node_id: bytes
    height: int
    public_key: bytes
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., node_id: _Optional[bytes] = ..., height: _Optional[int] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class VoteBatch(_message.Message):
    __slots__ = ("votes",)
    VOTES_FIELD_NUMBER: _ClassVar[int]
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    def __init__(self, votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("proposal", "vote", "evidence", "contribution", "votes", "weights")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    vote: Vote
    evidence: Evidence
    contribution: ContributionAnnouncement
    votes: VoteBatch
    weights: bytes
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., vote: _Optional[_Union[Vote, _Mapping]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., contribution: _Optional[_Union[ContributionAnnouncement, _Mapping]] = ..., votes: _Optional[_Union[VoteBatch, _Mapping]] = ..., weights: _Optional[bytes] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("chain_id", "node_id", "height", "latest_block_hash", "model_hash", "peers", "syncing", "moniker", "round", "step", "learning", "metric", "own_evaluation", "upgrade_plan", "upgrade_signals", "known_upgrades")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LATEST_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    SYNCING_FIELD_NUMBER: _ClassVar[int]
    MONIKER_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LEARNING_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OWN_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_PLAN_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_UPGRADES_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    node_id: str
    height: int
    latest_block_hash: bytes
    model_hash: bytes
    peers: int
    syncing: bool
    moniker: str
    round: int
    step: int
    learning: LearningRecord
    metric: str
    own_evaluation: NodeEvaluation
    upgrade_plan: UpgradePlan
    upgrade_signals: _containers.RepeatedCompositeFieldContainer[UpgradeSignal]
    known_upgrades: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, chain_id: _Optional[str] = ..., node_id: _Optional[str] = ..., height: _Optional[int] = ..., latest_block_hash: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., peers: _Optional[int] = ..., syncing: _Optional[bool] = ..., moniker: _Optional[str] = ..., round: _Optional[int] = ..., step: _Optional[int] = ..., learning: _Optional[_Union[LearningRecord, _Mapping]] = ..., metric: _Optional[str] = ..., own_evaluation: _Optional[_Union[NodeEvaluation, _Mapping]] = ..., upgrade_plan: _Optional[_Union[UpgradePlan, _Mapping]] = ..., upgrade_signals: _Optional[_Iterable[_Union[UpgradeSignal, _Mapping]]] = ..., known_upgrades: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeEvaluation(_message.Message):
    __slots__ = ("score", "accuracy", "loss")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    score: float
    accuracy: float
    loss: float
    def __init__(self, score: _Optional[float] = ..., accuracy: _Optional[float] = ..., loss: _Optional[float] = ...) -> None: ...

class BlockRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class ValidatorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ValidatorsResponse(_message.Message):
    __slots__ = ("height", "validators", "monikers", "reputations", "keeps_reputation")
    class MonikersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ReputationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    MONIKERS_FIELD_NUMBER: _ClassVar[int]
    REPUTATIONS_FIELD_NUMBER: _ClassVar[int]
    KEEPS_REPUTATION_FIELD_NUMBER: _ClassVar[int]
    height: int
    validators: ValidatorSet
    monikers: _containers.ScalarMap[str, str]
    reputations: _containers.ScalarMap[str, int]
    keeps_reputation: bool
    def __init__(self, height: _Optional[int] = ..., validators: _Optional[_Union[ValidatorSet, _Mapping]] = ..., monikers: _Optional[_Mapping[str, str]] = ..., reputations: _Optional[_Mapping[str, int]] = ..., keeps_reputation: _Optional[bool] = ...) -> None: ...

class AccountRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    def __init__(self, address: _Optional[bytes] = ...) -> None: ...

class AccountResponse(_message.Message):
    __slots__ = ("account", "bond", "unbonding")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    BOND_FIELD_NUMBER: _ClassVar[int]
    UNBONDING_FIELD_NUMBER: _ClassVar[int]
    account: Account
    bond: Bond
    unbonding: _containers.RepeatedCompositeFieldContainer[Unbonding]
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., bond: _Optional[_Union[Bond, _Mapping]] = ..., unbonding: _Optional[_Iterable[_Union[Unbonding, _Mapping]]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("from_height", "limit")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    limit: int
    def __init__(self, from_height: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("height", "block_hash", "proposer", "model_hash", "model_updated", "txs", "round", "contributions", "score", "contributors")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_UPDATED_FIELD_NUMBER: _ClassVar[int]
    TXS_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTORS_FIELD_NUMBER: _ClassVar[int]
    height: int
    block_hash: bytes
    proposer: bytes
    model_hash: bytes
    model_updated: bool
    txs: int
    round: int
    contributions: int
    score: int
    contributors: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, height: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., proposer: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., model_updated: _Optional[bool] = ..., txs: _Optional[int] = ..., round: _Optional[int] = ..., contributions: _Optional[int] = ..., score: _Optional[int] = ..., contributors: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TxRequest(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    def __init__(self, hash: _Optional[bytes] = ...) -> None: ...

class TxResponse(_message.Message):
    __slots__ = ("height", "index", "block_hash", "tx")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    TX_FIELD_NUMBER: _ClassVar[int]
    height: int
    index: int
    block_hash: bytes
    tx: Tx
    def __init__(self, height: _Optional[int] = ..., index: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., tx: _Optional[_Union[Tx, _Mapping]] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class GenesisRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GenesisResponse(_message.Message):
    __slots__ = ("genesis_json",)
    GENESIS_JSON_FIELD_NUMBER: _ClassVar[int]
    genesis_json: bytes
    def __init__(self, genesis_json: _Optional[bytes] = ...) -> None: ...
