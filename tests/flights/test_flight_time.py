"""The flight time model: cruise, turns, climb and descent; photos on photo legs only."""

from __future__ import annotations

import numpy as np
import pytest

from flights.flight_time import (
    ACCELERATION_M_S2,
    CLIMB_SPEED_M_S,
    DESCENT_SPEED_M_S,
    estimate_flight,
    photo_count,
    turn_penalty_s,
)

SPEED_M_S = 10.0
STOP_AND_GO_S = SPEED_M_S / ACCELERATION_M_S2


def test_a_straight_pass_costs_only_the_start_and_the_stop() -> None:
    xy = np.array([[0.0, 0.0], [0.0, 100.0], [0.0, 250.0]])
    assert turn_penalty_s(xy, SPEED_M_S) == pytest.approx(STOP_AND_GO_S)


def test_a_reversal_costs_a_full_stop_and_a_right_angle_half() -> None:
    back = np.array([[0.0, 0.0], [0.0, 100.0], [0.0, 0.0]])
    right = np.array([[0.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    assert turn_penalty_s(back, SPEED_M_S) == pytest.approx(2 * STOP_AND_GO_S)
    assert turn_penalty_s(right, SPEED_M_S) == pytest.approx(1.5 * STOP_AND_GO_S)


def test_repeated_points_cost_nothing() -> None:
    xy = np.array([[0.0, 0.0], [0.0, 100.0], [0.0, 100.0], [0.0, 200.0]])
    assert turn_penalty_s(xy, SPEED_M_S) == pytest.approx(STOP_AND_GO_S)


def test_photos_are_counted_per_run_of_photo_legs() -> None:
    legs_m = np.array([100.0, 20.0, 100.0, 20.0, 50.0, 50.0])
    photos = np.array([True, False, True, False, True, True])
    # 100 m runs: photos at 0, 25, 50, 75, 100; the 50 + 50 m run is one run of 100 m.
    assert photo_count(legs_m, photos, 25.0) == 15
    assert photo_count(legs_m, np.zeros(6, dtype=bool), 25.0) == 0


def test_a_boustrophedon_estimate_adds_up() -> None:
    home = np.array([0.0, -50.0])
    xy = np.array([[0.0, 0.0], [0.0, 400.0], [30.0, 400.0], [30.0, 0.0]])
    photos = np.array([True, False, True, False])
    estimate = estimate_flight(
        xy, photos, home, altitude_m=60.0, speed_m_s=SPEED_M_S, trigger_distance_m=40.0
    )
    horizontal_m = 50 + 400 + 30 + 400 + np.hypot(30, 50)
    assert estimate.distance_m == pytest.approx(horizontal_m + 120.0)
    assert estimate.photo_count == 22
    turns = 1 + 0.5 + 0.5  # out and back (start, stop) and two right angles
    turns += (1 - np.cos(np.arctan2(30, 50))) / 2  # from south onto the way home
    expected_s = (
        horizontal_m / SPEED_M_S
        + turns * STOP_AND_GO_S
        + 60.0 / CLIMB_SPEED_M_S
        + 60.0 / DESCENT_SPEED_M_S
    )
    assert estimate.time_s == pytest.approx(expected_s)
