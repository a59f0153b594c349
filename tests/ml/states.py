"""Model states for the codec and error-feedback tests: a small layout with a matrix, a vector
and an empty tensor, filled from a seed."""

from __future__ import annotations

import torch


def make_state(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(300, 70, generator=generator) * scale,
        "a.bias": torch.randn(300, generator=generator) * scale,
        "b.weight": torch.randn(10, 300, generator=generator) * scale,
        "empty": torch.zeros(0),
    }
