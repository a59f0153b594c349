"""Each written block sets the height and counts a model update only when the model changed."""

from __future__ import annotations

from consensus.crypto import compute_hash
from consensus.events import CommitBlock
from node.commit_log import CommitLog
from node.metrics import Metrics
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def value(metrics: Metrics, name: str) -> float:
    sample = metrics.registry.get_sample_value(name)
    assert sample is not None, name
    return sample


def test_the_height_follows_the_blocks_and_only_model_changes_count_as_updates() -> None:
    metrics = Metrics()
    log = CommitLog(metrics, lambda: 0.0, lambda: 3)
    chain = Chain(make_genesis_state(KEYS), KEYS)
    for model in (None, compute_hash(b"update"), None):
        previous = chain.state
        block = chain.next_block(model_hash=model)
        state = chain.commit(block)
        assert chain.last_commit is not None
        log.on_commit(CommitBlock(block, chain.last_commit, state), previous)
    assert value(metrics, "learnchain_height") == 3
    assert value(metrics, "learnchain_model_updates_total") == 1
    assert value(metrics, "learnchain_peers") == 3
    assert value(metrics, "learnchain_rounds_per_height_count") == 3
