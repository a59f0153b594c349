"""Which faults a chaos run injects, when and where: a schedule drawn from a seed.

Faults come one at a time: each lasts a few seconds to a few tens of seconds and is followed by
a quiet spell in which the network must make progress again (the invariant checker measures how
long it takes). The kinds are taken in a shuffled cycle, so that a run long enough for every
kind has every kind. Equivocation gets its validator slashed and jailed, which would shrink the
validator set for every later fault, so it comes last.
"""

from __future__ import annotations

import dataclasses
import enum
import random


class FaultKind(enum.Enum):
    """One kind of thing that goes wrong."""

    KILL = "kill"  # kill -9, restarted when the fault ends
    PAUSE = "pause"  # SIGSTOP, SIGCONT when it ends
    PARTITION = "partition"  # halves, one node isolated, or a ring
    LOSS = "loss"  # a share of packets dropped
    DELAY = "delay"  # a one-way delay with jitter
    DISK_FULL = "disk-full"  # the node's disk has no free byte
    CLOCK_SKEW = "clock-skew"  # the node's wall clock is off (restarted with libfaketime)
    POISON = "poison"  # the byzantine validator trains on flipped labels
    WITHHOLD = "withhold"  # the byzantine validator does not relay votes as a relay hub
    EQUIVOCATE = "equivocate"  # the byzantine validator signs two votes for every vote


BYZANTINE_KINDS = frozenset({FaultKind.POISON, FaultKind.WITHHOLD, FaultKind.EQUIVOCATE})
LAST_KINDS = (FaultKind.EQUIVOCATE,)
MIN_FAULT_SECONDS, MAX_FAULT_SECONDS = 5.0, 20.0
MIN_QUIET_SECONDS, MAX_QUIET_SECONDS = 8.0, 15.0
# A byzantine validator is restarted to misbehave (about 5 s before it signs again): it then
# misbehaves for at least 10 s.
MIN_BYZANTINE_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class Fault:
    """``kind`` on ``nodes`` from ``at`` seconds into the run, for ``seconds``."""

    at: float
    kind: FaultKind
    nodes: tuple[int, ...]
    seconds: float
    detail: str = ""  # e.g. "ring", "loss 20%", "delay 150±30 ms", "clock +90 s"
    amount: float = 0.0  # the loss share, the delay in ms or the clock's skew in s

    def describe(self) -> str:
        """One line for the printed schedule."""
        nodes = ",".join(str(n) for n in self.nodes)
        detail = f" {self.detail}" if self.detail else ""
        return (
            f"{self.at:7.1f}s  {self.kind.value:<10} nodes {nodes:<8} {self.seconds:5.1f}s{detail}"
        )


def compute_fault(
    rng: random.Random, kind: FaultKind, at: float, validators: int, byzantine: int
) -> Fault:
    """One fault of ``kind`` with its targets and parameters drawn from ``rng``."""
    seconds = round(rng.uniform(MIN_FAULT_SECONDS, MAX_FAULT_SECONDS), 1)
    honest = [i for i in range(validators) if i != byzantine]
    one = (rng.choice(honest),)
    if kind in BYZANTINE_KINDS:
        seconds = round(rng.uniform(MIN_BYZANTINE_SECONDS, MAX_FAULT_SECONDS), 1)
        return Fault(at, kind, (byzantine,), seconds)
    if kind == FaultKind.PARTITION:
        shape = rng.choice(["halves", "isolate", "ring"] if validators >= 4 else ["isolate"])
        if shape == "isolate":
            return Fault(at, kind, one, seconds, "isolate")
        order = list(range(validators))
        rng.shuffle(order)
        if shape == "halves":
            return Fault(at, kind, tuple(order[: validators // 2]), seconds, "halves")
        return Fault(at, kind, tuple(order), seconds, "ring")
    if kind == FaultKind.LOSS:
        share = rng.choice([0.05, 0.1, 0.2, 0.3])
        nodes = one if rng.random() < 0.5 else tuple(range(validators))
        return Fault(at, kind, nodes, seconds, f"loss {share:.0%}", share)
    if kind == FaultKind.DELAY:
        delay = rng.choice([50, 100, 200, 400])
        nodes = one if rng.random() < 0.5 else tuple(range(validators))
        return Fault(at, kind, nodes, seconds, f"delay {delay}±{delay // 4} ms", delay)
    if kind == FaultKind.CLOCK_SKEW:
        skew = rng.choice([-1, 1]) * rng.choice([5, 30, 90, 240])
        return Fault(at, kind, one, seconds, f"clock {skew:+d} s", skew)
    return Fault(at, kind, one, seconds)


def compute_schedule(
    seed: int,
    seconds: float,
    validators: int,
    kinds: list[FaultKind],
    byzantine: int,
    start: float = 0.0,
) -> list[Fault]:
    """Faults from ``start`` until ``seconds`` (each with its quiet spell inside), kinds in
    shuffled cycles, the ``LAST_KINDS`` at the end; the same list for the same arguments."""
    rng = random.Random(seed)
    regular = [k for k in kinds if k not in LAST_KINDS]
    last = [k for k in LAST_KINDS if k in kinds]
    reserved = len(last) * (MAX_FAULT_SECONDS + MAX_QUIET_SECONDS)
    schedule: list[Fault] = []
    at = start
    cycle: list[FaultKind] = []
    while regular:
        if not cycle:
            cycle = regular[:]
            rng.shuffle(cycle)
        fault = compute_fault(rng, cycle[0], round(at, 1), validators, byzantine)
        end = at + fault.seconds + MAX_QUIET_SECONDS
        if end > seconds - reserved:
            break
        cycle.pop(0)
        schedule.append(fault)
        at = at + fault.seconds + rng.uniform(MIN_QUIET_SECONDS, MAX_QUIET_SECONDS)
    for kind in last:
        fault = compute_fault(rng, kind, round(at, 1), validators, byzantine)
        if at + fault.seconds + MAX_QUIET_SECONDS > seconds:
            break
        schedule.append(fault)
        at = at + fault.seconds + rng.uniform(MIN_QUIET_SECONDS, MAX_QUIET_SECONDS)
    return schedule


def parse_kinds(text: str) -> list[FaultKind]:
    """``all`` or a comma-separated list of kinds; ValueError naming the unknown one."""
    if text in ("", "all"):
        return list(FaultKind)
    kinds = []
    for name in text.split(","):
        try:
            kinds.append(FaultKind(name.strip()))
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault kind {name!r}; choose from {known}") from None
    return kinds
