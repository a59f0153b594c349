"""Byzantine parties for tests, benchmarks and demos.

Poisoners: ``label_flip`` trains on wrongly labelled data; ``random`` sends random weights;
``nan`` sends weights full of NaN; ``scaled`` is a model-replacement attack that boosts a
label-flipped update by the number of parties so that it survives averaging. ``approve_all``
trains honestly but approves every proposal.

Quiet attacks, which an accuracy vote alone does not see: ``backdoor`` trains on its data with
a tenth of it stamped with a trigger (the last features at their maximum) and relabelled as the
target class, so the model keeps its accuracy but sends triggered inputs to the target;
``alie`` ("a little is enough", Baruch et al. 2019) sends the honest updates' mean shifted by z
standard deviations per coordinate, within their spread; ``ipm`` (inner-product manipulation,
Xie et al. 2020) sends the honest updates' mean reversed and shrunk. The last two estimate the
honest updates by training several times on their own data, as attackers who cannot see the
others' updates would; attackers of one kind that share a ``Collusion`` pool those estimates and
all send the one update made from the pool (what coordinated ALIE and IPM attackers do).

Attacks that use what a validator sees: contributions are gossiped to every validator before
a round is aggregated (§3.2), so an attacker that sends last knows the round's honest updates
(``see_contributions``). ``min_max`` and ``min_sum`` (Shejwalkar and Houmansadr, NDSS 2021) send
the honest mean pushed against itself (the inverse unit vector) as far as keeps the attack's
largest distance (``min_max``) or sum of squared distances (``min_sum``) to the honest updates
within the honest updates' own; ``adaptive`` knows the defence: it sends the honest mean reversed
by the largest factor whose model still scores within the screening and verified margins on its
own data, and sends honest updates while its reputation (which the chain shows) is near the
cut-off. Free riders: ``copycat`` sends another party's contribution as its own,
``noisy_copycat`` the same plus a little noise; ``lazy`` sends the model back untrained.
Without seen contributions these fall back on the attacker's own estimates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.data import Dataset, FloatArray, PartyData
from learnchain.ml.learner import Learner
from learnchain.ml.tasks import Task
from learnchain.ml.training import Evaluation, clone_state
from learnchain.ml.vote import VoteDecision

ATTACKS = (
    "label_flip",
    "random",
    "nan",
    "scaled",
    "approve_all",
    "backdoor",
    "alie",
    "ipm",
    "lazy",  # no training: contributes the current model unchanged (a free rider)
    "min_max",
    "min_sum",
    "adaptive",
    "copycat",  # another party's contribution sent as its own (a free rider)
    "noisy_copycat",  # the same, plus noise of a hundredth of the update's spread
)
POISONING_ATTACKS = (
    "label_flip",
    "random",
    "nan",
    "scaled",
    "backdoor",
    "alie",
    "ipm",
    "min_max",
    "min_sum",
    "adaptive",
)
# attacks whose several attackers pool their estimates
POOLING_ATTACKS = ("alie", "ipm", "min_max", "min_sum", "adaptive")
SEEING_ATTACKS = ("min_max", "min_sum", "adaptive", "copycat", "noisy_copycat")

BACKDOOR_TARGET = 0  # the class triggered inputs are sent to
BACKDOOR_FRACTION = 0.1  # of the attacker's training samples, stamped and relabelled
TRIGGER_FEATURES = 4  # the last features, set to the data's maximum
HONEST_ESTIMATES = 3  # honest trainings an ALIE or IPM attacker averages
IPM_EPSILON = 0.5  # IPM sends -epsilon times the honest mean update
COPY_NOISE = 0.01  # noisy_copycat's noise, in standard deviations of the copied update
GAMMA_LIMIT = 20.0  # min-max / min-sum search their push in [0, GAMMA_LIMIT]
ADAPTIVE_LIMIT = 3.0  # the adaptive attacker reverses the honest mean by at most this factor
ADAPTIVE_SAFETY = 0.8  # ... keeping its score gap within this share of the tightest margin
ADAPTIVE_GUARD = 0.01  # ... and honest while its reputation is within this of the cut-off
SEARCH_STEPS = 20  # bisection steps of those searches


def add_trigger(x: FloatArray) -> FloatArray:
    """Inputs stamped with the backdoor trigger: their last features at the data's maximum."""
    stamped = np.array(x, copy=True)
    stamped[:, -TRIGGER_FEATURES:] = float(np.max(x)) if x.size else 1.0
    return stamped


def compute_backdoor_data(train: Dataset, seed: int, target: int = BACKDOOR_TARGET) -> Dataset:
    """``train`` with ``BACKDOOR_FRACTION`` of it stamped and relabelled as class ``target``."""
    chosen = np.random.default_rng(seed).random(len(train)) < BACKDOOR_FRACTION
    x = np.array(train.x, copy=True)
    y = np.array(train.y, copy=True)
    x[chosen] = add_trigger(train.x[chosen])
    y[chosen] = target
    return Dataset(x, y)


def compute_triggered_test(test: Dataset, target: int = BACKDOOR_TARGET) -> Dataset:
    """The test inputs not of class ``target``, stamped, all labelled as ``target``: a model's
    accuracy on it is the backdoor's success rate."""
    others = np.asarray(test.y) != target
    x = add_trigger(test.x[others])
    return Dataset(x, np.full(len(x), target, dtype=np.asarray(test.y).dtype))


def compute_alie_z(parties: int, attackers: int) -> float:
    """ALIE's shift: the largest z that keeps the attack inside the majority's spread."""
    supporters = math.floor(parties / 2 + 1) - attackers
    share = (parties - supporters) / parties
    return statistics.NormalDist().inv_cdf(min(max(share, 0.5), 0.999))


def stack_updates(base: StateDict, honest: list[StateDict], key: str) -> torch.Tensor:
    """The honest updates of one tensor (each state minus ``base``), stacked as floats."""
    return torch.stack([h[key] - base[key] for h in honest]).float()


def compute_alie_state(base: StateDict, honest: list[StateDict], z: float) -> StateDict:
    """base + mean(update) - z * std(update), coordinate by coordinate."""
    out = {}
    for key, value in base.items():
        deltas = stack_updates(base, honest, key)
        std = deltas.std(dim=0, unbiased=False) if len(honest) > 1 else torch.zeros_like(value)
        out[key] = (value + deltas.mean(dim=0) - z * std).to(value.dtype)
    return out


def compute_ipm_state(base: StateDict, honest: list[StateDict], epsilon: float) -> StateDict:
    """base - epsilon * mean(update): an update whose inner product with the honest one is
    negative, small enough to pass distance screening."""
    return {
        key: (value - epsilon * stack_updates(base, honest, key).mean(0)).to(value.dtype)
        for key, value in base.items()
    }


def flatten_updates(base: StateDict, states: Sequence[StateDict]) -> torch.Tensor:
    """Each state's update from ``base`` as one float row (states × parameters)."""
    return torch.stack(
        [torch.cat([(s[k] - base[k]).float().flatten() for k in sorted(base)]) for s in states]
    )


def unflatten_update(base: StateDict, update: torch.Tensor) -> StateDict:
    """``base`` plus one flat ``update`` laid out as ``flatten_updates`` lays it."""
    out, offset = {}, 0
    for key in sorted(base):
        value = base[key]
        step = update[offset : offset + value.numel()].reshape(value.shape)
        out[key] = (value + step).to(value.dtype)
        offset += value.numel()
    return out


def compute_largest(is_allowed: Callable[[float], bool], limit: float) -> float:
    """The largest x in [0, limit] that ``is_allowed`` accepts, by bisection (0 when none)."""
    if is_allowed(limit):
        return limit
    low, high = 0.0, limit
    for _ in range(SEARCH_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if is_allowed(middle) else (low, middle)
    return low


def compute_min_max_state(base: StateDict, honest: list[StateDict], objective: str) -> StateDict:
    """The honest mean pushed by gamma along its inverse unit vector, gamma the largest whose
    distances to the honest updates stay within theirs: the largest distance (``min_max``) or
    the sum of squared distances (``min_sum``) of any honest update to the others."""
    deltas = flatten_updates(base, honest)
    mean = deltas.mean(dim=0)
    direction = -mean / mean.norm().clamp_min(1e-12)
    distances = torch.cdist(deltas, deltas)
    if objective == "min_max":
        bound = float(distances.max())

        def is_allowed(gamma: float) -> bool:
            return float((deltas - (mean + gamma * direction)).norm(dim=1).max()) <= bound
    else:
        bound = float((distances**2).sum(dim=1).max())

        def is_allowed(gamma: float) -> bool:
            return float(((deltas - (mean + gamma * direction)).norm(dim=1) ** 2).sum()) <= bound

    gamma = compute_largest(is_allowed, GAMMA_LIMIT)
    return unflatten_update(base, mean + gamma * direction)


def compute_noisy_copy(base: StateDict, copied: StateDict, seed: int, noise: float) -> StateDict:
    """``copied`` plus Gaussian noise of ``noise`` standard deviations of its update."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in copied.items():
        if not value.is_floating_point():
            out[key] = value.clone()
            continue
        spread = float((value - base[key]).float().std()) if value.numel() > 1 else 0.0
        shake = torch.randn(value.shape, generator=generator) * noise * spread
        out[key] = (value + shake).to(value.dtype)
    return out


T = TypeVar("T")


def compute_attack_listing(
    contributions: Sequence[T],
    is_colluder: Callable[[T], bool],
    is_enough: Callable[[list[T]], bool],
) -> list[T]:
    """A poisoning proposer's best verifiable list (validators re-compute an aggregate from the
    contributions it lists, §3.7): every colluder's contribution, then honest ones in the order
    given until ``is_enough`` (a quorum of stake, which earns the looser verified margin)."""
    listed = [c for c in contributions if is_colluder(c)]
    for contribution in contributions:
        if is_enough(listed):
            break
        if not is_colluder(contribution):
            listed.append(contribution)
    return listed


class Collusion:
    """Attackers of one kind who pool their estimates of the honest updates, so that each sends
    the same update, made from all their data."""

    def __init__(self) -> None:
        self.members: list[ByzantineLearner] = []
        self._pooled: tuple[bytes, list[StateDict]] | None = None

    def join(self, member: ByzantineLearner) -> None:
        """Add ``member`` to the pool."""
        self.members.append(member)

    def get_estimates(self, base_hash: bytes) -> list[StateDict]:
        """Every member's own estimates from the global model ``base_hash``, trained once per
        model (the members share the chain's model)."""
        if self._pooled is None or self._pooled[0] != base_hash:
            pooled = [estimate for m in self.members for estimate in m.estimate_own()]
            self._pooled = (base_hash, pooled)
        return self._pooled[1]


class ByzantineLearner(Learner):
    """A learner that proposes and contributes poison, or approves everything."""

    def __init__(
        self,
        task: Task,
        data: PartyData,
        kind: str,
        seed: int = 0,
        boost: float = 5.0,
        alie_z: float = 1.0,
        collusion: Collusion | None = None,
        backdoor_target: int = BACKDOOR_TARGET,
    ) -> None:
        if kind not in ATTACKS:
            raise ValueError(f"unknown attack {kind!r}; choose from {', '.join(ATTACKS)}")
        super().__init__(task, data, seed)
        self.kind = kind
        self.boost = boost
        self.alie_z = alie_z
        self._backdoor = (
            compute_backdoor_data(data.train, seed, backdoor_target) if kind == "backdoor" else None
        )
        self._seen: list[StateDict] = []
        # the chain's reputation of this party and the cut-off below which the aggregation
        # leaves it out, as the state shows them (None: the chain keeps none); the adaptive
        # attacker watches them
        self.reputation: float | None = None
        self.reputation_cutoff = 0.0
        self.collusion = collusion
        if collusion is not None:
            collusion.join(self)

    def training_data(self) -> Dataset:
        if self.kind in ("label_flip", "scaled"):
            train = self.data.train
            return Dataset(train.x, (self.task.classes - 1 - train.y).astype(train.y.dtype))
        if self._backdoor is not None:
            return self._backdoor
        return self.data.train

    def estimate_own(self) -> list[StateDict]:
        """Honest updates as this party can estimate them alone: several trainings of its
        own."""
        first = self.seed * 1_000_003 + self._proposals * HONEST_ESTIMATES
        return [clone_state(self.train_view(first + i)) for i in range(HONEST_ESTIMATES)]

    def see_contributions(self, states: Sequence[StateDict]) -> None:
        """The other parties' contributions of this round, as gossip brought them."""
        self._seen = list(states)

    def _estimate_honest(self) -> list[StateDict]:
        """The honest updates: this round's seen ones for an attack that uses them, else as
        estimated alone, or pooled with the colluders."""
        if self.kind in SEEING_ATTACKS and len(self._seen) >= 2:
            return self._seen
        if self.collusion is None:
            return self.estimate_own()
        return self.collusion.get_estimates(self.current_hash())

    def _propose_adaptive(self) -> StateDict:
        """The honest mean reversed by the largest factor whose model scores within the
        defence's margins on this party's data; honest while its reputation is near the
        cut-off."""
        base = self.current()
        honest = self._estimate_honest()
        mean = flatten_updates(base, honest).mean(dim=0)
        if self.reputation is not None and (
            self.reputation <= self.reputation_cutoff + ADAPTIVE_GUARD
        ):
            self._proposals += 1
            return unflatten_update(base, mean)
        config = self.task.config
        allowed_gap = ADAPTIVE_SAFETY * min(config.screen_margin, config.verified_margin)
        honest_score = self.score(unflatten_update(base, mean))

        def is_allowed(reverse: float) -> bool:
            model = unflatten_update(base, (1.0 - reverse) * mean)
            return self.score(model) >= honest_score - allowed_gap

        reverse = compute_largest(is_allowed, 1.0 + ADAPTIVE_LIMIT)
        self._proposals += 1
        return unflatten_update(base, (1.0 - reverse) * mean)

    def _propose_copy(self) -> StateDict:
        """Another party's contribution of this round (the latest seen), with or without
        noise; the model untrained when none was seen."""
        base = self.current()
        self._proposals += 1
        if not self._seen:
            return base
        copied = self._seen[self._proposals % len(self._seen)]
        if self.kind == "copycat":
            return clone_state(copied)
        return compute_noisy_copy(base, copied, self.seed + self._proposals, COPY_NOISE)

    def propose(self, seed: int | None = None) -> StateDict:
        if self.kind == "random":
            generator = torch.Generator().manual_seed(self.seed + self._proposals)
            self._proposals += 1
            return {
                k: torch.randn(v.shape, generator=generator, dtype=v.dtype)
                for k, v in self.current().items()
            }
        if self.kind == "lazy":
            return self.current()
        if self.kind == "nan":
            self._proposals += 1
            return {k: torch.full_like(v, float("nan")) for k, v in self.current().items()}
        if self.kind == "alie":
            return compute_alie_state(self.current(), self._estimate_honest(), self.alie_z)
        if self.kind == "ipm":
            return compute_ipm_state(self.current(), self._estimate_honest(), IPM_EPSILON)
        if self.kind in ("min_max", "min_sum"):
            return compute_min_max_state(self.current(), self._estimate_honest(), self.kind)
        if self.kind == "adaptive":
            return self._propose_adaptive()
        if self.kind in ("copycat", "noisy_copycat"):
            return self._propose_copy()
        trained = clone_state(self.train_view(seed))
        if self.kind == "scaled":
            base = self.current()
            return {k: base[k] + self.boost * (trained[k] - base[k]) for k in trained}
        return trained

    def propose_view(self, seed: int | None = None) -> StateDict:
        """What this adversary proposes (its own tensors, which nothing else reuses)."""
        return self.propose(seed)

    def decide(
        self, evaluation: Evaluation, current: Evaluation, margin: float | None = None
    ) -> VoteDecision:
        if self.kind == "approve_all":
            return VoteDecision(True, 0.0, 0.0, len(self.data.vote))
        return super().decide(evaluation, current, margin)


def make_learner(
    task: Task,
    data: PartyData,
    seed: int,
    attack: str | None,
    alie_z: float = 1.0,
    collusion: Collusion | None = None,
    backdoor_target: int = BACKDOOR_TARGET,
) -> Learner:
    """An honest learner, or a byzantine one for ``attack`` (pooling with ``collusion``; a
    backdoor sends its trigger to class ``backdoor_target``)."""
    if attack is None:
        return Learner(task, data, seed)
    return ByzantineLearner(
        task,
        data,
        attack,
        seed,
        alie_z=alie_z,
        collusion=collusion,
        backdoor_target=backdoor_target,
    )
