"""The fastest grid angle: never slower than QGroundControl's 0°, along a field's long axis."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from core.types import SurveySpec, Waypoint
from flights.aoi import reproject
from flights.camera import get_camera, preview
from flights.grid_angle import best_grid_angle, best_grid_angle_m, estimate_at
from flights.plan import plan_survey

UTM = "EPSG:32630"
ORIGIN = reproject(Point(-2.30, 34.93), "EPSG:4326", UTM)


def spec(**overrides: object) -> SurveySpec:
    return SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), gsd_cm=5.0, **overrides)  # type: ignore[arg-type]


def lonlat(area_m: Polygon) -> Polygon:
    return reproject(affinity.translate(area_m, ORIGIN.x, ORIGIN.y), UTM, "EPSG:4326")


@pytest.mark.parametrize("heading_deg", [0.0, 30.0, 75.0, 140.0])
def test_a_long_thin_field_is_flown_along_its_long_axis(heading_deg: float) -> None:
    strip = affinity.rotate(box(-60, -500, 60, 500), -heading_deg, origin=(0, 0))
    choice = best_grid_angle_m(strip, spec(), np.array([0.0, -600.0]))
    off_axis_deg = (choice.angle_deg - heading_deg + 90.0) % 180.0 - 90.0
    assert abs(off_axis_deg) <= 2.0
    assert choice.time_s <= choice.at_zero.time_s
    if heading_deg >= 30.0:
        assert choice.time_ratio > 1.2


def test_best_angle_is_never_slower_than_zero_and_plans_what_it_estimated() -> None:
    rng = np.random.default_rng(7)
    home = Waypoint(lat_deg=34.929, lon_deg=-2.301, altitude_m=0.0)
    for _ in range(3):
        corners = rng.uniform(0, 400, size=(12, 2))
        field = Polygon(corners).convex_hull
        choice = best_grid_angle(lonlat(field), spec(), home, crs=UTM)
        assert choice.time_s <= choice.at_zero.time_s
        assert choice.at_zero.angle_deg == 0.0
        tuned = dataclasses.replace(spec(), grid_angle_deg=choice.angle_deg)
        mission = plan_survey(lonlat(field), tuned, home, name="best", crs=UTM)
        assert mission.estimated_time_s == pytest.approx(choice.time_s, rel=1e-6)
        assert mission.photo_count == choice.best.photo_count


def test_detours_around_a_hole_are_costed_in_the_search() -> None:
    basin = Point(200, 150).buffer(60)
    field = Polygon(box(0, 0, 400, 300).exterior.coords, [basin.exterior.coords])
    home = Waypoint(lat_deg=34.929, lon_deg=-2.301, altitude_m=0.0)
    start = time.perf_counter()
    choice = best_grid_angle(lonlat(field), spec(), home, crs=UTM)
    assert time.perf_counter() - start < 1.0
    tuned = dataclasses.replace(spec(), grid_angle_deg=choice.angle_deg)
    mission = plan_survey(lonlat(field), tuned, home, name="basin", crs=UTM)
    assert mission.estimated_time_s == pytest.approx(choice.time_s, rel=1e-6)
    assert mission.distance_m == pytest.approx(choice.distance_m, rel=1e-6)


def test_crosshatch_is_costed_in_the_search() -> None:
    field = box(0, 0, 300, 200)
    single = estimate_at(field, spec(), np.array([0.0, 0.0]), 0.0)
    double = estimate_at(field, spec(crosshatch=True), np.array([0.0, 0.0]), 0.0)
    assert double.photo_count > 1.8 * single.photo_count
    assert double.time_s > single.time_s + 0.5 * (single.time_s - 60.0)


def test_search_takes_a_fraction_of_a_second_per_field() -> None:
    field = Polygon([(0, 0), (600, 80), (650, 400), (120, 380)])
    start = time.perf_counter()
    best_grid_angle_m(field, spec(), np.array([0.0, 0.0]))
    assert time.perf_counter() - start < 1.0
