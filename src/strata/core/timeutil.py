"""Time in one representation: integer microseconds since the Unix epoch, UTC.

Integers are what the journal stores and what Arrow's ``timestamp[us, UTC]`` holds, so the
hot path never builds ``datetime`` objects.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Final

US_PER_DAY: Final = 86_400_000_000
EPOCH: Final = dt.date(1970, 1, 1)

Clock = Callable[[], int]
"""Returns the current time in epoch microseconds; injected so tests can move time."""


def now_us() -> int:
    return time.time_ns() // 1000


def day_of(epoch_us: int) -> int:
    """The UTC day number (days since 1970-01-01) of an epoch-microsecond timestamp."""
    return epoch_us // US_PER_DAY


def date_of_day(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=day)


def to_epoch_us(value: dt.datetime) -> int:
    """Convert a datetime to epoch microseconds; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
