"""Where and how this machine trains: node-local settings (``config.toml``), never in the genesis.

Training and evaluation run on the node's ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
``mps``) with ``threads`` CPU threads, optionally in mixed precision. Everything every validator
must agree on stays on the CPU in the model's own dtype: the genesis model is built there from
the seed, and aggregation, hashing and the vote's arithmetic read CPU tensors. The learner's
model rests on the CPU and visits the device for a verb (``on_device``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from learnchain.ml.config import is_device_name
from learnchain.ml.errors import TaskError

AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def is_mps_available() -> bool:
    """True where Apple's Metal backend is usable."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(text: str) -> torch.device:
    """The device ``text`` names on this machine (``auto``: CUDA, then MPS, then the CPU);
    TaskError (one line) for an unknown name or a device this machine lacks."""
    if not is_device_name(text):
        raise TaskError(f"device: unknown device {text!r}; one of auto, cpu, cuda, cuda:N, mps")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if is_mps_available() else torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise TaskError(f"device: {text} is not on this machine ({count} CUDA devices)")
    if device.type == "mps" and not is_mps_available():
        raise TaskError("device: mps is not available on this machine")
    return device


@dataclass(frozen=True)
class LocalSettings:
    """How this node trains (config.toml): the device, CPU threads, the training precision and
    the frozen base's pretrained weights file."""

    device: torch.device = torch.device("cpu")
    threads: int = 1
    precision: str = "float32"  # bfloat16 or float16: mixed precision (autocast) for training
    pretrained: str = ""  # a safetensors file the task loads its frozen base from

    def autocast(self) -> AbstractContextManager[object]:
        """Mixed precision on the device for training, or nothing."""
        dtype = AUTOCAST_DTYPES[self.precision]
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)


@contextmanager
def on_device(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """``model`` on ``device`` for the block, back on the CPU after (nothing moves on the CPU)."""
    if device.type == "cpu":
        yield model
        return
    model.to(device)
    try:
        yield model
    finally:
        model.to("cpu")
