"""Giving memory back to the system after large, short-lived work.

Training and scoring a large model allocate and free buffers of megabytes (gradients, momentum,
activations, slices of weights). glibc keeps freed blocks below its mmap threshold in the heap,
so a process's resident memory stays at its peak long after the work; ``malloc_trim`` returns
the free pages at the top and inside the heap. It costs milliseconds; the learner calls it after
each piece of work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # another C library (musl has no malloc_trim)
        _trim = None


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (glibc; nothing elsewhere)."""
    if _trim is not None:
        _trim(0)
