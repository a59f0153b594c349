"""A picture of collective learning: the chain's accuracy round by round beside each party alone
and all data pooled, with rejected updates marked (``learnchain demo --plot``,
``bench/quality.py --plot``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AccuracyCurves:
    """What one plot shows; rounds count from 1."""

    chain: list[float]  # held-out accuracy of the chain's model after each round
    alone: list[float] = field(default_factory=list)  # each honest party trained alone
    pooled: float | None = None  # one model trained on all parties' data
    rejected: list[int] = field(default_factory=list)  # rounds with a rejected update
    title: str = "learnchain: collective learning"


def draw_accuracy(curves: AccuracyCurves, path: Path) -> None:
    """Write the plot as a PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rounds = list(range(1, len(curves.chain) + 1))
    axes.plot(rounds, curves.chain, color="tab:blue", linewidth=2, label="the chain's model")
    for i, accuracy in enumerate(curves.alone):
        axes.axhline(
            accuracy,
            color="tab:gray",
            linestyle=":",
            linewidth=1,
            label="each party alone" if i == 0 else None,
        )
    if curves.pooled is not None:
        axes.axhline(curves.pooled, color="tab:green", linestyle="--", label="all data pooled")
    marked = [r for r in curves.rejected if 1 <= r <= len(curves.chain)]
    if marked:
        axes.scatter(
            marked,
            [curves.chain[r - 1] for r in marked],
            marker="x",
            color="tab:red",
            zorder=3,
            label="update rejected",
        )
    axes.set_xlabel("round (height)")
    axes.set_ylabel("held-out accuracy")
    axes.set_title(curves.title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")
