"""The accuracy plot is a real picture: a PNG of the expected size with the curves drawn."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from PIL import Image

from learnchain.ml.plots import AccuracyCurves, draw_accuracy

WIDTH, HEIGHT = 960, 540  # 8 x 4.5 inches at 120 dpi


Colours = list[tuple[int, tuple[int, int, int]]]


def read_colours(path: Path) -> Colours:
    """(count, RGB) of every colour of the PNG at ``path``, after checking its size."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH, HEIGHT)
        colours = image.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT)
    assert colours is not None
    return cast(Colours, colours)


def check_plot(path: Path) -> None:
    """``path`` opens as a PNG of the plot's size, mostly background, with coloured curves."""
    colours = read_colours(path)
    background = max(colours)[0] / (WIDTH * HEIGHT)
    assert 0.5 < background < 0.99, "neither blank nor a solid block"
    blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 80 and g < 160)
    assert blue > 500, "the chain's curve (tab:blue) is drawn"


def test_a_plot_shows_the_chain_beside_each_party_alone_and_pooled(tmp_path: Path) -> None:
    curves = AccuracyCurves(
        chain=[0.3, 0.6, 0.6, 0.8, 0.9, 0.92],
        alone=[0.7, 0.75, 0.8],
        pooled=0.95,
        rejected=[3],
    )
    draw_accuracy(curves, tmp_path / "plot.png")
    check_plot(tmp_path / "plot.png")


def test_rejected_rounds_are_marked_in_red(tmp_path: Path) -> None:
    def red_pixels(rejected: list[int]) -> int:
        path = tmp_path / f"{len(rejected)}.png"
        draw_accuracy(AccuracyCurves(chain=[0.5] * 10, rejected=rejected), path)
        return sum(n for n, (r, g, b) in read_colours(path) if r > 180 and g < 90 and b < 90)

    assert red_pixels([2, 5, 7]) > red_pixels([]) + 50
