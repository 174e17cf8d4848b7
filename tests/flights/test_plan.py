"""Survey planning: grids that cover the AOI (holes and notches too), and refusals."""

from __future__ import annotations

import dataclasses
import math
from itertools import pairwise

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from core.errors import InputError, PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import load_aoi, reproject
from flights.camera import get_camera, preview
from flights.detours import HOLE_CLEARANCE_M
from flights.flight_time import mission_estimate
from flights.plan import MAX_ALTITUDE_M, plan_survey

UTM = "EPSG:32630"
BERKANE_LONLAT = (-2.30, 34.93)
HOME = Waypoint(lat_deg=34.9295, lon_deg=-2.3005, altitude_m=0.0)


def berkane_origin_m() -> Point:
    return reproject(Point(*BERKANE_LONLAT), "EPSG:4326", UTM)


def aoi_lonlat(area_m: Polygon) -> Polygon:
    """A polygon given in metres from a point near Berkane, as a lon/lat AOI."""
    origin = berkane_origin_m()
    return reproject(affinity.translate(area_m, origin.x, origin.y), UTM, "EPSG:4326")


def in_utm(area_m: Polygon) -> Polygon:
    origin = berkane_origin_m()
    return affinity.translate(area_m, origin.x, origin.y)


def survey_spec(**overrides: object) -> SurveySpec:
    fields = {"gsd_cm": 10.0, "speed_m_s": 8.0} | overrides
    return SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), **fields)  # type: ignore[arg-type]


def path_m(mission: Mission) -> list[Point]:
    line = LineString([(w.lon_deg, w.lat_deg) for w in mission.waypoints])
    return [Point(xy) for xy in reproject(line, "EPSG:4326", UTM).coords]


def flown_legs(mission: Mission) -> list[LineString]:
    """Every leg in metres, camera on or off, from home and back to home."""
    home = reproject(Point(mission.home.lon_deg, mission.home.lat_deg), "EPSG:4326", UTM)
    return [LineString([a, b]) for a, b in pairwise([home, *path_m(mission), home])]


def photo_legs(mission: Mission) -> list[LineString]:
    """The legs on which the camera fires, in metres."""
    points = path_m(mission)
    return [
        LineString([a, b])
        for (a, b), w in zip(pairwise(points), mission.waypoints, strict=False)
        if w.photos
    ]


def photo_footprints(mission: Mission) -> list[Polygon]:
    """Nadir footprints of photos taken at each photo leg's start, then every trigger distance."""
    spec = mission.spec
    across_m, along_m = spec.camera.footprint_m(spec.altitude_m)
    footprints = []
    for leg in photo_legs(mission):  # every photo leg is a run of its own here
        (ax, ay), (bx, by) = leg.coords
        heading_deg = math.degrees(math.atan2(bx - ax, by - ay))
        frame = affinity.rotate(
            box(-across_m / 2, -along_m / 2, across_m / 2, along_m / 2), -heading_deg, (0, 0)
        )
        for offset_m in np.arange(0.0, leg.length + 1e-9, spec.trigger_distance_m):
            centre = leg.interpolate(offset_m)
            footprints.append(affinity.translate(frame, centre.x, centre.y))
    return footprints


def headings_deg(legs: list[LineString]) -> list[float]:
    return [
        math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0
        for a, b in (leg.coords for leg in legs)
    ]


def covers(mission: Mission, area_m: Polygon) -> bool:
    covered = shapely.union_all(photo_footprints(mission))
    return area_m.difference(covered).area < 1e-6 * area_m.area


RECTANGLE = box(0, 0, 300, 200)
L_SHAPE = Polygon([(0, 0), (400, 0), (400, 120), (150, 120), (150, 350), (0, 350)])
U_SHAPE = Polygon(
    [(0, 0), (400, 0), (400, 400), (300, 400), (300, 100), (100, 100), (100, 400), (0, 400)]
)
FARMHOUSE = box(180, 160, 240, 220)
FIELD_WITH_HOUSE = Polygon(box(0, 0, 420, 380).exterior.coords, [FARMHOUSE.exterior.coords])
BASIN = Point(200, 150).buffer(60)  # a round hole: an irrigation basin
BARN = box(150, 110, 260, 190)


def field_around(*holes: Polygon) -> Polygon:
    return Polygon(box(0, 0, 400, 300).exterior.coords, [h.exterior.coords for h in holes])


def home_at(x_m: float, y_m: float) -> Waypoint:
    lon, lat = aoi_lonlat(Point(x_m, y_m).buffer(1.0)).centroid.coords[0]
    return Waypoint(lat_deg=lat, lon_deg=lon, altitude_m=0.0)


# -- lines, photos and coverage ------------------------------------------------------------


@pytest.mark.parametrize("grid_angle_deg", [0.0, 30.0, 90.0])
def test_photos_on_the_photo_legs_cover_the_whole_rectangle(grid_angle_deg: float) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="rectangle")
    assert covers(mission, reproject(aoi_lonlat(RECTANGLE), "EPSG:4326", UTM))


@pytest.mark.parametrize("grid_angle_deg", [0.0, 30.0])
def test_lines_are_spaced_as_the_spec_says(grid_angle_deg: float) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    legs = photo_legs(plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="spacing"))
    across = math.radians(grid_angle_deg + 90.0)  # unit vector across the lines
    offsets = sorted(
        leg.coords[0][0] * math.sin(across) + leg.coords[0][1] * math.cos(across) for leg in legs
    )
    gaps = [b - a for a, b in pairwise(offsets)]
    assert len(gaps) >= 4
    assert all(gap == pytest.approx(spec.line_spacing_m, rel=0.01) for gap in gaps)


def test_lines_follow_the_grid_angle_and_alternate_direction() -> None:
    spec = survey_spec(grid_angle_deg=30.0)
    legs = photo_legs(plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="boustrophedon"))
    headings = headings_deg(legs)
    assert headings[0] % 180.0 == pytest.approx(30.0, abs=1.0)  # grid north ~ true north here
    for a, b in pairwise(headings):
        assert abs((a - b) % 360.0 - 180.0) < 0.1


def test_camera_is_off_on_turnarounds_and_turns() -> None:
    spec = survey_spec(turnaround_m=15.0)
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="turns")
    points = path_m(mission)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    waypoints = mission.waypoints
    assert not waypoints[-1].photos
    for k, (a, b) in enumerate(pairwise(points)):
        length_m = a.distance(b)
        if waypoints[k].photos:  # lines: the AOI's height plus half a frame at each end
            assert length_m == pytest.approx(200.0 + along_m, abs=0.5)
        elif k > 0 and waypoints[k - 1].photos:  # the run-out after a line, then the turn
            assert length_m == pytest.approx(15.0, abs=0.01)
    assert sum(w.photos for w in waypoints) == len(waypoints) // 4


def test_waypoints_fly_at_the_altitude_of_the_gsd() -> None:
    spec = survey_spec()
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="altitude")
    assert spec.altitude_m == pytest.approx(93.8, abs=0.1)
    assert {w.altitude_m for w in mission.waypoints} == {spec.altitude_m}
    assert mission.home == HOME
    assert shapely.from_wkt(mission.aoi_wkt_lonlat).equals(aoi_lonlat(RECTANGLE))


def test_photo_count_approaches_the_area_estimate_on_a_large_field() -> None:
    spec = survey_spec()
    field = box(0, 0, 2000, 2000)
    mission = plan_survey(aoi_lonlat(field), spec, HOME, name="large")
    area_estimate = field.area / (spec.line_spacing_m * spec.trigger_distance_m)
    assert area_estimate <= mission.photo_count <= 1.15 * area_estimate


def test_distance_time_and_photos_add_up() -> None:
    spec = survey_spec()
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="budget")
    points = path_m(mission)
    home_m = reproject(Point(HOME.lon_deg, HOME.lat_deg), "EPSG:4326", UTM)
    horizontal_m = LineString([home_m, *points, home_m]).length
    assert mission.distance_m == pytest.approx(horizontal_m + 2 * spec.altitude_m, rel=1e-6)
    assert mission.photo_count == len(photo_footprints(mission))
    cruise_s = horizontal_m / spec.speed_m_s
    climb_and_descent_s = spec.altitude_m / 2.5 + spec.altitude_m / 1.5
    # Every line ends in two quarter turns: one stop-and-go (speed / 2.5 m/s²) per line.
    lines = sum(w.photos for w in mission.waypoints)
    turns_s = (lines - 1) * spec.speed_m_s / 2.5
    assert mission.estimated_time_s > cruise_s + climb_and_descent_s + turns_s
    assert (
        mission.estimated_time_s
        < cruise_s + climb_and_descent_s + turns_s + 4 * spec.speed_m_s / 2.5
    )


# -- where the survey starts ---------------------------------------------------------------


def test_survey_starts_at_the_corner_nearest_home() -> None:
    spec = survey_spec()
    aoi = aoi_lonlat(RECTANGLE)
    for corner in shapely.get_coordinates(aoi)[:4]:
        home = Waypoint(lat_deg=corner[1], lon_deg=corner[0], altitude_m=0.0)
        first = plan_survey(aoi, spec, home, name="corner").waypoints[0]
        start_m = reproject(Point(first.lon_deg, first.lat_deg), "EPSG:4326", UTM)
        home_m = reproject(Point(*corner), "EPSG:4326", UTM)
        assert start_m.distance(home_m) < spec.line_spacing_m + 100.0


@pytest.mark.parametrize(
    ("grid_angle_deg", "entry_corner", "world_corner", "first_heading_deg"),
    [
        (0.0, "sw", (0, 0), 0.0),
        (0.0, "ne", (300, 200), 180.0),
        (0.0, "se", (300, 0), 0.0),
        (90.0, "sw", (0, 200), 90.0),  # lines head east: the grid's south-west is the north-west
        (90.0, "nw", (300, 200), 270.0),
    ],
)
def test_entry_corner_picks_the_corner_of_the_grid(
    grid_angle_deg: float,
    entry_corner: str,
    world_corner: tuple[float, float],
    first_heading_deg: float,
) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg, entry_corner=entry_corner)
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="entry")
    start = path_m(mission)[0]
    corner = in_utm(Point(world_corner))
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    assert (
        start.distance(corner)
        < math.hypot(spec.line_spacing_m, along_m / 2 + spec.turnaround_m) + 2
    )
    turn_deg = (headings_deg(photo_legs(mission))[0] - first_heading_deg + 180.0) % 360.0 - 180.0
    assert turn_deg == pytest.approx(0.0, abs=1.0)


def test_unknown_entry_corner_is_refused() -> None:
    with pytest.raises(
        PlanError, match=r"entry_corner must be one of nearest, sw, se, nw, ne.*'south'"
    ):
        plan_survey(aoi_lonlat(RECTANGLE), survey_spec(entry_corner="south"), HOME, name="bad")


# -- concave shapes and holes ---------------------------------------------------------------


def test_concave_aoi_is_covered_and_the_path_stays_near_it() -> None:
    spec = survey_spec()
    mission = plan_survey(aoi_lonlat(L_SHAPE), spec, HOME, name="L")
    aoi_m = in_utm(L_SHAPE)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    # Lines reach half a spacing sideways (their swath), then half a frame and the turnaround.
    reach_m = math.hypot(spec.line_spacing_m / 2, along_m / 2 + spec.turnaround_m) + 0.5
    for a, b in pairwise(path_m(mission)):
        assert aoi_m.buffer(reach_m).contains(LineString([a, b]))
    assert covers(mission, aoi_m)


def test_concave_aoi_wastes_no_line_over_the_notch() -> None:
    spec = survey_spec(grid_angle_deg=90.0)  # east-west lines across the L's notch
    mission = plan_survey(aoi_lonlat(L_SHAPE), spec, HOME, name="L")
    notch = in_utm(box(150, 120, 400, 350))
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    deep_in_notch = notch.buffer(-(along_m / 2 + spec.turnaround_m + spec.line_spacing_m))
    assert not any(leg.intersects(deep_in_notch) for leg in photo_legs(mission))


@pytest.mark.parametrize("grid_angle_deg", [0.0, 90.0])
def test_u_shape_is_flown_arm_by_arm_without_photos_over_the_gap(grid_angle_deg: float) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    mission = plan_survey(aoi_lonlat(U_SHAPE), spec, HOME, name="U")
    gap = in_utm(box(100, 100, 300, 400))
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    deep_in_gap = gap.buffer(-(along_m / 2 + spec.line_spacing_m))
    assert not any(leg.intersects(deep_in_gap) for leg in photo_legs(mission))
    assert covers(mission, in_utm(U_SHAPE))
    # Lines across the arms (90°) stop at the gap: each arm is a cell of its own.
    arm_legs = [leg for leg in photo_legs(mission) if min(leg.xy[1]) > gap.bounds[1] + 5.0]
    assert all(leg.length < 100.0 + along_m + 1.0 for leg in arm_legs)
    assert len(arm_legs) >= (10 if grid_angle_deg == 90.0 else 0)


@pytest.mark.parametrize("grid_angle_deg", [0.0, 35.0])
def test_no_photo_line_crosses_a_hole_and_its_surroundings_are_covered(
    grid_angle_deg: float,
) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    mission = plan_survey(aoi_lonlat(FIELD_WITH_HOUSE), spec, HOME, name="farm")
    house_m = in_utm(FARMHOUSE)
    legs = photo_legs(mission)
    assert not any(leg.intersects(house_m.buffer(-0.01)) for leg in legs)
    assert sum(leg.distance(house_m) < 0.01 for leg in legs) >= 2  # lines stop at its edge
    rng = np.random.default_rng(4)
    field_m = in_utm(FIELD_WITH_HOUSE)
    minx, miny, maxx, maxy = field_m.bounds
    samples = shapely.points(rng.uniform((minx, miny), (maxx, maxy), size=(4000, 2)))
    samples = samples[shapely.contains(field_m, samples)]
    covered = shapely.union_all(photo_footprints(mission))
    assert len(samples) > 3000
    assert shapely.contains(covered, samples).all()
    assert not mission.warnings


@pytest.mark.parametrize("crosshatch", [False, True])
@pytest.mark.parametrize("grid_angle_deg", [0.0, 30.0, 77.0])
@pytest.mark.parametrize("hole", [BASIN, BARN], ids=["round", "rectangular"])
def test_no_leg_at_all_crosses_a_hole(
    hole: Polygon, grid_angle_deg: float, crosshatch: bool
) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg, crosshatch=crosshatch, entry_corner="ne")
    mission = plan_survey(aoi_lonlat(field_around(hole)), spec, home_at(-50, -50), name="hole")
    inside = in_utm(hole).buffer(-0.01)
    assert [leg.length for leg in flown_legs(mission) if leg.intersects(inside)] == []
    axes_deg = {grid_angle_deg, (grid_angle_deg + 90.0) % 180.0}
    for heading_deg in headings_deg(photo_legs(mission)):  # the camera is off on detours
        assert min(abs((heading_deg - a + 90.0) % 180.0 - 90.0) for a in axes_deg) < 1.0


@pytest.mark.parametrize(("entry_corner", "leg"), [("ne", "out"), ("nearest", "back")])
def test_transits_from_and_back_to_home_go_around_a_hole_keeping_clear(
    entry_corner: str, leg: str
) -> None:
    spec = survey_spec(entry_corner=entry_corner)
    mission = plan_survey(aoi_lonlat(field_around(BARN)), spec, home_at(-50, -50), name="barn")
    legs, barn = flown_legs(mission), in_utm(BARN)
    flags = [w.photos for w in mission.waypoints]
    if leg == "out":  # from home to the first photo leg
        transit = legs[: flags.index(True) + 1]
    else:  # from the end of the last photo leg back to home
        transit = legs[len(flags) - flags[::-1].index(True) + 1 :]
    straight = LineString([transit[0].coords[0], transit[-1].coords[-1]])
    assert straight.intersects(barn.buffer(-10.0))  # the way a chord would have flown
    assert len(transit) >= 3
    assert min(t.distance(barn) for t in transit) > HOLE_CLEARANCE_M - 0.01


def test_detours_are_in_the_distance_time_and_photo_count() -> None:
    spec = survey_spec(grid_angle_deg=30.0, crosshatch=True)
    aoi = aoi_lonlat(field_around(BASIN))
    mission = plan_survey(aoi, spec, home_at(-50, -50), name="basin")
    horizontal_m = sum(leg.length for leg in flown_legs(mission))
    assert mission.distance_m == pytest.approx(horizontal_m + 2 * spec.altitude_m, rel=1e-6)
    assert mission.estimated_time_s == pytest.approx(mission_estimate(mission, UTM).time_s)
    assert mission.photo_count == len(photo_footprints(mission))
    # The cells and the detours round the basin cost more time than its photos save.
    solid = plan_survey(aoi_lonlat(box(0, 0, 400, 300)), spec, home_at(-50, -50), name="box")
    assert mission.photo_count < solid.photo_count
    assert mission.estimated_time_s > solid.estimated_time_s


def test_a_yard_closed_by_buildings_is_flown_through_the_narrow_gaps() -> None:
    # Four buildings round a yard, 2 m apart at the corners: less than twice the clearance.
    buildings = [
        box(100, 100, 218, 130),
        box(220, 100, 250, 218),
        box(132, 220, 250, 250),
        box(100, 132, 130, 250),
    ]
    aoi = aoi_lonlat(
        Polygon(box(0, 0, 350, 350).exterior.coords, [b.exterior.coords for b in buildings])
    )
    for grid_angle_deg in (0.0, 30.0, 77.0):
        spec = survey_spec(grid_angle_deg=grid_angle_deg)
        mission = plan_survey(aoi, spec, home_at(-50, -50), name="yard")
        inside = in_utm(shapely.union_all(buildings)).buffer(-0.01)
        assert not any(leg.intersects(inside) for leg in flown_legs(mission))
        yard = in_utm(box(130, 130, 220, 220))
        assert any(leg.intersects(yard) for leg in photo_legs(mission))


def test_low_overlap_around_a_hole_is_warned() -> None:
    spec = survey_spec(front_overlap=0.4)
    mission = plan_survey(aoi_lonlat(FIELD_WITH_HOUSE), spec, HOME, name="farm")
    assert any("gaps" in warning and "40%" in warning for warning in mission.warnings)


def test_crosshatch_flies_the_lines_again_at_90_degrees() -> None:
    single = plan_survey(aoi_lonlat(RECTANGLE), survey_spec(grid_angle_deg=20.0), HOME, name="x")
    spec = survey_spec(grid_angle_deg=20.0, crosshatch=True)
    double = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="xx")
    axes = [round(h % 180.0) for h in headings_deg(photo_legs(double))]
    assert set(axes) == {20, 110}
    assert axes.count(20) == len(photo_legs(single))
    assert axes[: axes.count(20)] == [20] * axes.count(20)  # one pass, then the other
    assert double.photo_count > 1.8 * single.photo_count
    assert double.estimated_time_s > 1.5 * single.estimated_time_s
    assert covers(double, in_utm(RECTANGLE))


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        (Point(-2.3, 34.93), "must be a Polygon, got a Point"),
        (LineString([(-2.3, 34.93), (-2.29, 34.94)]), "got a LineString"),
        (Polygon(), "empty"),
        (Polygon([(-2.3, 34.93), (-2.29, 34.94), (-2.29, 34.93), (-2.3, 34.94)]), "invalid"),
        (Polygon([(-2.3, 34.93), (-2.29, 34.93), (-2.28, 34.93)]), "invalid|zero area"),
        (MultiPolygon([box(-2.3, 34.93, -2.29, 34.94), box(-2.2, 34.9, -2.19, 34.91)]), "2 sep"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "shapely Polygon"),
    ],
)
def test_unusable_aoi_is_refused_with_a_reason(aoi: object, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_survey(aoi, survey_spec(), HOME, name="bad")  # type: ignore[arg-type]


def test_one_part_multipolygon_is_accepted() -> None:
    mission = plan_survey(MultiPolygon([aoi_lonlat(RECTANGLE)]), survey_spec(), HOME, name="m")
    assert len(mission.waypoints) >= 2


def test_altitude_above_the_cap_is_refused() -> None:
    spec = survey_spec(gsd_cm=14.0)  # 131 m with the preview camera
    assert spec.altitude_m > MAX_ALTITUDE_M
    with pytest.raises(PlanError, match=r"over the 120 m cap; ask for at most 12\.\d\d cm/px"):
        plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="high")


def test_a_gsd_that_needs_300_m_is_refused() -> None:
    camera = get_camera("dji_mavic_3e")
    spec = SurveySpec(camera=camera, gsd_cm=camera.gsd_cm(300.0))
    with pytest.raises(PlanError, match=r"needs 300 m above ground, over the 120 m cap"):
        plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="high")


def test_too_fast_for_the_camera_names_it_and_a_feasible_speed() -> None:
    camera = get_camera("dji_phantom_4_rtk")  # 2 s between photos
    spec = SurveySpec(camera=camera, gsd_cm=1.5, front_overlap=0.8, speed_m_s=10.0)
    with pytest.raises(PlanError, match=r"DJI Phantom 4 RTK needs 2.0 s .* fly at ([\d.]+) m/s"):
        plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="fast")
    feasible_m_s = spec.trigger_distance_m / camera.min_trigger_interval_s
    slower = dataclasses.replace(spec, speed_m_s=feasible_m_s)
    assert plan_survey(aoi_lonlat(RECTANGLE), slower, HOME, name="ok").photo_count > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"front_overlap": 0.95}, "front_overlap must be within"),
        ({"side_overlap": -0.1}, "side_overlap must be within"),
        ({"gsd_cm": 0.0}, "gsd_cm must be > 0"),
        ({"speed_m_s": 0.0}, "speed_m_s must be > 0"),
        ({"turnaround_m": -1.0}, "turnaround_m must be >= 0"),
        ({"grid_angle_deg": math.nan}, "grid_angle_deg must be a number"),
    ],
)
def test_impossible_spec_is_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_survey(aoi_lonlat(RECTANGLE), survey_spec(**overrides), HOME, name="bad")


# -- AOI files ------------------------------------------------------------------------------


def test_load_aoi_reads_a_google_earth_kml(shared_data) -> None:
    aoi = load_aoi(shared_data / "missions/qgc/PolygonGood.kml")
    assert isinstance(aoi, Polygon) and not aoi.has_z
    assert aoi.bounds == pytest.approx((-122.10615, 47.65965, -122.10446, 47.66034), abs=1e-5)


def test_load_aoi_reads_berkane_province_and_drops_its_sliver(shared_data) -> None:
    aoi = load_aoi(shared_data / "vector/morocco/berkane_province.geojson")
    assert isinstance(aoi, Polygon)
    assert aoi.contains(Point(*BERKANE_LONLAT))
    area_km2 = reproject(aoi, "EPSG:4326", UTM).area / 1e6
    assert 1500 < area_km2 < 2500  # Berkane province: about 1,985 km²


def test_load_aoi_reprojects_to_lonlat(tmp_path) -> None:
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"name": ["field"]}, geometry=[in_utm(RECTANGLE)], crs=UTM).to_file(
        path, layer="aoi"
    )
    aoi = load_aoi(path)
    assert aoi.equals_exact(aoi_lonlat(RECTANGLE), tolerance=1e-9)


def test_load_aoi_refuses_two_separate_fields(tmp_path) -> None:
    path = tmp_path / "two.geojson"
    fields = [box(-2.30, 34.93, -2.29, 34.94), box(-2.20, 34.90, -2.19, 34.91)]
    gpd.GeoDataFrame(geometry=fields, crs="EPSG:4326").to_file(path)
    with pytest.raises(InputError, match=r"two\.geojson: AOI has 2 separate parts"):
        load_aoi(path)


def test_load_aoi_names_an_unreadable_file(tmp_path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.geojson: cannot read AOI"):
        load_aoi(path)
