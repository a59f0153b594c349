"""Weights as safetensors files, read and written tensor by tensor (or in bounded slices of a
tensor), never whole in memory.

A ``WeightsLayout`` is what the task's model holds: each tensor's name, dtype and shape, without
the values. ``WeightsFile`` checks a file's header against it once (names, dtypes, shapes, that
the tensors tile the data exactly) and then reads any slice of any tensor with ``pread``, into
fresh memory: no memory map, so what a validator reads is all it holds. ``write_weights`` writes
a file in the layout's order from a function that yields each slice, computing the canonical
hash as it goes (ml.codec: tensors sorted by name; name, dtype, shape and little-endian bytes).

Anything that reads slices (``TensorSource``) can feed the streaming aggregation: a file, or a
state dict in memory (``StateSource``, for simulations and tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from learnchain.ml.errors import WeightsError

StateDict = dict[str, torch.Tensor]
# elements per slice: a slice of float64 for n contributions is n x 2 MB (small against any
# model, large enough that Python's per-slice work is noise beside the arithmetic)
SLICE_ELEMENTS = 1 << 18
MAX_HEADER_BYTES = 1 << 20

# safetensors dtype name: (torch dtype, numpy dtype for the finiteness check or "", item size)
SAFETENSORS_DTYPES: dict[str, tuple[torch.dtype, str, int]] = {
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
DTYPE_NAMES = {dtype: name for name, (dtype, _, _) in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor's dtype and shape."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """How many elements."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def item_size(self) -> int:
        """Bytes per element."""
        return SAFETENSORS_DTYPES[DTYPE_NAMES[self.dtype]][2]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole tensor."""
        return self.numel * self.item_size


class WeightsLayout:
    """The tensors a model's weights hold, by name (sorted), without their values."""

    def __init__(self, specs: Mapping[str, TensorSpec]) -> None:
        for name, spec in specs.items():
            if spec.dtype not in DTYPE_NAMES:
                raise WeightsError(f"{name}: dtype {spec.dtype} cannot be stored as safetensors")
        self.specs = {name: specs[name] for name in sorted(specs)}
        self.data_size = sum(spec.nbytes for spec in self.specs.values())

    @staticmethod
    def of_state(state: Mapping[str, torch.Tensor]) -> WeightsLayout:
        """The layout of a state dict."""
        return WeightsLayout(
            {name: TensorSpec(t.dtype, tuple(t.shape)) for name, t in state.items()}
        )

    @property
    def names(self) -> list[str]:
        """Tensor names in canonical (sorted) order."""
        return list(self.specs)

    def compute_header(self) -> bytes:
        """The safetensors header of a file in this layout (tensors in name order, padded to
        8 bytes as safetensors writes it), with its 8-byte length in front."""
        entries: dict[str, Any] = {}
        offset = 0
        for name, spec in self.specs.items():
            entries[name] = {
                "dtype": DTYPE_NAMES[spec.dtype],
                "shape": list(spec.shape),
                "data_offsets": [offset, offset + spec.nbytes],
            }
            offset += spec.nbytes
        text = json.dumps(entries, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text

    @property
    def file_size(self) -> int:
        """The size of a file in this layout as ``write_weights`` writes it."""
        return len(self.compute_header()) + self.data_size

    def iter_slices(self, elements: int = SLICE_ELEMENTS) -> Iterator[tuple[str, int, int]]:
        """(name, start, stop) element ranges covering every tensor in order, each at most
        ``elements`` long."""
        for name, spec in self.specs.items():
            for start in range(0, max(spec.numel, 1), elements):
                yield name, start, min(spec.numel, start + elements)


class TensorSource(Protocol):
    """Weights that can be read slice by slice (a file, or a state dict in memory)."""

    def read_flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements [start, stop) of tensor ``name``, flattened."""
        ...


class StateSource:
    """A state dict as a ``TensorSource`` (views, no copies)."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self.state = state

    def read_flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements [start, stop) of tensor ``name``, flattened (a view)."""
        return self.state[name].detach().reshape(-1)[start:stop]


def check_header(header: dict[str, Any], layout: WeightsLayout, data_size: int) -> None:
    """WeightsError unless ``header`` names exactly the layout's tensors, with its dtypes and
    shapes, and their data tiles ``data_size`` bytes without gaps or overlaps."""
    header = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(layout.specs) - set(header))
    unexpected = sorted(set(header) - set(layout.specs))
    if missing or unexpected:
        raise WeightsError(
            "weights do not fit the model: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    spans = []
    for name, spec in layout.specs.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise WeightsError(f"{name}: unknown or missing dtype")
        dtype = SAFETENSORS_DTYPES[entry["dtype"]][0]
        if dtype != spec.dtype:
            raise WeightsError(f"{name}: dtype {dtype}, the model has {spec.dtype}")
        if entry.get("shape") != list(spec.shape):
            raise WeightsError(f"{name}: shape {entry.get('shape')}, the model has {spec.shape}")
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or offsets[1] - offsets[0] != spec.nbytes
        ):
            raise WeightsError(f"{name}: data offsets do not match its shape")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise WeightsError(f"{name}: tensors overlap or leave gaps")
        position = end
    if position != data_size:
        raise WeightsError("weights are not valid safetensors: data size does not match header")


def parse_header(prefix: bytes, total_size: int) -> tuple[dict[str, Any], int]:
    """The header object and where the data starts, from the first bytes of safetensors
    weights of ``total_size`` bytes (at least 8 + the header's length)."""
    if total_size < 8 or len(prefix) < 8:
        raise WeightsError("weights are too short to be safetensors")
    (header_size,) = struct.unpack("<Q", prefix[:8])
    if header_size > min(MAX_HEADER_BYTES, total_size - 8) or len(prefix) < 8 + header_size:
        raise WeightsError("weights are not valid safetensors: header size out of range")
    try:
        header = json.loads(prefix[8 : 8 + header_size])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"weights are not valid safetensors: header: {error}") from error
    if not isinstance(header, dict):
        raise WeightsError("weights are not valid safetensors: header is not an object")
    return header, 8 + header_size


def check_finite(name: str, dtype: torch.dtype, raw: bytes | bytearray | memoryview) -> None:
    """WeightsError when floating-point bytes hold a NaN or an infinity."""
    numpy_dtype = SAFETENSORS_DTYPES[DTYPE_NAMES[dtype]][1]
    if numpy_dtype and not bool(np.isfinite(np.frombuffer(raw, dtype=numpy_dtype)).all()):
        raise WeightsError(f"{name}: contains NaN or infinite values")
    if dtype == torch.bfloat16 and bool(
        ((np.frombuffer(raw, dtype="<u2") & 0x7F80) == 0x7F80).any()
    ):
        raise WeightsError(f"{name}: contains NaN or infinite values")


def update_hash_prefix(digest: Any, name: str, spec: TensorSpec) -> None:
    """The canonical hash's part before a tensor's bytes: name, dtype, shape, byte count."""
    encoded_name = name.encode()
    dtype = str(spec.dtype).removeprefix("torch.").encode()
    digest.update(struct.pack("<I", len(encoded_name)) + encoded_name)
    digest.update(struct.pack("<I", len(dtype)) + dtype)
    shape = spec.shape
    digest.update(struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape))
    digest.update(struct.pack("<Q", spec.nbytes))


def to_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's little-endian bytes (bfloat16 through its 16-bit pattern)."""
    flat = tensor.detach().contiguous().cpu()
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


def from_bytes(raw: bytearray, dtype: torch.dtype) -> torch.Tensor:
    """A flat tensor over ``raw`` (which it then owns)."""
    if not raw:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(raw, dtype=dtype)


class WeightsFile:
    """A safetensors file checked against the model's layout, read slice by slice."""

    def __init__(self, path: Path, layout: WeightsLayout, max_bytes: int) -> None:
        self.path = path
        self.layout = layout
        try:
            self.size = path.stat().st_size
            if self.size > max_bytes:
                raise WeightsError(
                    f"weights are {self.size} bytes, more than the limit of {max_bytes}"
                )
            with path.open("rb") as handle:
                prefix = handle.read(8 + MAX_HEADER_BYTES)
        except OSError as error:
            raise WeightsError(f"cannot read weights {path.name}: {error.strerror}") from None
        header, self.data_start = parse_header(prefix, self.size)
        check_header(header, layout, self.size - self.data_start)
        self.offsets = {name: int(header[name]["data_offsets"][0]) for name in layout.specs}

    def read_bytes(self, name: str, start: int, stop: int) -> bytearray:
        """The raw bytes of elements [start, stop) of ``name``."""
        spec = self.layout.specs[name]
        begin = self.data_start + self.offsets[name] + start * spec.item_size
        length = (stop - start) * spec.item_size
        buffer = bytearray(length)
        view = memoryview(buffer)
        got = 0
        try:
            handle = self.path.open("rb", buffering=0)
        except OSError as error:  # deleted since it was checked (its model was superseded)
            raise WeightsError(f"cannot read weights {self.path.name}: {error.strerror}") from None
        with handle:
            while got < length:
                count = os.preadv(handle.fileno(), [view[got:]], begin + got)
                if count == 0:
                    raise WeightsError(f"{self.path.name}: {name} is cut short")
                got += count
        return buffer

    def read_flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements [start, stop) of tensor ``name``, flattened, in fresh memory."""
        return from_bytes(self.read_bytes(name, start, stop), self.layout.specs[name].dtype)

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name`` whole, shaped."""
        spec = self.layout.specs[name]
        return self.read_flat(name, 0, spec.numel).reshape(spec.shape)

    def compute_hash(self, elements: int = SLICE_ELEMENTS) -> bytes:
        """The canonical hash (ml.codec), checking as it reads that every floating value is
        finite; WeightsError otherwise."""
        digest = hashlib.sha256()
        for name, spec in self.layout.specs.items():
            update_hash_prefix(digest, name, spec)
            for start in range(0, spec.numel, elements):
                raw = self.read_bytes(name, start, min(spec.numel, start + elements))
                check_finite(name, spec.dtype, raw)
                digest.update(raw)
        return digest.digest()

    def iter_chunks(self, chunk_bytes: int) -> Iterator[bytes]:
        """The whole file's bytes, ``chunk_bytes`` at a time (for serving)."""
        with self.path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                yield chunk


def write_weights(path: Path, layout: WeightsLayout, slices: Iterable[torch.Tensor]) -> bytes:
    """Write a safetensors file in ``layout`` from ``slices`` (one tensor per range of
    ``layout.iter_slices()``, in that order, cast to the tensor's dtype) and return the weights'
    canonical hash. The file is written beside ``path`` and renamed onto it once complete;
    weights holding a NaN or an infinity (a training that diverged) are a WeightsError, and
    whatever fails (a full disk too) leaves nothing behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        return _write_partial(partial, path, layout, slices)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_partial(
    partial: Path, path: Path, layout: WeightsLayout, slices: Iterable[torch.Tensor]
) -> bytes:
    digest = hashlib.sha256()
    values = iter(slices)
    current = ""
    with partial.open("wb") as handle:
        handle.write(layout.compute_header())
        for name, start, stop in layout.iter_slices():
            spec = layout.specs[name]
            if name != current:
                update_hash_prefix(digest, name, spec)
                current = name
            value = next(values, None)
            if value is None:
                raise WeightsError(f"{name}: no values for elements [{start}, {stop})")
            flat = value.reshape(-1).to(spec.dtype)
            if flat.numel() != stop - start:
                raise WeightsError(f"{name}: [{start}, {stop}) got {flat.numel()} values")
            raw = to_bytes(flat)
            check_finite(name, spec.dtype, raw)
            digest.update(raw)
            handle.write(raw)
    partial.replace(path)
    return digest.digest()


def write_state(path: Path, state: Mapping[str, torch.Tensor]) -> bytes:
    """Write a state dict (a model's ``state_dict()``, no copy needed) as a weights file; its
    canonical hash."""
    layout = WeightsLayout.of_state(state)
    return write_weights(path, layout, iter_source(StateSource(state), layout))


def collect_state(layout: WeightsLayout, slices: Iterable[torch.Tensor]) -> StateDict:
    """A state dict of its own from ``slices`` in ``layout.iter_slices()`` order (cast to each
    tensor's dtype): a model's worth of memory, for the callers that want one."""
    state = {name: torch.empty(spec.shape, dtype=spec.dtype) for name, spec in layout.specs.items()}
    for (name, start, stop), value in zip(layout.iter_slices(), slices, strict=True):
        state[name].view(-1)[start:stop] = value
    return state


def iter_source(source: TensorSource, layout: WeightsLayout) -> Iterator[torch.Tensor]:
    """Every slice of ``source`` in ``layout.iter_slices()`` order."""
    return (source.read_flat(*where) for where in layout.iter_slices())


def load_into(module: torch.nn.Module, source: TensorSource, layout: WeightsLayout) -> None:
    """Set the module's tensors the layout names (its parameters and persistent buffers, or its
    trainable ones over a frozen base) from ``source``, slice by slice, in place (no state dict
    of the whole model is made)."""
    targets = module.state_dict(keep_vars=True)
    missing = set(layout.specs) - set(targets)
    if missing:
        raise WeightsError(f"the model and the weights differ in {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, start, stop in layout.iter_slices():
            flat = targets[name].data.view(-1)
            flat[start:stop].copy_(source.read_flat(name, start, stop))
