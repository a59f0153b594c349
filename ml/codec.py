"""Weights as safetensors bytes, and their canonical hash. Never pickle.

The canonical hash is SHA-256 over the tensors sorted by name, each as its name, dtype, shape
and little-endian bytes, with no metadata: the same weights give the same hash on every machine,
whatever safetensors' header ordering or padding.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_save

from learnchain.ml.errors import WeightsError

StateDict = dict[str, torch.Tensor]
WeightsBytes = bytes | bytearray  # safetensors bytes, as received or stored


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
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)  # numpy on x86/arm is little-endian
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


_SAFETENSORS_DTYPES: dict[str, tuple[torch.dtype, str, int]] = {
    # safetensors name: (torch dtype, numpy dtype for the finiteness check or "", item size)
    "F64": (torch.float64, "<f8", 8),
    "F32": (torch.float32, "<f4", 4),
    "F16": (torch.float16, "<f2", 2),
    "BF16": (torch.bfloat16, "", 2),
    "I64": (torch.int64, "", 8),
    "I32": (torch.int32, "", 4),
    "I16": (torch.int16, "", 2),
    "I8": (torch.int8, "", 1),
    "U8": (torch.uint8, "", 1),
    "BOOL": (torch.bool, "", 1),
}
MAX_HEADER_BYTES = 1 << 20


def _read_header(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise WeightsError("weights are too short to be safetensors")
    (header_size,) = struct.unpack("<Q", bytes(data[:8]))
    if header_size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise WeightsError("weights are not valid safetensors: header size out of range")
    try:
        header = json.loads(bytes(data[8 : 8 + header_size]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"weights are not valid safetensors: header: {error}") from error
    if not isinstance(header, dict):
        raise WeightsError("weights are not valid safetensors: header is not an object")
    header.pop("__metadata__", None)
    return header, 8 + header_size


def read_checked_tensors(
    data: bytes | bytearray | memoryview, template: StateDict, max_bytes: int
) -> dict[str, tuple[torch.dtype, memoryview]]:
    """Each tensor's dtype and raw little-endian bytes (views into ``data``, not copies), after
    checking size, header, names, dtypes, shapes, layout and finiteness against the model."""
    if len(data) > max_bytes:
        raise WeightsError(f"weights are {len(data)} bytes, more than the limit of {max_bytes}")
    header, start = _read_header(data)
    missing = sorted(set(template) - set(header))
    unexpected = sorted(set(header) - set(template))
    if missing or unexpected:
        raise WeightsError(
            "weights do not fit the model: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    spans = []
    for name, expected in template.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") not in _SAFETENSORS_DTYPES:
            raise WeightsError(f"{name}: unknown or missing dtype")
        dtype, _, item_size = _SAFETENSORS_DTYPES[entry["dtype"]]
        if dtype != expected.dtype:
            raise WeightsError(f"{name}: dtype {dtype}, the model has {expected.dtype}")
        if entry.get("shape") != list(expected.shape):
            raise WeightsError(
                f"{name}: shape {entry.get('shape')}, the model has {tuple(expected.shape)}"
            )
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or offsets[1] - offsets[0] != expected.numel() * item_size
        ):
            raise WeightsError(f"{name}: data offsets do not match its shape")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise WeightsError(f"{name}: tensors overlap or leave gaps")
        position = end
    if start + position != len(data):
        raise WeightsError("weights are not valid safetensors: data size does not match header")
    view = memoryview(data)
    tensors = {}
    for name in template:
        dtype, numpy_dtype, _ = _SAFETENSORS_DTYPES[header[name]["dtype"]]
        begin, end = header[name]["data_offsets"]
        raw = view[start + begin : start + end]
        if numpy_dtype and not bool(np.isfinite(np.frombuffer(raw, dtype=numpy_dtype)).all()):
            raise WeightsError(f"{name}: contains NaN or infinite values")
        if dtype == torch.bfloat16 and bool(
            ((np.frombuffer(raw, dtype="<u2") & 0x7F80) == 0x7F80).any()
        ):
            raise WeightsError(f"{name}: contains NaN or infinite values")
        tensors[name] = (dtype, raw)
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
        encoded_name = name.encode()
        dtype_name = str(dtype).removeprefix("torch.").encode()
        shape = template[name].shape
        digest.update(struct.pack("<I", len(encoded_name)) + encoded_name)
        digest.update(struct.pack("<I", len(dtype_name)) + dtype_name)
        digest.update(struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape))
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)
    return digest.digest()
