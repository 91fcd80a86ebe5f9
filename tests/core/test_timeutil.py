"""Epoch microseconds and UTC day numbers, checked against plain datetime arithmetic.

Pre-1970 instants are supported: ``day_of`` floors (so -1 us is 1969-12-31), and the whole
``datetime.date`` range 0001-01-01 .. 9999-12-31 round-trips through day numbers.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.timeutil import EPOCH, US_PER_DAY, date_of_day, day_of, now_us, to_epoch_us

EPOCH_NAIVE = dt.datetime(1970, 1, 1)
ONE_US = dt.timedelta(microseconds=1)
MIN_DAY = (dt.date.min - EPOCH).days
MAX_DAY = (dt.date.max - EPOCH).days

# Keep a year of margin at both ends so shifting by a UTC offset cannot leave datetime's range.
naive_datetimes = st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31))
fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)


def expected_us(value: dt.datetime) -> int:
    offset = value.utcoffset() or dt.timedelta(0)
    return (value.replace(tzinfo=None) - offset - EPOCH_NAIVE) // ONE_US


# -- to_epoch_us ---------------------------------------------------------------------------


@given(naive_datetimes)
def test_naive_datetimes_are_utc(value: dt.datetime) -> None:
    assert to_epoch_us(value) == (value - EPOCH_NAIVE) // ONE_US
    assert to_epoch_us(value) == to_epoch_us(value.replace(tzinfo=dt.UTC))


@given(naive_datetimes, fixed_offsets)
def test_aware_datetimes_honour_their_offset(value: dt.datetime, tz: dt.timezone) -> None:
    aware = value.replace(tzinfo=tz)
    assert to_epoch_us(aware) == expected_us(aware)
    # the same instant seen from UTC is the same number
    assert to_epoch_us(aware) == to_epoch_us(aware.astimezone(dt.UTC))


@given(naive_datetimes, st.timezones())
def test_aware_datetimes_in_named_zones(value: dt.datetime, tz: dt.tzinfo) -> None:
    aware = value.replace(tzinfo=tz)
    assert to_epoch_us(aware) == expected_us(aware)


@pytest.mark.parametrize(
    ("value", "us"),
    [
        (dt.datetime(1970, 1, 1), 0),
        (dt.datetime(1970, 1, 1, 0, 0, 0, 1), 1),
        (dt.datetime(1969, 12, 31, 23, 59, 59, 999_999), -1),
        (dt.datetime(1970, 1, 2), US_PER_DAY),
        (
            dt.datetime(2024, 1, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
            1_704_067_200_000_000,
        ),
        (
            dt.datetime(2023, 12, 31, 19, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            1_704_067_200_000_000,
        ),
        # 2024-03-10 01:30 EST (UTC-5) and 2024-07-01 12:00 EDT (UTC-4)
        (
            dt.datetime(2024, 3, 10, 1, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
            1_710_052_200_000_000,
        ),
        (
            dt.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
            1_719_849_600_000_000,
        ),
        (dt.datetime(1900, 1, 1), -2_208_988_800_000_000),
    ],
)
def test_known_instants(value: dt.datetime, us: int) -> None:
    assert to_epoch_us(value) == us


def test_microseconds_are_exact_far_from_the_epoch() -> None:
    # float seconds would lose the last digit here; the integer path must not
    value = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)
    assert to_epoch_us(value) == (value - EPOCH_NAIVE) // ONE_US
    assert to_epoch_us(value) % 1_000_000 == 999_999


def test_now_us_reads_the_wall_clock_in_microseconds() -> None:
    before = time.time_ns() // 1000
    now = now_us()
    after = time.time_ns() // 1000
    assert isinstance(now, int)
    assert before <= now <= after


# -- day numbers ---------------------------------------------------------------------------


@given(st.dates())
def test_day_numbers_round_trip_over_the_whole_date_range(day: dt.date) -> None:
    number = (day - EPOCH).days
    assert date_of_day(number) == day
    midnight = to_epoch_us(dt.datetime.combine(day, dt.time.min))
    assert day_of(midnight) == number
    assert date_of_day(day_of(midnight)) == day


@given(st.integers(min_value=MIN_DAY * US_PER_DAY, max_value=(MAX_DAY + 1) * US_PER_DAY - 1))
def test_day_of_is_the_utc_calendar_day(epoch_us: int) -> None:
    instant = EPOCH_NAIVE + epoch_us * ONE_US
    assert date_of_day(day_of(epoch_us)) == instant.date()
    # floor, not truncation: the day starts at or before the instant, the next one after it
    assert day_of(epoch_us) * US_PER_DAY <= epoch_us < (day_of(epoch_us) + 1) * US_PER_DAY


@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)
    )
)
def test_day_of_matches_datetime_date_including_pre_1970(value: dt.datetime) -> None:
    assert date_of_day(day_of(to_epoch_us(value))) == value.date()


@given(st.integers(min_value=MIN_DAY + 1, max_value=MAX_DAY - 1))
def test_midnight_boundaries(day: int) -> None:
    midnight = day * US_PER_DAY
    assert day_of(midnight) == day
    assert day_of(midnight - 1) == day - 1  # last microsecond of the day before
    assert day_of(midnight + US_PER_DAY - 1) == day
    assert day_of(midnight + US_PER_DAY) == day + 1
    assert date_of_day(day) - date_of_day(day - 1) == dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("epoch_us", "date"),
    [
        (0, dt.date(1970, 1, 1)),
        (-1, dt.date(1969, 12, 31)),
        (-US_PER_DAY, dt.date(1969, 12, 31)),
        (-US_PER_DAY - 1, dt.date(1969, 12, 30)),
        (US_PER_DAY - 1, dt.date(1970, 1, 1)),
        (1_704_067_200_000_000, dt.date(2024, 1, 1)),
        (1_704_067_199_999_999, dt.date(2023, 12, 31)),
    ],
)
def test_known_days(epoch_us: int, date: dt.date) -> None:
    assert date_of_day(day_of(epoch_us)) == date


def test_an_aware_instant_lands_on_its_utc_day_not_its_local_day() -> None:
    late_in_new_york = dt.datetime(2024, 1, 1, 22, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    assert date_of_day(day_of(to_epoch_us(late_in_new_york))) == dt.date(2024, 1, 2)
