"""Contributors' reputation: the validators' appraisals over time, and who an aggregate leaves
out by it (docs/protocol.md §3.9).

Every learning round each validator appraises every contribution the block names, aggregated or
left out, on its own data (``ml/contribution_value.py`` with ``reputation=True``: how much lower
the aggregate's loss is with the contribution's term than without it, in micro-units, below zero
when the term hurts). A contributor's reputation moves by the others' reports: its own report is
not counted, and the statistic is ``compute_upper_third`` of the rest, the highest value that
more than a third of the reporting stake reaches. Colluders holding less than a third cannot
carry it past every honest report, and a party whose data is unusual keeps a positive value as
long as an honest third finds its contribution useful. The old reputation decays, so a party is
judged by its recent rounds:

    reputation ← decay × reputation + the others' upper third

An aggregate **leaves out** the contributors whose reputation is below minus the typical
magnitude of the contributors' reputations (``compute_typical_magnitude``), lowest first, as long
as the contributors left in still hold more than the chain's threshold of stake, so the
verified margin's leniency (§3.7) is kept. A left-out party is still appraised every round, and
while it is out only its positive values count, so an honest party with unusual data comes back.

Integer arithmetic on micro-units: every validator computes the same reputations and the same
exclusions. A chain keeps reputation when its genesis sets ``reputation_decay`` (docs/protocol.md
§3.9; ``consensus/state.py`` applies these functions); ``bench/quality.py --reputation`` runs the
same functions over a trial's rounds (bench/README.md, "Robust by default?").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from learnchain.consensus.types import Address, Threshold, is_quorum

Reputation = int  # micro-units of loss, signed
PPM = 1_000_000


def compute_upper_third(values: Sequence[tuple[int, int]]) -> int:
    """The highest value with more than a third of the power at or above it, of (value, power)
    pairs (at least one): validators holding less than a third of the power cannot carry it
    above every honest report, nor below the reports of the honest third that rates highest."""
    total = sum(power for _, power in values)
    reached = 0
    for value, power in sorted(values, reverse=True):
        reached += power
        if 3 * reached > total:
            return value
    raise ValueError("no values")


def compute_others_statistic(
    author: Address, reports: Sequence[tuple[Address, int, int]]
) -> int | None:
    """``compute_upper_third`` of the (reporter, value, power) reports by validators other
    than ``author``; None when nobody else reported."""
    others = [(value, power) for reporter, value, power in reports if reporter != author]
    return compute_upper_third(others) if others else None


def compute_decayed(reputation: Reputation, decay_ppm: int) -> Reputation:
    """``reputation`` scaled by ``decay_ppm`` / 10⁶, rounded toward zero."""
    scaled = abs(reputation) * decay_ppm // PPM
    return scaled if reputation >= 0 else -scaled


def compute_next_reputations(
    reputations: Mapping[Address, Reputation],
    judged: Sequence[Address],
    reports: Sequence[tuple[Address, Sequence[int], int]],
    decay_ppm: int,
    left_out: Collection[Address] = frozenset(),
    recovery_ppm: int = 0,
) -> dict[Address, Reputation]:
    """The reputations after a round whose contributions, by ``judged`` authors in the block's
    order, were appraised by ``reports`` (reporter, one value per contribution, power). A
    contributor without another's report keeps its reputation; parties not judged keep theirs.
    A contributor the round ``left_out`` did not touch the model: its reputation decays by
    ``recovery_ppm`` instead and only a positive value counts, so that it comes back."""
    updated = dict(reputations)
    for index, author in enumerate(judged):
        value = compute_others_statistic(
            author, [(reporter, values[index], power) for reporter, values, power in reports]
        )
        if value is None:
            continue
        old = reputations.get(author, 0)
        if author in left_out:
            updated[author] = compute_decayed(old, recovery_ppm) + max(value, 0)
        else:
            updated[author] = compute_decayed(old, decay_ppm) + value
    return {address: value for address, value in sorted(updated.items()) if value != 0}


def compute_typical_magnitude(values: Sequence[Reputation]) -> int:
    """The lower median of the values' magnitudes (0 for none)."""
    if not values:
        return 0
    return sorted(abs(v) for v in values)[(len(values) - 1) // 2]


def compute_reputation_exclusions(
    contributors: Sequence[tuple[Address, int]],
    reputations: Mapping[Address, Reputation],
    total_power: int,
    threshold: Threshold,
) -> frozenset[Address]:
    """Of the (author, power) contributors, those an aggregate leaves out: reputations below
    minus their typical magnitude (``compute_typical_magnitude``), lowest first (ties by
    address), while the rest still hold more than ``threshold`` of ``total_power``."""
    kept = sum(power for _, power in contributors)
    left_out: set[Address] = set()
    cutoff = -compute_typical_magnitude([reputations.get(a, 0) for a, _ in contributors])
    below = sorted(
        (reputations.get(author, 0), author, power)
        for author, power in contributors
        if reputations.get(author, 0) < cutoff
    )
    for _, author, power in below:
        if not is_quorum(kept - power, total_power, threshold):
            break
        kept -= power
        left_out.add(author)
    return frozenset(left_out)
