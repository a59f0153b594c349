"""The parties of a benchmark: shards of one pool, each split into training and vote parts, and
a learner for each (honest, or byzantine for an attack). The quality bench and the side-by-side
bench with Flower build identical parties from the same seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from learnchain.ml.adversaries import (
    BACKDOOR_TARGET,
    POOLING_ATTACKS,
    ByzantineLearner,
    Collusion,
    compute_alie_z,
    make_learner,
)
from learnchain.ml.codec import StateDict
from learnchain.ml.config import FILE_DATA_METRIC
from learnchain.ml.data import (
    Dataset,
    PartyData,
    compute_dirichlet_shards,
    compute_iid_shards,
    load_digits_pool,
    parse_partition,
    split_test,
    split_train_vote,
)
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import Task, TaskConfig, fit_task_to_data, get_task


def make_shards(pool: Dataset, parties: int, partition: str, seed: int) -> list[Dataset]:
    """``pool`` split among ``parties`` (``iid`` or ``dirichlet:ALPHA``)."""
    kind, alpha = parse_partition(partition)
    indices = (
        compute_iid_shards(pool.y, parties, seed)
        if kind == "iid"
        else compute_dirichlet_shards(pool.y, parties, alpha, seed)
    )
    return [pool.subset(i) for i in indices]


def make_party_data(pool: Dataset, parties: int, partition: str, seed: int) -> list[PartyData]:
    """Each party's training and vote parts."""
    shards = make_shards(pool, parties, partition, seed)
    return [split_train_vote(shard, seed * 1000 + i) for i, shard in enumerate(shards)]


def make_party_learners(
    task: Task,
    parties: list[PartyData],
    seed: int,
    attacks: list[str],
    backdoor_target: int = BACKDOOR_TARGET,
) -> list[Learner]:
    """A learner per party: the last ``len(attacks)`` are byzantine, one attack each (ALIE's z
    from how many parties and attackers there are); two or more ALIE or IPM attackers of one kind
    collude, pooling their estimates of the honest updates; a backdoor's trigger sends inputs to
    class ``backdoor_target``."""
    kinds: list[str | None] = [None] * (len(parties) - len(attacks)) + list(attacks)
    alie_z = compute_alie_z(len(parties), len(attacks)) if attacks else 1.0
    collusions = {
        kind: Collusion()
        for kind in set(attacks)
        if kind in POOLING_ATTACKS and attacks.count(kind) > 1
    }
    return [
        make_learner(
            task,
            data,
            seed * 100 + i,
            kinds[i],
            alie_z,
            None if kinds[i] is None else collusions.get(str(kinds[i])),
            backdoor_target,
        )
        for i, data in enumerate(parties)
    ]


def propose_round(
    learners: list[Learner],
    send: Callable[[int, StateDict], StateDict] = lambda _, state: state,
    propose: Callable[[Learner], StateDict | None] = lambda learner: learner.propose(),
) -> dict[int, StateDict]:
    """Every party's contribution of a round, by party index, as validators receive it
    (``send``): the honest ones first, since gossip brings them to every validator, then the
    byzantine ones, which have seen them (``ByzantineLearner.see_contributions``). A party whose
    ``propose`` gives None sits the round out."""
    sent: dict[int, StateDict] = {}
    byzantine = [i for i, learner in enumerate(learners) if isinstance(learner, ByzantineLearner)]
    for i, learner in enumerate(learners):
        if i not in byzantine and (state := propose(learner)) is not None:
            sent[i] = send(i, state)
    seen = list(sent.values())
    for i in byzantine:
        learner = learners[i]
        assert isinstance(learner, ByzantineLearner)
        learner.see_contributions(seen)
        if (state := propose(learner)) is not None:
            sent[i] = send(i, state)
    return dict(sorted(sent.items()))


def compute_default_trial_config(data_file: str) -> TaskConfig:
    """A trial's task when nothing is overridden: digits-mlp, or for a user's data file
    tabular-mlp judged by loss (as ``learnchain testnet --data-files`` chooses)."""
    if not data_file:
        return TaskConfig(name="digits-mlp")
    return TaskConfig(name="tabular-mlp", metric=FILE_DATA_METRIC)


def load_trial_data(
    config: TaskConfig, data_file: str, label_column: str, seed: int
) -> tuple[TaskConfig, Dataset, Dataset]:
    """The task fitted to the data, the pool the parties split and the held-out test: the
    digits, or a user's CSV or NPZ ``data_file`` (a fifth held out), as ``learnchain testnet
    --data-files`` would fit the task to it."""
    if not data_file:
        pool, test = load_digits_pool(seed)
        return config, pool, test
    data = get_task(config).read_data(Path(data_file), label_column)
    pool, test = split_test(data, seed)
    return fit_task_to_data(config, [(data_file, pool)]), pool, test
