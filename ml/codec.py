"""Weights as safetensors bytes, and their canonical hash. Never pickle.

The canonical hash is SHA-256 over the tensors sorted by name, each as its name, dtype, shape
and little-endian bytes, with no metadata: the same weights give the same hash on every machine,
whatever safetensors' header ordering or padding.
"""

from __future__ import annotations

import hashlib
import struct

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from ml.errors import WeightsError

StateDict = dict[str, torch.Tensor]


def compute_weights_hash(state: StateDict) -> bytes:
    """The canonical SHA-256 of a state dict."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        encoded_name = name.encode()
        dtype = str(tensor.dtype).removeprefix("torch.").encode()
        digest.update(struct.pack("<I", len(encoded_name)) + encoded_name)
        digest.update(struct.pack("<I", len(dtype)) + dtype)
        digest.update(
            struct.pack("<I", tensor.dim()) + struct.pack(f"<{tensor.dim()}Q", *tensor.shape)
        )
        raw = (
            tensor.numpy().tobytes()
            if tensor.dtype != torch.bfloat16
            else tensor.view(torch.int16).numpy().tobytes()
        )
        digest.update(struct.pack("<Q", len(raw)) + raw)  # numpy on x86/arm is little-endian
    return digest.digest()


def encode_weights(state: StateDict) -> bytes:
    """A state dict as safetensors bytes."""
    return safetensors_save({k: v.detach().contiguous().cpu() for k, v in state.items()})


def decode_weights(data: bytes, template: StateDict, max_bytes: int) -> StateDict:
    """Safetensors bytes checked against the task's model; WeightsError says what is wrong."""
    if len(data) > max_bytes:
        raise WeightsError(f"weights are {len(data)} bytes, more than the limit of {max_bytes}")
    if len(data) < 8:
        raise WeightsError("weights are too short to be safetensors")
    try:
        state = safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise WeightsError(f"weights are not valid safetensors: {error}") from error
    missing = sorted(set(template) - set(state))
    unexpected = sorted(set(state) - set(template))
    if missing or unexpected:
        raise WeightsError(
            "weights do not fit the model: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    for name, expected in template.items():
        tensor = state[name]
        if tensor.dtype != expected.dtype:
            raise WeightsError(f"{name}: dtype {tensor.dtype}, the model has {expected.dtype}")
        if tensor.shape != expected.shape:
            raise WeightsError(
                f"{name}: shape {tuple(tensor.shape)}, the model has {tuple(expected.shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{name}: contains NaN or infinite values")
    return state
