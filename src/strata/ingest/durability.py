"""Flushing a written range of a journal segment to disk without touching the rest.

``fsync`` on a segment would also write back the prefaulted pages ahead of the head, which
makes every one of them fault again on the next append. ``sync_file_range`` on the written
range does not; it is Linux-only, so elsewhere this falls back to ``fdatasync``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Final

_WAIT_BEFORE: Final = 1
_WRITE: Final = 2
_WAIT_AFTER: Final = 4


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


def sync_range(fd: int, length: int) -> None:
    """Make bytes ``[0, length)`` of ``fd`` durable (ctypes releases the GIL meanwhile)."""
    if (
        _sync_file_range is not None
        and _sync_file_range(fd, 0, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER) == 0
    ):
        return
    os.fdatasync(fd)
