"""The parties of a benchmark: shards of one pool, each split into training and vote parts, and
a learner for each (honest, or byzantine for an attack). The quality bench and the side-by-side
bench with Flower build identical parties from the same seed."""

from __future__ import annotations

from learnchain.ml.adversaries import POOLING_ATTACKS, Collusion, compute_alie_z, make_learner
from learnchain.ml.data import (
    Dataset,
    PartyData,
    compute_dirichlet_shards,
    compute_iid_shards,
    parse_partition,
    split_train_vote,
)
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import Task


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
    task: Task, parties: list[PartyData], seed: int, attacks: list[str]
) -> list[Learner]:
    """A learner per party: the last ``len(attacks)`` are byzantine, one attack each (ALIE's z
    from how many parties and attackers there are); two or more ALIE or IPM attackers of one kind
    collude, pooling their estimates of the honest updates."""
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
        )
        for i, data in enumerate(parties)
    ]
