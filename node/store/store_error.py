"""The one error the store raises."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The database cannot be opened or holds something unreadable; the message says where."""
