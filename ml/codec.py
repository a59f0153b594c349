"""Weights as safetensors bytes, and their canonical hash. Never pickle.

The canonical hash is SHA-256 over the tensors sorted by name, each as its name, dtype, shape
and little-endian bytes, with no metadata: the same weights give the same hash on every machine,
whatever safetensors' header ordering or padding.
"""

from __future__ import annotations

import hashlib
import warnings

import torch
from safetensors.torch import save as safetensors_save

from learnchain.ml.errors import WeightsError
from learnchain.ml.weights_file import (
    MAX_HEADER_BYTES,
    TensorSpec,
    WeightsLayout,
    check_finite,
    check_header,
    parse_header,
    to_bytes,
    update_hash_prefix,
)

StateDict = dict[str, torch.Tensor]
WeightsBytes = bytes | bytearray  # safetensors bytes, as received or stored


def compute_weights_hash(state: StateDict) -> bytes:
    """The canonical SHA-256 of a state dict."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        update_hash_prefix(digest, name, TensorSpec(tensor.dtype, tuple(tensor.shape)))
        digest.update(to_bytes(tensor))  # numpy on x86/arm is little-endian
    return digest.digest()


def encode_weights(state: StateDict) -> bytes:
    """A state dict as safetensors bytes."""
    return safetensors_save({k: v.detach().contiguous().cpu() for k, v in state.items()})


def decode_weights(
    data: bytes | bytearray | memoryview, template: StateDict, max_bytes: int
) -> StateDict:
    """Safetensors bytes checked against the task's model; WeightsError says what is wrong."""
    tensors = {}
    for name, (dtype, raw) in read_checked_tensors(data, template, max_bytes).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only bytes: cloned right away
            flat = torch.frombuffer(raw, dtype=dtype) if len(raw) else torch.empty(0, dtype=dtype)
        tensors[name] = flat.clone().reshape(template[name].shape)
    return tensors


def read_checked_tensors(
    data: bytes | bytearray | memoryview, template: StateDict, max_bytes: int
) -> dict[str, tuple[torch.dtype, memoryview]]:
    """Each tensor's dtype and raw little-endian bytes (views into ``data``, not copies), after
    checking size, header, names, dtypes, shapes, layout and finiteness against the model."""
    if len(data) > max_bytes:
        raise WeightsError(f"weights are {len(data)} bytes, more than the limit of {max_bytes}")
    layout = WeightsLayout.of_state(template)
    view = memoryview(data)
    header, start = parse_header(bytes(view[: 8 + MAX_HEADER_BYTES]), len(data))
    check_header(header, layout, len(data) - start)
    tensors = {}
    for name, spec in layout.specs.items():
        begin, end = header[name]["data_offsets"]
        raw = view[start + begin : start + end]
        check_finite(name, spec.dtype, raw)
        tensors[name] = (spec.dtype, raw)
    return tensors


def compute_encoded_weights_hash(
    data: bytes | bytearray | memoryview, template: StateDict, max_bytes: int
) -> bytes:
    """The canonical hash of safetensors bytes, checked as ``decode_weights`` checks them.

    Reads the tensors in place (no torch copies), so checking weights as they arrive costs no
    memory beyond the received bytes.
    """
    tensors = read_checked_tensors(data, template, max_bytes)
    digest = hashlib.sha256()
    for name in sorted(tensors):
        dtype, raw = tensors[name]
        update_hash_prefix(digest, name, TensorSpec(dtype, tuple(template[name].shape)))
        digest.update(raw)
    return digest.digest()
