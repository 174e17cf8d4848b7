"""Flying windows at Berkane: sunrise/sunset from astral, margins and clock limits."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from core.errors import PlanError
from flights.daylight import flying_window

BERKANE = (-2.32, 34.92)


def test_midsummer_daylight_at_berkane() -> None:
    start, end = flying_window(date(2025, 6, 21), *BERKANE, margin_s=0.0)

    # Sunrise ~05:56 and sunset ~20:26 local (UTC+1): 14 h 30 min of daylight.
    assert start.utcoffset() == timedelta(hours=1)
    assert (start.hour, end.hour) == (5, 20)
    assert end - start == pytest.approx(timedelta(hours=14, minutes=30), abs=timedelta(minutes=5))


def test_winter_days_are_shorter_than_summer_days() -> None:
    winter = flying_window(date(2025, 12, 21), *BERKANE)
    summer = flying_window(date(2025, 6, 21), *BERKANE)

    assert winter[1] - winter[0] < summer[1] - summer[0] - timedelta(hours=4)


def test_the_margin_and_clock_window_narrow_the_day() -> None:
    day = date(2025, 4, 15)
    sunrise, sunset = flying_window(day, *BERKANE, margin_s=0.0)

    start, end = flying_window(day, *BERKANE, margin_s=1800.0, latest=time(16, 0))

    assert start == sunrise + timedelta(minutes=30)
    assert (end.hour, end.minute) == (16, 0)
    assert end < sunset


def test_a_window_with_no_time_left_is_refused() -> None:
    with pytest.raises(PlanError, match="no flying time"):
        flying_window(date(2025, 12, 21), *BERKANE, earliest=time(17, 45))
