"""Training across the processes of a ``torchrun`` job (DistributedDataParallel on gloo): how an
organisation whose training needs several processes (GPUs, or machines) trains its
contribution. Each process trains on its share of the party's training data; DDP averages the
gradients every step, so every process ends with the same weights, which rank 0 writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from learnchain.ml.codec import StateDict
from learnchain.ml.data import Dataset

if TYPE_CHECKING:
    from learnchain.ml.learner import Learner


def compute_shard(data: Dataset, rank: int, world: int) -> Dataset:
    """Process ``rank``'s share: every ``world``-th sample, all shares the same length (DDP
    steps every process together, so none may have a batch more)."""
    count = len(data) // world
    return Dataset(data.x[rank::world][:count], data.y[rank::world][:count], data.feature_names)


def train_distributed(learner: Learner, seed: int) -> StateDict:
    """Train the learner's model from its global weights across the job's processes; the
    trained tensors (the model's own, the same on every rank)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model = learner.load(learner.global_source)
    shard = compute_shard(learner.training_data(), rank, world)
    learner.task.train(DistributedDataParallel(model), shard, seed)
    state = model.state_dict()
    return {name: state[name].detach() for name in learner.trainable}
