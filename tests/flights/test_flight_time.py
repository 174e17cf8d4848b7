"""The flight time model: cruise, turns, 3-D legs, climb and descent; photos on photo legs."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon

from core.types import Mission, SurveySpec, Waypoint
from flights.camera import get_camera
from flights.flight_time import (
    ACCELERATION_M_S2,
    CLIMB_SPEED_M_S,
    DESCENT_SPEED_M_S,
    estimate_flight,
    mission_estimate,
    photo_count,
    turn_penalty_s,
)
from flights.plan import plan_survey

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


# ---- whole missions ---------------------------------------------------------------------

UTM = "EPSG:32630"
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
ORIGIN_M = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(-2.30, 34.92)


def mission_at(
    home_xy_m: tuple[float, float], stops_m: list[tuple[float, float, float]]
) -> Mission:
    """A mission over ``(east, north, height above take-off height)`` stops in metres from
    the origin, photos on."""
    spec = SurveySpec(camera=get_camera("dji_mavic_3e"), gsd_cm=3.0, speed_m_s=SPEED_M_S)

    def waypoint(x_m: float, y_m: float, altitude_m: float) -> Waypoint:
        lon, lat = TO_LONLAT.transform(ORIGIN_M[0] + x_m, ORIGIN_M[1] + y_m)
        return Waypoint(lat_deg=lat, lon_deg=lon, altitude_m=altitude_m)

    home = waypoint(*home_xy_m, 0.0)
    waypoints = tuple(waypoint(x, y, spec.altitude_m + dz) for x, y, dz in stops_m)
    return Mission("m", spec, home, waypoints, 0.0, 0.0, 0)


def test_a_flat_planned_survey_has_the_planner_estimate() -> None:
    x, y = ORIGIN_M
    ring = [
        TO_LONLAT.transform(x + dx, y + dy)
        for dx, dy in [(0, 0), (420, 60), (380, 500), (-30, 410)]
    ]
    spec = SurveySpec(camera=get_camera("dji_mavic_3e"), gsd_cm=3.0, grid_angle_deg=23.0)
    home_lon, home_lat = TO_LONLAT.transform(x - 80.0, y - 40.0)
    home = Waypoint(lat_deg=home_lat, lon_deg=home_lon, altitude_m=0.0)

    mission = plan_survey(Polygon(ring), spec, home, name="flat", crs=UTM)
    estimate = mission_estimate(mission, UTM)

    assert estimate.time_s == pytest.approx(mission.estimated_time_s, rel=1e-9)
    assert estimate.distance_m == pytest.approx(mission.distance_m, rel=1e-9)
    assert estimate.photo_count == mission.photo_count


def test_a_leg_takes_the_longer_of_its_horizontal_and_vertical_times() -> None:
    # After the take-off to height h: north 100 m climbing 40 m (climb-bound: 16 s > 10 s),
    # north 100 m descending 20 m (descent-bound: 13.3 s > 10 s), north 100 m level, then
    # back home at h + 20 and landing from there.
    mission = mission_at((0.0, 0.0), [(0.0, 100.0, 40.0), (0.0, 200.0, 20.0), (0.0, 300.0, 20.0)])
    h = mission.altitude_m

    estimate = mission_estimate(mission, UTM)

    legs_s = 40.0 / CLIMB_SPEED_M_S + 20.0 / DESCENT_SPEED_M_S + 100.0 / SPEED_M_S
    legs_s += 300.0 / SPEED_M_S
    turns_s = 2 * STOP_AND_GO_S  # one reversal (north, then back south), start and stop
    expected_s = h / CLIMB_SPEED_M_S + legs_s + turns_s + (h + 20.0) / DESCENT_SPEED_M_S
    assert estimate.time_s == pytest.approx(expected_s, rel=1e-6)
    legs_m = np.hypot(100.0, 40.0) + np.hypot(100.0, 20.0) + 100.0 + 300.0
    assert estimate.distance_m == pytest.approx(h + legs_m + h + 20.0, rel=1e-6)


def test_climbing_waypoints_cost_more_than_level_ones() -> None:
    level = mission_at((0.0, -50.0), [(0.0, 0.0, 0.0), (0.0, 400.0, 0.0)])
    climbing = mission_at((0.0, -50.0), [(0.0, 0.0, 0.0), (0.0, 400.0, 200.0)])

    extra_s = mission_estimate(climbing, UTM).time_s - mission_estimate(level, UTM).time_s

    # 200 m up over 400 m takes 80 s, not 40 s; the return and the landing start 200 m higher.
    assert extra_s == pytest.approx(40.0 + 200.0 / DESCENT_SPEED_M_S, rel=1e-6)
