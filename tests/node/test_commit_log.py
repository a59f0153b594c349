"""Each written block sets the height and counts a model update only when the model changed."""

from __future__ import annotations

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.events import CommitBlock
from learnchain.consensus.types import Hash
from learnchain.node.chain.commit_log import CommitLog
from learnchain.node.telemetry.metrics import Metrics
from learnchain.proto.wire import block_to_proto
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


CHAIN = "test-chain"


def value(metrics: Metrics, name: str) -> float:
    sample = metrics.registry.get_sample_value(name, {"chain_id": CHAIN})
    assert sample is not None, name
    return sample


def commit_blocks(
    metrics: Metrics, models: list[Hash | None], signers: int = 4
) -> tuple[Chain, CommitLog, int]:
    """The blocks committed and logged; the last one's encoded size."""
    written = [0]  # the block's size as the store wrote it (BlockExecutor.block_bytes)
    log = CommitLog(metrics, lambda: 0.0, KEYS[0].address, lambda: written[0])
    chain = Chain(make_genesis_state(KEYS), KEYS)
    for model in models:
        previous = chain.state
        block = chain.next_block(model_hash=model)
        state = chain.commit(block, signers=KEYS[:signers])
        assert chain.last_commit is not None
        written[0] = len(block_to_proto(block).SerializeToString())
        log.on_commit(CommitBlock(block, chain.last_commit, state), previous)
    return chain, log, written[0]


def test_the_height_follows_the_blocks_and_only_model_changes_count_as_updates() -> None:
    metrics = Metrics(CHAIN)
    log = CommitLog(metrics, lambda: 0.0, KEYS[0].address, lambda: 0)
    chain = Chain(make_genesis_state(KEYS), KEYS)
    for model in (None, compute_hash(b"update"), None):
        previous = chain.state
        block = chain.next_block(model_hash=model)
        state = chain.commit(block)
        assert chain.last_commit is not None
        log.on_commit(CommitBlock(block, chain.last_commit, state), previous)
    assert value(metrics, "learnchain_consensus_height") == 3
    assert value(metrics, "learnchain_learning_model_updates_total") == 1
    assert value(metrics, "learnchain_consensus_rounds_per_height_count") == 3


def test_the_validator_set_and_its_power_are_reported() -> None:
    metrics = Metrics(CHAIN)
    _, _, size = commit_blocks(metrics, [None])
    assert value(metrics, "learnchain_consensus_validators") == 4
    assert value(metrics, "learnchain_consensus_validators_power") == sum(
        v.power for v in make_genesis_state(KEYS).validators.validators
    )
    assert value(metrics, "learnchain_consensus_validator_power") > 0
    assert value(metrics, "learnchain_consensus_block_size_bytes") == size > 0


def test_validators_missing_from_a_commit_are_counted_and_own_signing_is_tracked() -> None:
    metrics = Metrics(CHAIN)
    commit_blocks(metrics, [None, None], signers=3)  # KEYS[3] signs neither commit
    assert value(metrics, "learnchain_consensus_missing_validators") == 1
    assert value(metrics, "learnchain_consensus_validator_last_signed_height") == 2
    assert value(metrics, "learnchain_consensus_validator_missed_blocks_total") == 0


def test_every_series_carries_the_chain_id() -> None:
    metrics = Metrics(CHAIN)
    commit_blocks(metrics, [None])
    ours = [
        sample
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name.startswith("learnchain_")
        and not sample.name.startswith("learnchain_process")
    ]
    assert ours
    assert all(sample.labels.get("chain_id") == CHAIN for sample in ours)
