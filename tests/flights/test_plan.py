"""Survey planning: lawnmower grids that cover the AOI, and refusals of unsafe surveys."""

from __future__ import annotations

import math
from itertools import pairwise

import geopandas as gpd
import pytest
import shapely
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from core.errors import InputError, PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import load_aoi, reproject
from flights.camera import get_camera, preview
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


def survey_spec(**overrides: float) -> SurveySpec:
    fields = {"gsd_cm": 10.0, "speed_m_s": 8.0} | overrides
    return SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), **fields)


def path_m(mission: Mission) -> list[Point]:
    line = LineString([(w.lon_deg, w.lat_deg) for w in mission.waypoints])
    return [Point(xy) for xy in reproject(line, "EPSG:4326", UTM).coords]


def photo_footprints(points: list[Point], spec: SurveySpec) -> list[Polygon]:
    """Nadir footprints of a camera fired every trigger distance along ``points``."""
    across_m, along_m = spec.camera.footprint_m(spec.altitude_m)
    footprints, start_m = [], 0.0
    for a, b in pairwise(points):
        length_m = a.distance(b)
        heading_deg = math.degrees(math.atan2(b.x - a.x, b.y - a.y))
        offset_m = start_m
        while offset_m <= length_m:
            centre = LineString([a, b]).interpolate(offset_m)
            frame = box(-across_m / 2, -along_m / 2, across_m / 2, along_m / 2)
            frame = affinity.rotate(frame, -heading_deg, origin=(0, 0))
            footprints.append(affinity.translate(frame, centre.x, centre.y))
            offset_m += spec.trigger_distance_m
        start_m = offset_m - length_m
    return footprints


def line_directions(points: list[Point]) -> list[tuple[float, float]]:
    """Unit vectors of the flight lines (waypoints 0-1, 2-3, ...)."""
    vectors = [(b.x - a.x, b.y - a.y) for a, b in zip(points[::2], points[1::2], strict=True)]
    return [(dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)) for dx, dy in vectors]


RECTANGLE = box(0, 0, 300, 200)
L_SHAPE = Polygon([(0, 0), (400, 0), (400, 120), (150, 120), (150, 350), (0, 350)])


@pytest.mark.parametrize("grid_angle_deg", [0.0, 30.0, 90.0])
def test_photos_along_the_lines_cover_the_whole_rectangle(grid_angle_deg: float) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="rectangle")
    covered = shapely.union_all(photo_footprints(path_m(mission), spec))
    aoi_m = reproject(aoi_lonlat(RECTANGLE), "EPSG:4326", UTM)
    assert covered.contains(aoi_m)


@pytest.mark.parametrize("grid_angle_deg", [0.0, 30.0])
def test_lines_are_spaced_as_the_spec_says(grid_angle_deg: float) -> None:
    spec = survey_spec(grid_angle_deg=grid_angle_deg)
    points = path_m(plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="spacing"))
    starts = points[::2]
    across = math.radians(grid_angle_deg + 90.0)  # unit vector across the lines
    offsets = sorted(p.x * math.sin(across) + p.y * math.cos(across) for p in starts)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert len(gaps) >= 4
    assert all(gap == pytest.approx(spec.line_spacing_m, rel=0.01) for gap in gaps)


def test_lines_follow_the_grid_angle_and_alternate_direction() -> None:
    spec = survey_spec(grid_angle_deg=30.0)
    points = path_m(plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="boustrophedon"))
    directions = line_directions(points)
    heading_deg = math.degrees(math.atan2(*directions[0])) % 180.0
    assert heading_deg == pytest.approx(30.0, abs=1.0)  # grid north is within 1° of true here
    for (ax, ay), (bx, by) in pairwise(directions):
        assert ax * bx + ay * by == pytest.approx(-1.0, abs=1e-3)


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


def test_distance_and_time_add_up() -> None:
    spec = survey_spec()
    mission = plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="budget")
    points = path_m(mission)
    lines_m = sum(a.distance(b) for a, b in pairwise(points))
    assert mission.distance_m > lines_m + 2 * spec.altitude_m
    assert mission.photo_count == math.floor(lines_m / spec.trigger_distance_m) + 1
    assert mission.estimated_time_s > mission.distance_m / spec.speed_m_s


def test_survey_starts_at_the_corner_nearest_home() -> None:
    spec = survey_spec()
    aoi = aoi_lonlat(RECTANGLE)
    for corner in shapely.get_coordinates(aoi)[:4]:
        home = Waypoint(lat_deg=corner[1], lon_deg=corner[0], altitude_m=0.0)
        first = plan_survey(aoi, spec, home, name="corner").waypoints[0]
        start_m = reproject(Point(first.lon_deg, first.lat_deg), "EPSG:4326", UTM)
        home_m = reproject(Point(*corner), "EPSG:4326", UTM)
        assert start_m.distance(home_m) < spec.line_spacing_m + 100.0


def test_concave_aoi_is_covered_and_the_path_stays_near_it() -> None:
    spec = survey_spec()
    mission = plan_survey(aoi_lonlat(L_SHAPE), spec, HOME, name="L")
    points = path_m(mission)
    aoi_m = reproject(aoi_lonlat(L_SHAPE), "EPSG:4326", UTM)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    # Lines reach half a spacing sideways (their swath), then half a frame and the turnaround.
    reach_m = math.hypot(spec.line_spacing_m / 2, along_m / 2 + spec.turnaround_m) + 0.5
    for a, b in pairwise(points):
        assert aoi_m.buffer(reach_m).contains(LineString([a, b]))
    assert shapely.union_all(photo_footprints(points, spec)).contains(aoi_m)


def test_concave_aoi_wastes_no_line_over_the_notch() -> None:
    spec = survey_spec(grid_angle_deg=90.0)  # east-west lines across the L's notch
    points = path_m(plan_survey(aoi_lonlat(L_SHAPE), spec, HOME, name="L"))
    origin = berkane_origin_m()
    notch = affinity.translate(box(150, 120, 400, 350), origin.x, origin.y)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    deep_in_notch = notch.buffer(-(along_m / 2 + spec.turnaround_m + spec.line_spacing_m))
    assert not any(LineString([a, b]).intersects(deep_in_notch) for a, b in pairwise(points))


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


def test_too_fast_for_the_camera_names_it_and_a_feasible_speed() -> None:
    camera = get_camera("dji_phantom_4_rtk")  # 2 s between photos
    spec = SurveySpec(camera=camera, gsd_cm=1.5, front_overlap=0.8, speed_m_s=10.0)
    with pytest.raises(PlanError, match=r"DJI Phantom 4 RTK needs 2.0 s .* fly at ([\d.]+) m/s"):
        plan_survey(aoi_lonlat(RECTANGLE), spec, HOME, name="fast")
    feasible_m_s = spec.trigger_distance_m / camera.min_trigger_interval_s
    slower = SurveySpec(camera=camera, gsd_cm=1.5, front_overlap=0.8, speed_m_s=feasible_m_s)
    assert plan_survey(aoi_lonlat(RECTANGLE), slower, HOME, name="ok").photo_count > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"front_overlap": 0.95}, "front_overlap must be within"),
        ({"side_overlap": -0.1}, "side_overlap must be within"),
        ({"gsd_cm": 0.0}, "gsd_cm must be > 0"),
        ({"speed_m_s": 0.0}, "speed_m_s must be > 0"),
    ],
)
def test_impossible_spec_is_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_survey(aoi_lonlat(RECTANGLE), survey_spec(**overrides), HOME, name="bad")


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
    origin = berkane_origin_m()
    path = tmp_path / "aoi.gpkg"
    area_m = affinity.translate(RECTANGLE, origin.x, origin.y)
    gpd.GeoDataFrame({"name": ["field"]}, geometry=[area_m], crs=UTM).to_file(path, layer="aoi")
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
