"""The canonical byte encoding of everything that is signed or hashed.

Fixed-width big-endian integers, length-prefixed bytes and strings, count-prefixed lists. One
value has exactly one encoding, so every node computes the same hashes and sign bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")


def encode_uint(value: int) -> bytes:
    """An unsigned integer as 8 big-endian bytes."""
    return _U64.pack(value)


def encode_int(value: int) -> bytes:
    """A signed integer as 8 big-endian bytes (two's complement)."""
    return _I64.pack(value)


def encode_bytes(value: bytes) -> bytes:
    """Bytes with a 4-byte length prefix."""
    return _U32.pack(len(value)) + value


def encode_str(value: str) -> bytes:
    """A string as length-prefixed UTF-8."""
    return encode_bytes(value.encode())


def encode_optional_bytes(value: bytes | None) -> bytes:
    """Absent bytes as a 0 marker, present bytes as 1 and the length-prefixed value."""
    return b"\x00" if value is None else b"\x01" + encode_bytes(value)


def encode_list(items: Iterable[bytes]) -> bytes:
    """Already-encoded items with a 4-byte count prefix."""
    parts = list(items)
    return _U32.pack(len(parts)) + b"".join(parts)
