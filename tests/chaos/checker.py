"""What must hold however the network misbehaves, checked from what the nodes answer over gRPC.

During a run, ``watch`` is called about once a second with each node's height (None while it
does not answer) and memory; ``healed`` marks the end of each fault. At the end, ``check_chains``
reads every block of every node. The invariants:

- **agreement**: no two different blocks at one height (and so one model hash per height);
- **completeness**: after the last heal, every node has every block any node committed;
- **no honest double signing**: evidence (two signed votes at one height, round and step) names
  only the validator told to equivocate, and that one's equivocation is caught (when it was an
  active validator: the votes of one out of the set count for nothing, so there is nothing to
  catch);
- **progress**: after each heal, every node passes the highest height seen at the heal within
  ``progress_bound`` seconds;
- **no poisoned update**: no committed model scores more than ``max_accuracy_drop`` below the
  best committed before it, on held-out data no validator trains on;
- **bounded memory**: no node process above ``memory_limit_mb``;
- **no unexpected exit**: a node dies only when the run killed it or filled its disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

from learnchain.consensus.messages import Block


def compute_missed_streaks(
    blocks: Iterable[Block], validators: Iterable[bytes]
) -> dict[bytes, int]:
    """Each validator's longest run of consecutive commits without its signature (the count
    that jails it for downtime at ``downtime_jail_blocks``)."""
    longest = dict.fromkeys(validators, 0)
    current = dict.fromkeys(longest, 0)
    for block in blocks:
        if block.last_commit is None:
            continue
        signers = block.last_commit.signers()
        for address in longest:
            current[address] = 0 if address in signers else current[address] + 1
            longest[address] = max(longest[address], current[address])
    return longest


def compute_rss_growth(
    rss_by_minute: Mapping[int, Mapping[int, float]], after: int
) -> float | None:
    """The most any node's memory rose above its reading in minute ``after`` (or the first
    minute past it that has one) later in the run; None when no node was seen that late."""
    growths = []
    for by_minute in rss_by_minute.values():
        later = sorted(m for m in by_minute if m >= after)
        if later:
            growths.append(max(by_minute[m] for m in later) - by_minute[later[0]])
    return max(growths, default=None)


@dataclasses.dataclass
class PendingHeal:
    """A fault that ended at ``at``, when the highest height was ``height``."""

    what: str
    at: float
    height: int


@dataclasses.dataclass
class InvariantChecker:
    """Collects observations and violations over one run."""

    progress_bound: float = 90.0
    memory_limit_mb: float = 1536.0
    max_accuracy_drop: float = 0.15
    equivocators: frozenset[bytes] = frozenset()  # validators allowed to appear in evidence
    expect_evidence: bool = False  # a validator equivocated long enough to be caught
    violations: list[str] = dataclasses.field(default_factory=list)
    stalls: list[float] = dataclasses.field(default_factory=list)
    max_rss_mb: dict[int, float] = dataclasses.field(default_factory=dict)
    # each node's highest resident memory in each minute of the run, from the first look
    rss_by_minute: dict[int, dict[int, float]] = dataclasses.field(default_factory=dict)
    evidence_seen: int = 0
    _pending: list[PendingHeal] = dataclasses.field(default_factory=list)
    _highest: int = 0
    _first_look: float | None = None

    def watch(
        self, now: float, heights: Mapping[int, int | None], rss_mb: Mapping[int, float]
    ) -> None:
        """One look at every node: heights (None: no answer) and resident memory."""
        known = [h for h in heights.values() if h is not None]
        self._highest = max([self._highest, *known])
        if self._first_look is None:
            self._first_look = now
        minute = int((now - self._first_look) // 60)
        for node, rss in rss_mb.items():
            by_minute = self.rss_by_minute.setdefault(node, {})
            by_minute[minute] = max(rss, by_minute.get(minute, 0.0))
            if rss > self.max_rss_mb.get(node, 0.0):
                if rss > self.memory_limit_mb >= self.max_rss_mb.get(node, 0.0):
                    self.violations.append(
                        f"node{node} uses {rss:.0f} MB,"
                        f" above the {self.memory_limit_mb:.0f} MB bound"
                    )
                self.max_rss_mb[node] = rss
        lowest = None if any(h is None for h in heights.values()) else min(known, default=None)
        for heal in list(self._pending):
            if lowest is not None and lowest > heal.height:
                self.stalls.append(now - heal.at)
                self._pending.remove(heal)
            elif now - heal.at > self.progress_bound:
                self.violations.append(
                    f"no progress within {self.progress_bound:.0f} s after {heal.what} ended"
                    f" (every node past height {heal.height}): heights {dict(heights)}"
                )
                self._pending.remove(heal)

    def healed(self, now: float, what: str) -> None:
        """A fault ended: every node must pass today's highest height soon."""
        self._pending.append(PendingHeal(what, now, self._highest))

    @property
    def highest(self) -> int:
        """The highest height any node has reported."""
        return self._highest

    @property
    def longest_stall(self) -> float:
        """The longest time from a heal until every node was past the height at the heal."""
        return max(self.stalls, default=0.0)

    def unexpected_exit(self, node: int, code: int | None, log_tail: str) -> None:
        """A node died that was not meant to."""
        last = log_tail.strip().splitlines()[-1:] or [""]
        self.violations.append(f"node{node} exited with code {code}: {last[0]}")

    def check_chains(
        self, chains: Mapping[int, Sequence[Block]], score: Callable[[bytes], float | None]
    ) -> None:
        """Agreement, completeness, evidence and model quality over every node's blocks
        (``chains[i][h - 1]`` is node i's block at height h; ``score`` a model's accuracy)."""
        longest = max((len(c) for c in chains.values()), default=0)
        for node, chain in chains.items():
            if len(chain) < longest:
                self.violations.append(
                    f"node{node} has {len(chain)} blocks after healing, others {longest}"
                )
        reference: dict[int, Block] = {}
        for node, chain in chains.items():
            for block in chain:
                height = int(block.header.height)
                first = reference.setdefault(height, block)
                if first.hash != block.hash:
                    self.violations.append(
                        f"two blocks at height {height}: {first.hash.hex()[:12]} and"
                        f" node{node}'s {block.hash.hex()[:12]}"
                    )
        caught = False
        for height in sorted(reference):
            for evidence in reference[height].evidence:
                self.evidence_seen += 1
                culprit = bytes(evidence.vote_a.vote.validator)
                if culprit in self.equivocators:
                    caught = True
                else:
                    self.violations.append(
                        f"evidence at height {height} against {culprit.hex()[:12]}, an honest"
                        " validator: it signed twice at one height, round and step"
                    )
        if self.expect_evidence and not caught:
            self.violations.append("a validator equivocated and no evidence of it was committed")
        self._check_models([reference[h] for h in sorted(reference)], score)

    def _check_models(
        self, blocks: Sequence[Block], score: Callable[[bytes], float | None]
    ) -> None:
        best = 0.0
        previous = b""
        for block in blocks:
            model = bytes(block.header.model_hash)
            if model == previous:
                continue
            previous = model
            accuracy = score(model)
            if accuracy is None:
                continue
            if accuracy < best - self.max_accuracy_drop:
                self.violations.append(
                    f"the model committed at height {block.header.height} scores {accuracy:.3f},"
                    f" {best - accuracy:.3f} below the best before it: a poisoned update"
                )
            best = max(best, accuracy)
