"""How a contribution travels: its update (trained weights less the model it was trained from),
encoded by the genesis's codec (``task.codec``, docs/protocol.md §3.8).

- ``float32``: the trained weights themselves, as before there were codecs (4 bytes a value).
- ``bfloat16``: the update in bfloat16 (2 bytes a value).
- ``int8``: the update rounded to int8, with one float32 scale per block of ``INT8_BLOCK``
  values (about 1 byte a value: 3.99 x fewer than float32).
- ``topk:FRACTION``: the ``ceil(FRACTION x n)`` largest values of each tensor's update (by
  magnitude), and at least ``VECTOR_FLOOR`` of a vector's, as positions (int16 in tensors of at
  most 2**15 values, else int32) and int8 values with one float32 scale (3 or 5 bytes a kept
  value: 80 x fewer at 1 %).

An encoded update is a weights file of its own layout (``compute_encoded_layout``), hashed like
any weights, so its hash covers exactly the bytes sent. Everyone decodes it the same way, on the
CPU, in float32 (``DecodedContribution``: the model plus the decoded update, read slice by
slice), so the aggregate every validator re-computes from decoded updates is the proposer's to
the bit (§3.7), and screening, appraisal and deposits judge what was sent.

What an encoding drops is kept by its maker (``ml/error_feedback.py``) and added to its next
update, so that nothing is lost over rounds, only delayed (EF-SGD; as DeMo and SparseLoCo do).
Top-k's residue decays instead (``TOPK_FEEDBACK_DECAY``, SparseLoCo's beta): kept whole, it
grows for rounds and leaves in bursts, so honest top-k updates weigh several times their round's
training and the median-norm clip lets a party that keeps no residue through at full strength.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.config import parse_codec_name
from learnchain.ml.errors import WeightsError
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    TensorSpec,
    WeightsFile,
    WeightsLayout,
)

INT8_BLOCK = 4096  # values per int8 scale: 0.1 % of the bytes, a scale per 16 KB of float32
INT8_MAX = 127
SCALE = ".scale"  # the suffix of a tensor's scales in an encoded layout
INDEX = ".index"  # the suffix of a tensor's kept positions (topk)
# topk keeps at least this many values of a vector (a bias, a norm's scale): one value of a class's
# output bias moves every prediction of that class, and 1 % of a 10-value bias (one value a round)
# piled each party's error feedback onto one class at a time, spikes that stalled non-IID chains
VECTOR_FLOOR = 16
# what of top-k's residue is kept each round: 1 left honest updates ~5x their round's norm (stale
# bursts), so an attacker skipping error feedback at the median norm cost 0.10 of accuracy
# (bench/README.md, "Attackers who skip error feedback"); 0.8 costs clean runs about 0.002
TOPK_FEEDBACK_DECAY = 0.8


class UpdateCodec(ABC):
    """Encodes updates into a layout of their own and decodes slices of them."""

    feedback_decay = 1.0  # the share of a party's residue that its next update carries

    def __init__(self, name: str) -> None:
        self.name = name  # as the genesis names it

    @property
    def sends_weights(self) -> bool:
        """True when a contribution is the trained weights themselves (``float32``)."""
        return False

    @abstractmethod
    def compute_encoded_layout(self, layout: WeightsLayout) -> WeightsLayout:
        """The layout of an encoded update of weights in ``layout``."""

    @abstractmethod
    def encode_tensor(self, name: str, spec: TensorSpec, update: torch.Tensor) -> StateDict:
        """One tensor's update (float32, flat; the tensor is ``spec``), encoded: its entries in
        the encoded layout."""

    @abstractmethod
    def decode_slice(
        self, encoded: TensorSource, layout: WeightsLayout, name: str, start: int, stop: int
    ) -> torch.Tensor:
        """Elements [start, stop) of tensor ``name``'s decoded update (an update of weights in
        ``layout``), float32."""

    def check(self, encoded: TensorSource, layout: WeightsLayout) -> None:
        """WeightsError when an encoded update (in this codec's layout of ``layout``) does not
        decode; its values are known finite (its hash was checked). Every value of a dense
        encoding decodes."""
        return None

    def decode_entries(self, entries: StateDict, name: str, spec: TensorSpec) -> torch.Tensor:
        """Tensor ``name``'s whole decoded update, float32, flat, from what ``encode_tensor``
        made of it."""
        return self.decode_slice(
            StateSource(entries), WeightsLayout({name: spec}), name, 0, spec.numel
        )

    def subtract_decoded(
        self, update: torch.Tensor, entries: StateDict, name: str, spec: TensorSpec
    ) -> None:
        """``update`` less what decodes from ``entries`` (its encoding), in place: what the
        encoding dropped."""
        update -= self.decode_entries(entries, name, spec)

    def pack(self, entries: StateDict, layout: WeightsLayout) -> StateDict:
        """Every tensor's entries (from ``encode_tensor``) as the encoded layout holds them:
        as they are, for a codec with entries of its own per tensor."""
        return entries

    def read_kept(
        self, encoded: TensorSource, layout: WeightsLayout, name: str
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Tensor ``name``'s decoded update as its only non-zero values, (positions, float32
        values), for a codec that keeps few of them; None for a dense one."""
        return None


class Float32Codec(UpdateCodec):
    """The trained weights as they are (the chain's format before codecs)."""

    def __init__(self) -> None:
        super().__init__("float32")

    @property
    def sends_weights(self) -> bool:
        return True

    def compute_encoded_layout(self, layout: WeightsLayout) -> WeightsLayout:
        return layout

    def encode_tensor(self, name: str, spec: TensorSpec, update: torch.Tensor) -> StateDict:
        return {name: update}

    def decode_slice(
        self, encoded: TensorSource, layout: WeightsLayout, name: str, start: int, stop: int
    ) -> torch.Tensor:
        return encoded.read_flat(name, start, stop).to(torch.float32)


class BFloat16Codec(UpdateCodec):
    """The update in bfloat16."""

    def __init__(self) -> None:
        super().__init__("bfloat16")

    def compute_encoded_layout(self, layout: WeightsLayout) -> WeightsLayout:
        return WeightsLayout(
            {name: TensorSpec(torch.bfloat16, spec.shape) for name, spec in layout.specs.items()}
        )

    def encode_tensor(self, name: str, spec: TensorSpec, update: torch.Tensor) -> StateDict:
        return {name: update.to(torch.bfloat16)}

    def decode_slice(
        self, encoded: TensorSource, layout: WeightsLayout, name: str, start: int, stop: int
    ) -> torch.Tensor:
        return encoded.read_flat(name, start, stop).to(torch.float32)


def dequantize(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """int8 ``values`` times their scale (one, or one per value), float32."""
    return values.to(torch.float32) * scales


def compute_decoded_weights(
    base: torch.Tensor, update: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Weights as every node decodes a contribution (§3.8): ``base`` plus the decoded ``update``
    in float32, cast to the model's ``dtype``. The dense and the kept-value paths both call it,
    so that they agree to the bit."""
    return (base.to(torch.float32) + update).to(dtype)


def count_blocks(numel: int, block: int) -> int:
    """Blocks of ``block`` values covering ``numel`` values (one at least)."""
    return max(1, math.ceil(numel / block))


def compute_int8_scales(values: torch.Tensor, block: int) -> torch.Tensor:
    """One scale per block of ``values``: its largest magnitude over 127 (1 for a block of
    zeros, which then rounds to zeros)."""
    blocks = count_blocks(values.numel(), block)
    padded = torch.zeros(blocks * block, dtype=torch.float32)
    padded[: values.numel()] = values.abs()
    peaks = padded.view(blocks, block).amax(dim=1)
    return torch.where(peaks > 0, peaks / INT8_MAX, torch.ones_like(peaks))


def quantize(values: torch.Tensor, scales: torch.Tensor, block: int) -> torch.Tensor:
    """``values`` rounded to int8 steps of their block's scale."""
    per_value = scales.repeat_interleave(block)[: values.numel()]
    return torch.round(values / per_value).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)


class Int8Codec(UpdateCodec):
    """The update rounded to int8, a float32 scale per block of ``INT8_BLOCK`` values."""

    def __init__(self, block: int = INT8_BLOCK) -> None:
        super().__init__("int8")
        self.block = block

    def compute_encoded_layout(self, layout: WeightsLayout) -> WeightsLayout:
        specs = {}
        for name, spec in layout.specs.items():
            specs[name] = TensorSpec(torch.int8, spec.shape)
            specs[name + SCALE] = TensorSpec(torch.float32, (count_blocks(spec.numel, self.block),))
        return WeightsLayout(specs)

    def encode_tensor(self, name: str, spec: TensorSpec, update: torch.Tensor) -> StateDict:
        scales = compute_int8_scales(update, self.block)
        return {name: quantize(update, scales, self.block), name + SCALE: scales}

    def decode_slice(
        self, encoded: TensorSource, layout: WeightsLayout, name: str, start: int, stop: int
    ) -> torch.Tensor:
        if start >= stop:
            return torch.zeros(0, dtype=torch.float32)
        first, last = start // self.block, (stop - 1) // self.block
        scales = encoded.read_flat(name + SCALE, first, last + 1)
        offset = start - first * self.block
        per_value = scales.repeat_interleave(self.block)[offset : offset + stop - start]
        return dequantize(encoded.read_flat(name, start, stop), per_value)


# topk's encoded layout: every tensor's kept values, positions and scale, packed into four
# tensors (in the order of the tensors' names), so that a small model's header stays small
VALUES = "topk.values"  # int8, every tensor's kept values
POSITIONS_16 = "topk.positions16"  # int16, the positions in tensors of at most 2**15 values
POSITIONS_32 = "topk.positions32"  # int32, the positions in larger tensors
SCALES = "topk.scales"  # float32, one per tensor
PACKED_DTYPES = {
    VALUES: torch.int8,
    POSITIONS_16: torch.int16,
    POSITIONS_32: torch.int32,
    SCALES: torch.float32,
}


def compute_position_dtype(numel: int) -> torch.dtype:
    """The narrowest integer type that holds every position in a tensor of ``numel`` values
    (on a small model, positions are most of what top-k sends)."""
    return torch.int16 if numel <= 2**15 else torch.int32


@dataclass(frozen=True, slots=True)
class KeptRange:
    """Where one tensor's kept values lie in topk's packed tensors."""

    kept: int
    values: int  # the first value's place in VALUES
    positions: str  # POSITIONS_16 or POSITIONS_32
    first_position: int  # the first position's place in ``positions``
    scale: int  # the scale's place in SCALES


def scatter_kept(
    positions: torch.Tensor, values: torch.Tensor, scale: torch.Tensor, start: int, stop: int
) -> torch.Tensor:
    """Elements [start, stop) of a tensor whose only non-zero values are ``values`` (int8, times
    ``scale``) at the sorted ``positions``; float32."""
    dense = torch.zeros(stop - start, dtype=torch.float32)
    dense[positions - start] = dequantize(values, scale)
    return dense


def compute_largest_positions(update: torch.Tensor, kept: int) -> torch.Tensor:
    """The positions of ``update``'s ``kept`` largest magnitudes, increasing; ties broken by
    position (the lower first), so that every encoder keeps the same values. One partial
    selection, not a sort of the whole tensor (a sort of 25 million values takes seconds)."""
    magnitudes = update.abs()
    if kept >= magnitudes.numel() or not bool(torch.isfinite(magnitudes).all()):
        order = torch.argsort(magnitudes, descending=True, stable=True)[:kept]
        return torch.sort(order).values
    threshold = torch.topk(magnitudes, kept, sorted=False).values.min()
    above = magnitudes > threshold
    tied = torch.nonzero(magnitudes == threshold).flatten()[: kept - int(above.sum())]
    above[tied] = True
    return torch.nonzero(above).flatten()


class TopKCodec(UpdateCodec):
    """The largest ``fraction`` of each tensor's update by magnitude (at least ``VECTOR_FLOOR``
    of a vector's): positions (sorted; int16 in tensors small enough for them, else int32) and
    int8 values with one float32 scale."""

    feedback_decay = TOPK_FEEDBACK_DECAY

    def __init__(self, fraction: float) -> None:
        super().__init__(f"topk:{fraction:g}")
        self.fraction = fraction
        # the packing of the layout last asked about: every slice read asks again
        self._packing: tuple[WeightsLayout, dict[str, KeptRange]] | None = None

    def compute_kept(self, spec: TensorSpec) -> int:
        """How many of a tensor's values are kept: the fraction of them, and at least
        ``VECTOR_FLOOR`` of a vector (all of a shorter one)."""
        numel = spec.numel
        kept = max(1, math.ceil(self.fraction * numel))
        if len(spec.shape) <= 1:
            kept = max(kept, VECTOR_FLOOR)
        return min(numel, kept)

    def compute_packing(self, layout: WeightsLayout) -> dict[str, KeptRange]:
        """Where each tensor's kept values, positions and scale lie in the packed tensors."""
        cached = self._packing
        if cached is not None and cached[0] is layout:
            return cached[1]
        packing: dict[str, KeptRange] = {}
        counts = {VALUES: 0, POSITIONS_16: 0, POSITIONS_32: 0}
        for index, (name, spec) in enumerate(layout.specs.items()):  # in name order
            numel = spec.numel
            kept = self.compute_kept(spec)
            group = POSITIONS_16 if compute_position_dtype(numel) == torch.int16 else POSITIONS_32
            packing[name] = KeptRange(kept, counts[VALUES], group, counts[group], index)
            counts[VALUES] += kept
            counts[group] += kept
        self._packing = (layout, packing)
        return packing

    def compute_encoded_layout(self, layout: WeightsLayout) -> WeightsLayout:
        packing = self.compute_packing(layout).values()
        sizes = {
            VALUES: sum(r.kept for r in packing),
            POSITIONS_16: sum(r.kept for r in packing if r.positions == POSITIONS_16),
            POSITIONS_32: sum(r.kept for r in packing if r.positions == POSITIONS_32),
            SCALES: len(packing),
        }
        return WeightsLayout(
            {name: TensorSpec(PACKED_DTYPES[name], (size,)) for name, size in sizes.items() if size}
        )

    def encode_tensor(self, name: str, spec: TensorSpec, update: torch.Tensor) -> StateDict:
        kept = self.compute_kept(spec)
        positions = compute_largest_positions(update, kept)
        values = update[positions]
        scales = compute_int8_scales(values, max(kept, 1))
        return {
            name: quantize(values, scales, max(kept, 1)),
            name + INDEX: positions.to(compute_position_dtype(update.numel())),
            name + SCALE: scales,
        }

    def decode_entries(self, entries: StateDict, name: str, spec: TensorSpec) -> torch.Tensor:
        return scatter_kept(
            entries[name + INDEX].to(torch.int64),
            entries[name],
            entries[name + SCALE],
            0,
            spec.numel,
        )

    def subtract_decoded(
        self, update: torch.Tensor, entries: StateDict, name: str, spec: TensorSpec
    ) -> None:
        # only the kept values decode to anything: no dense copy of the decoded update
        positions = entries[name + INDEX].to(torch.int64)
        update[positions] -= dequantize(entries[name], entries[name + SCALE])

    def pack(self, entries: StateDict, layout: WeightsLayout) -> StateDict:
        packing = self.compute_packing(layout)
        names = layout.names
        packed = {
            VALUES: [entries[name] for name in names],
            POSITIONS_16: [
                entries[n + INDEX] for n in names if packing[n].positions == POSITIONS_16
            ],
            POSITIONS_32: [
                entries[n + INDEX] for n in names if packing[n].positions == POSITIONS_32
            ],
            SCALES: [entries[name + SCALE] for name in names],
        }
        encoded_layout = self.compute_encoded_layout(layout)
        return {name: torch.cat(packed[name]) for name in encoded_layout.specs}

    def _read_positions(self, encoded: TensorSource, kept: KeptRange) -> torch.Tensor:
        """One tensor's kept positions, int64."""
        where = (kept.first_position, kept.first_position + kept.kept)
        return encoded.read_flat(kept.positions, *where).to(torch.int64)

    def check(self, encoded: TensorSource, layout: WeightsLayout) -> None:
        for name, kept in self.compute_packing(layout).items():
            numel = layout.specs[name].numel
            positions = self._read_positions(encoded, kept)
            if positions.numel() and (
                int(positions[0]) < 0
                or int(positions[-1]) >= numel
                or not bool((positions[1:] > positions[:-1]).all())
            ):
                raise WeightsError(
                    f"{name}: the update's positions are not increasing within [0, {numel})"
                )

    def read_kept(
        self, encoded: TensorSource, layout: WeightsLayout, name: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kept = self.compute_packing(layout)[name]
        scale = encoded.read_flat(SCALES, kept.scale, kept.scale + 1).to(torch.float32)
        values = encoded.read_flat(VALUES, kept.values, kept.values + kept.kept)
        return self._read_positions(encoded, kept), dequantize(values, scale)

    def decode_slice(
        self, encoded: TensorSource, layout: WeightsLayout, name: str, start: int, stop: int
    ) -> torch.Tensor:
        kept = self.compute_packing(layout)[name]
        positions = self._read_positions(encoded, kept)
        low = int(torch.searchsorted(positions, start))
        high = int(torch.searchsorted(positions, stop))
        scale = encoded.read_flat(SCALES, kept.scale, kept.scale + 1).to(torch.float32)
        values = encoded.read_flat(VALUES, kept.values + low, kept.values + high)
        return scatter_kept(positions[low:high], values, scale, start, stop)


CODECS: dict[str, UpdateCodec] = {
    codec.name: codec for codec in (Float32Codec(), BFloat16Codec(), Int8Codec())
}


def parse_codec(text: str) -> UpdateCodec:
    """The codec a genesis names (``task.codec``); TaskError, one line, when there is none."""
    fraction = parse_codec_name(text)
    return CODECS[text] if fraction is None else TopKCodec(fraction)


class DecodedContribution:
    """A contribution as the weights it stands for (``TensorSource``): the model it was trained
    from plus its decoded update, in the model's dtype, read slice by slice."""

    def __init__(
        self,
        base: TensorSource,
        encoded: TensorSource,
        codec: UpdateCodec,
        layout: WeightsLayout,
    ) -> None:
        self.base, self.encoded, self.codec, self.layout = base, encoded, codec, layout

    def read_flat(self, name: str, start: int, stop: int) -> torch.Tensor:
        spec = self.layout.specs[name]
        base = self.base.read_flat(name, start, stop)
        update = self.codec.decode_slice(self.encoded, self.layout, name, start, stop)
        return compute_decoded_weights(base, update, spec.dtype)

    def read_kept(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Tensor ``name``'s update as (positions, float32 values) when the codec keeps few of
        its values (``UpdateCodec.read_kept``), else None."""
        return self.codec.read_kept(self.encoded, self.layout, name)


def open_contribution(
    path: Path, base: TensorSource, codec: UpdateCodec, layout: WeightsLayout, max_bytes: int
) -> TensorSource:
    """The weights a contribution's file stands for, trained from ``base`` (WeightsError when
    the file is not in the codec's layout)."""
    if codec.sends_weights:
        return WeightsFile(path, layout, max_bytes)
    encoded = WeightsFile(path, codec.compute_encoded_layout(layout), max_bytes)
    return DecodedContribution(base, encoded, codec, layout)
