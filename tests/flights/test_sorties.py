"""Battery sorties: every sortie fits on a battery, every line is flown once, cuts at line ends."""

from __future__ import annotations

import dataclasses
import math
from itertools import pairwise

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiLineString, Point, box

from core.errors import PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.camera import get_camera
from flights.flight_time import mission_estimate
from flights.plan import plan_survey
from flights.sorties import split_mission

UTM = "EPSG:32630"
TO_UTM = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
ORIGIN_M = TO_UTM.transform(-2.30, 34.92)


def spec() -> SurveySpec:
    return SurveySpec(camera=get_camera("dji_mavic_3e"), gsd_cm=3.0, speed_m_s=8.0)


def waypoint(x_m: float, y_m: float, photos: bool = True) -> Waypoint:
    lon, lat = TO_LONLAT.transform(ORIGIN_M[0] + x_m, ORIGIN_M[1] + y_m)
    return Waypoint(lat_deg=lat, lon_deg=lon, altitude_m=spec().altitude_m, photos=photos)


def lawnmower(
    lines: int, length_m: float, home_xy_m: tuple[float, float] = (-200.0, -100.0)
) -> Mission:
    """North-south lines 60 m apart that take photos, joined by turns that do not."""
    points = []
    for k in range(lines):
        ends = [(k * 60.0, 0.0), (k * 60.0, length_m)]
        first, last = ends if k % 2 == 0 else ends[::-1]
        points += [waypoint(*first, photos=True), waypoint(*last, photos=False)]
    home = dataclasses.replace(waypoint(*home_xy_m), altitude_m=0.0)
    return Mission("field", spec(), home, tuple(points), 0.0, 0.0, 0)


def xy_m(w: Waypoint) -> tuple[float, float]:
    x, y = TO_UTM.transform(w.lon_deg, w.lat_deg)
    return x - ORIGIN_M[0], y - ORIGIN_M[1]


def photo_legs(mission: Mission) -> list[LineString]:
    return [LineString([xy_m(a), xy_m(b)]) for a, b in pairwise(mission.waypoints) if a.photos]


def test_every_sortie_fits_in_the_usable_endurance() -> None:
    sorties = split_mission(lawnmower(lines=40, length_m=900.0), usable_s=1200.0, crs=UTM)

    assert len(sorties) > 3
    for sortie in sorties:
        assert sortie.estimated_time_s <= 1200.0
        estimate = mission_estimate(sortie, UTM)
        assert sortie.estimated_time_s == pytest.approx(estimate.time_s, rel=1e-9)
        assert sortie.distance_m == pytest.approx(estimate.distance_m, rel=1e-9)


@pytest.mark.parametrize(
    ("mission", "usable_s"),
    [
        (lawnmower(lines=40, length_m=900.0), 1200.0),
        (lawnmower(lines=2, length_m=8000.0, home_xy_m=(30.0, 4000.0)), 1500.0),  # cut mid-line
    ],
)
def test_every_photo_leg_is_flown_exactly_once_across_sorties(
    mission: Mission, usable_s: float
) -> None:
    sorties = split_mission(mission, usable_s=usable_s, crs=UTM)

    flown = [leg for s in sorties for leg in photo_legs(s)]
    planned = MultiLineString(photo_legs(mission))
    union = shapely.union_all(flown)
    assert sum(leg.length for leg in flown) == pytest.approx(planned.length, abs=0.01)
    assert union.length == pytest.approx(planned.length, abs=0.01)  # no leg flown twice
    assert union.symmetric_difference(planned).length < 0.01


def test_sorties_start_and_end_at_line_ends_when_lines_fit_a_battery() -> None:
    mission = lawnmower(lines=40, length_m=900.0)
    line_ends = {tuple(np.round(xy_m(w), 3)) for w in mission.waypoints}

    for sortie in split_mission(mission, usable_s=1200.0, crs=UTM):
        assert sortie.waypoints[0].photos
        assert tuple(np.round(xy_m(sortie.waypoints[0]), 3)) in line_ends
        assert tuple(np.round(xy_m(sortie.waypoints[-1]), 3)) in line_ends
        assert sortie.home == mission.home


def test_a_line_longer_than_a_battery_is_cut_at_a_photo_and_resumed_there() -> None:
    mission = lawnmower(lines=2, length_m=8000.0, home_xy_m=(30.0, 4000.0))
    step_m = mission.spec.trigger_distance_m

    first, second, *rest = split_mission(mission, usable_s=1500.0, crs=UTM)

    assert rest
    assert xy_m(first.waypoints[-1]) == pytest.approx(xy_m(second.waypoints[0]), abs=1e-3)
    cut_m = xy_m(second.waypoints[0])[1]  # along the first line, which starts at y = 0
    assert 0.0 < cut_m < 8000.0
    assert cut_m / step_m == pytest.approx(round(cut_m / step_m), abs=1e-6)
    sorties = (first, second, *rest)
    photos_per_line = math.floor(8000.0 / step_m) + 1
    assert sum(s.photo_count for s in sorties) == 2 * photos_per_line


def test_a_mission_that_fits_stays_one_sortie_with_its_waypoints() -> None:
    mission = lawnmower(lines=4, length_m=300.0)

    (sortie,) = split_mission(mission, usable_s=1800.0, crs=UTM)

    assert sortie.waypoints[1:-1] == mission.waypoints[1:-1]
    assert sortie.photo_count == 4 * (math.floor(300.0 / mission.spec.trigger_distance_m) + 1)


def test_splitting_a_planned_survey_keeps_its_photo_legs() -> None:
    mission = planned_survey(1200.0, 900.0)

    sorties = split_mission(mission, usable_s=900.0, crs=UTM)

    assert len(sorties) > 1
    assert all(s.estimated_time_s <= 900.0 for s in sorties)
    flown = sum(leg.length for s in sorties for leg in photo_legs(s))
    assert flown == pytest.approx(MultiLineString(photo_legs(mission)).length, abs=0.01)


def test_a_launch_point_beyond_reach_is_refused() -> None:
    far_home = dataclasses.replace(waypoint(-9000.0, 0.0), altitude_m=0.0)
    mission = dataclasses.replace(lawnmower(lines=2, length_m=300.0), home=far_home)

    with pytest.raises(PlanError, match="launch closer"):
        split_mission(mission, usable_s=600.0, crs=UTM)


def planned_survey(width_m: float, height_m: float) -> Mission:
    """A survey planned over a ``width_m`` x ``height_m`` field: lines with turnarounds."""
    ring = [
        TO_LONLAT.transform(ORIGIN_M[0] + x, ORIGIN_M[1] + y)
        for x, y in box(0, 0, width_m, height_m).exterior.coords
    ]
    home = dataclasses.replace(waypoint(-50.0, -50.0), altitude_m=0.0)
    return plan_survey(shapely.Polygon(ring), spec(), home, name="plan", crs=UTM)


def test_a_planned_survey_that_fits_is_one_sortie_with_the_planner_estimate() -> None:
    mission = planned_survey(400.0, 300.0)

    (sortie,) = split_mission(mission, usable_s=1800.0, crs=UTM)

    assert len(sortie.waypoints) == len(mission.waypoints)
    assert not sortie.waypoints[0].photos  # the run-in before the first line is kept
    assert sortie.estimated_time_s == pytest.approx(mission.estimated_time_s, rel=1e-9)
    assert sortie.distance_m == pytest.approx(mission.distance_m, rel=1e-9)
    assert sortie.photo_count == mission.photo_count


def test_sorties_keep_the_turnarounds_of_their_lines() -> None:
    mission = planned_survey(1200.0, 900.0)
    assert mission.spec.turnaround_m > 0.0

    sorties = split_mission(mission, usable_s=900.0, crs=UTM)

    assert len(sorties) > 1
    for sortie in sorties:
        first, second, third = (np.array(xy_m(w)) for w in sortie.waypoints[:3])
        assert not sortie.waypoints[0].photos and sortie.waypoints[1].photos
        run_in, line = second - first, third - second
        assert np.linalg.norm(run_in) == pytest.approx(mission.spec.turnaround_m, abs=0.01)
        cross_m2 = run_in[0] * line[1] - run_in[1] * line[0]  # collinear: zero
        assert cross_m2 == pytest.approx(0.0, abs=1e-3 * np.linalg.norm(line))
        assert sortie.estimated_time_s == pytest.approx(mission_estimate(sortie, UTM).time_s)
    assert sum(s.photo_count for s in sorties) == mission.photo_count


def test_the_return_leg_counts_in_a_sortie_time() -> None:
    near = lawnmower(lines=2, length_m=300.0)
    x, y = xy_m(near.home)
    farther = dataclasses.replace(
        near, home=dataclasses.replace(waypoint(x, y - 1000.0), altitude_m=0.0)
    )

    (near_sortie,) = split_mission(near, usable_s=1800.0, crs=UTM)
    (far_sortie,) = split_mission(farther, usable_s=1800.0, crs=UTM)

    first, last = Point(xy_m(near.waypoints[0])), Point(xy_m(near.waypoints[-1]))
    extra_m = sum(Point(x, y - 1000.0).distance(p) - Point(x, y).distance(p) for p in (first, last))
    extra_s = far_sortie.estimated_time_s - near_sortie.estimated_time_s
    assert far_sortie.distance_m - near_sortie.distance_m == pytest.approx(extra_m, rel=1e-6)
    # The legs take longer by their length; the turns onto and off them change slightly.
    assert extra_s == pytest.approx(extra_m / near.spec.speed_m_s, abs=2.0)


def test_two_lines_in_a_row_share_no_turnaround_when_cut_between_them() -> None:
    # One straight track: photos on 0-2000 m and on 4000-6000 m, none on the gap between.
    stops = [(0.0, 0.0, True), (0.0, 2000.0, False), (0.0, 4000.0, True), (0.0, 6000.0, False)]
    home = dataclasses.replace(waypoint(-200.0, 3000.0), altitude_m=0.0)  # beside the gap
    mission = Mission("track", spec(), home, tuple(waypoint(*s) for s in stops), 0.0, 0.0, 0)

    (whole,) = split_mission(mission, usable_s=2400.0, crs=UTM)
    first, second = split_mission(mission, usable_s=1000.0, crs=UTM)

    assert len(whole.waypoints) == 4
    assert [xy_m(w)[1] for w in first.waypoints] == pytest.approx([0.0, 2000.0], abs=1e-3)
    assert [xy_m(w)[1] for w in second.waypoints] == pytest.approx([4000.0, 6000.0], abs=1e-3)
    assert first.photo_count + second.photo_count == whole.photo_count
