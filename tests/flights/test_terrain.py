"""Terrain following over a seeded synthetic hillside: the height above ground holds ±10 %."""

from __future__ import annotations

import dataclasses
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box

from core.errors import InputError, PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import reproject
from flights.camera import get_camera, preview
from flights.flight_time import mission_estimate
from flights.plan import plan_survey
from flights.terrain import FLAT_TERRAIN_WARNING, Dem, flat_terrain, follow_terrain

UTM = "EPSG:32630"
LONLAT = "EPSG:4326"
ORIGIN_LONLAT = (-2.30, 34.93)
TO_UTM = Transformer.from_crs(LONLAT, UTM, always_xy=True)
TO_LONLAT = Transformer.from_crs(UTM, LONLAT, always_xy=True)
ORIGIN_M = TO_UTM.transform(*ORIGIN_LONLAT)
DEM_BOUNDS_M = (-400.0, -400.0, 1000.0, 900.0)
"""DEM extent in metres from the origin (left, bottom, right, top)."""


def ground_m(x_m: np.ndarray, y_m: np.ndarray, seed: int = 7) -> np.ndarray:
    """A hillside rising 25 % to the east, an east-west ridge 30 m high, seeded bumps.

    ``x_m``, ``y_m`` are metres east / north of the origin. Steepest slopes ≈ 30 %.
    """
    rng = np.random.default_rng(seed)
    height = 150.0 + 0.25 * x_m + 30.0 * np.exp(-(((y_m - 300.0) / 100.0) ** 2))
    for _ in range(6):
        wavelength_m, phase = rng.uniform(60.0, 200.0), rng.uniform(0.0, 2 * np.pi)
        direction = rng.uniform(0.0, np.pi)
        along = x_m * np.cos(direction) + y_m * np.sin(direction)
        height = height + 0.4 * np.sin(2 * np.pi * along / wavelength_m + phase)
    return height


def write_utm_dem(path: Path, pixel_m: float = 2.0) -> Path:
    left, bottom, right, top = DEM_BOUNDS_M
    cols, rows = round((right - left) / pixel_m), round((top - bottom) / pixel_m)
    x = left + (np.arange(cols) + 0.5) * pixel_m
    y = top - (np.arange(rows) + 0.5) * pixel_m
    heights = ground_m(*np.meshgrid(x, y)).astype("float32")
    transform = from_origin(ORIGIN_M[0] + left, ORIGIN_M[1] + top, pixel_m, pixel_m)
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32")
    with rasterio.open(path, "w", crs=UTM, transform=transform, nodata=-9999.0, **profile) as dst:
        dst.write(heights, 1)
    return path


def write_lonlat_dem(path: Path, pixel_deg: float = 2.0e-5) -> Path:
    """The same terrain on a lon/lat grid (EPSG:4326), heights computed at each pixel centre."""
    left, bottom, right, top = DEM_BOUNDS_M
    (west, east), (south, north) = TO_LONLAT.transform(
        [ORIGIN_M[0] + left, ORIGIN_M[0] + right], [ORIGIN_M[1] + bottom, ORIGIN_M[1] + top]
    )
    cols, rows = int((east - west) / pixel_deg), int((north - south) / pixel_deg)
    lon = west + (np.arange(cols) + 0.5) * pixel_deg
    lat = north - (np.arange(rows) + 0.5) * pixel_deg
    x, y = TO_UTM.transform(*np.meshgrid(lon, lat))
    heights = ground_m(x - ORIGIN_M[0], y - ORIGIN_M[1]).astype("float32")
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32")
    transform = from_origin(west, north, pixel_deg, pixel_deg)
    with rasterio.open(path, "w", crs=LONLAT, transform=transform, **profile) as dst:
        dst.write(heights, 1)
    return path


def hillside_mission(gsd_cm: float = 10.0) -> Mission:
    """A 500 m × 600 m survey across the hillside and over the ridge, home to the south-west."""
    area_m = box(ORIGIN_M[0], ORIGIN_M[1], ORIGIN_M[0] + 500.0, ORIGIN_M[1] + 600.0)
    home_lon, home_lat = TO_LONLAT.transform(ORIGIN_M[0] - 100.0, ORIGIN_M[1] - 100.0)
    spec = SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), gsd_cm=gsd_cm)
    home = Waypoint(lat_deg=home_lat, lon_deg=home_lon, altitude_m=0.0)
    return plan_survey(reproject(area_m, UTM, LONLAT), spec, home, name="hillside")


def flown_agl_m(mission: Mission, step_m: float = 0.5) -> np.ndarray:
    """True height above ground along the straight legs the autopilot flies, every ``step_m``.

    From take-off height above home through every waypoint; altitude linear along a leg.
    """
    home = mission.home
    stops = [(home.lon_deg, home.lat_deg, mission.altitude_m)]
    stops += [(w.lon_deg, w.lat_deg, w.altitude_m) for w in mission.waypoints]
    x, y = TO_UTM.transform([s[0] for s in stops], [s[1] for s in stops])
    xyz = np.column_stack([x, y, [s[2] for s in stops]])
    samples = []
    for a, b in pairwise(xyz):
        count = max(1, int(np.ceil(np.hypot(*(b[:2] - a[:2])) / step_m)))
        samples.append(a + np.linspace(0.0, 1.0, count + 1)[:, None] * (b - a))
    points = np.concatenate(samples)
    ground = ground_m(points[:, 0] - ORIGIN_M[0], points[:, 1] - ORIGIN_M[1])
    home_ground = ground_m(np.array([x[0] - ORIGIN_M[0]]), np.array([y[0] - ORIGIN_M[1]]))
    return points[:, 2] - (ground - home_ground)


def test_dem_samples_a_plane_exactly_between_pixel_centres(tmp_path) -> None:
    path = tmp_path / "plane.tif"
    transform = from_origin(ORIGIN_M[0], ORIGIN_M[1] + 100.0, 5.0, 5.0)
    cols, rows = np.meshgrid(np.arange(20) + 0.5, np.arange(20) + 0.5)
    plane = 100.0 + 0.3 * cols * 5.0 - 0.2 * rows * 5.0  # metres east / south of the corner
    profile = dict(driver="GTiff", width=20, height=20, count=1, dtype="float64")
    with rasterio.open(path, "w", crs=UTM, transform=transform, **profile) as dst:
        dst.write(plane, 1)
    rng = np.random.default_rng(1)
    east_m, south_m = rng.uniform(2.5, 97.5, 50), rng.uniform(2.5, 97.5, 50)
    lon, lat = TO_LONLAT.transform(ORIGIN_M[0] + east_m, ORIGIN_M[1] + 100.0 - south_m)
    heights = Dem(path).heights_m(np.asarray(lon), np.asarray(lat))
    np.testing.assert_allclose(heights, 100.0 + 0.3 * east_m - 0.2 * south_m, atol=1e-6)


def test_followed_mission_holds_agl_within_ten_percent_over_slopes_and_ridge(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    agl = flown_agl_m(followed)
    assert agl.min() >= 0.9 * mission.altitude_m
    assert agl.max() <= 1.1 * mission.altitude_m
    gsd_cm = mission.spec.camera.gsd_cm(agl)
    assert np.all(np.abs(gsd_cm / mission.spec.gsd_cm - 1.0) <= 0.1)
    assert len(followed.waypoints) > len(mission.waypoints)


def test_flat_planning_over_the_same_hillside_breaks_the_tolerance() -> None:
    mission = hillside_mission()
    agl = flown_agl_m(flat_terrain(mission))
    assert agl.min() < 0.9 * mission.altitude_m
    assert agl.min() < 0.0  # it flies into the hill


def test_waypoint_altitudes_are_agl_plus_ground_above_home(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    x, y = TO_UTM.transform(
        [mission.home.lon_deg, *(w.lon_deg for w in followed.waypoints)],
        [mission.home.lat_deg, *(w.lat_deg for w in followed.waypoints)],
    )
    ground = ground_m(np.asarray(x) - ORIGIN_M[0], np.asarray(y) - ORIGIN_M[1])
    expected = mission.altitude_m + ground[1:] - ground[0]
    altitudes = np.array([w.altitude_m for w in followed.waypoints])
    np.testing.assert_allclose(altitudes, expected, atol=0.05)  # bilinear vs analytic


def test_original_waypoints_are_kept_in_order(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    positions = [(w.lat_deg, w.lon_deg) for w in followed.waypoints]
    indices = [positions.index((w.lat_deg, w.lon_deg)) for w in mission.waypoints]
    assert indices == sorted(indices)


def test_inserted_waypoints_inherit_the_photo_flag_of_their_leg(tmp_path) -> None:
    mission = hillside_mission()
    half = len(mission.waypoints) // 2
    first_half_only = tuple(
        dataclasses.replace(w, photos=k < half) for k, w in enumerate(mission.waypoints)
    )
    mission = dataclasses.replace(mission, waypoints=first_half_only)
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    positions = [(w.lat_deg, w.lon_deg) for w in followed.waypoints]
    starts = [positions.index((w.lat_deg, w.lon_deg)) for w in mission.waypoints]
    flags_seen = set()
    for original, (start, end) in zip(mission.waypoints, pairwise(starts), strict=False):
        inserted = followed.waypoints[start + 1 : end]
        assert all(w.photos == original.photos for w in inserted)
        flags_seen |= {w.photos for w in inserted}
    assert flags_seen == {True, False}
    transit_and_return = followed.waypoints[: starts[0]] + followed.waypoints[starts[-1] + 1 :]
    assert transit_and_return and not any(w.photos for w in transit_and_return)


def test_return_ends_above_home_at_the_planned_height(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    last = followed.waypoints[-1]
    assert (last.lat_deg, last.lon_deg) == pytest.approx(
        (mission.home.lat_deg, mission.home.lon_deg), abs=1e-9
    )
    assert last.altitude_m == pytest.approx(mission.altitude_m)


def test_distance_and_time_include_the_climbs(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_utm_dem(tmp_path / "dem.tif")))
    climb_m = sum(abs(b.altitude_m - a.altitude_m) for a, b in pairwise(followed.waypoints))
    assert followed.distance_m > mission.distance_m
    assert followed.distance_m < mission.distance_m + climb_m
    assert followed.estimated_time_s > mission.estimated_time_s
    assert followed.photo_count == mission.photo_count
    estimate = mission_estimate(followed, UTM)
    assert followed.estimated_time_s == pytest.approx(estimate.time_s, rel=1e-9)
    assert followed.distance_m == pytest.approx(estimate.distance_m, rel=1e-9)


def test_following_flat_ground_changes_neither_time_nor_distance(tmp_path) -> None:
    path = write_utm_dem(tmp_path / "dem.tif")
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full((dst.height, dst.width), 150.0, "float32"), 1)
    mission = hillside_mission()

    followed = follow_terrain(mission, Dem(path))

    assert followed.estimated_time_s == pytest.approx(mission.estimated_time_s, rel=1e-9)
    assert followed.distance_m == pytest.approx(mission.distance_m, rel=1e-9)


def test_a_lon_lat_dem_gives_the_same_flight(tmp_path) -> None:
    mission = hillside_mission()
    followed = follow_terrain(mission, Dem(write_lonlat_dem(tmp_path / "dem4326.tif")))
    agl = flown_agl_m(followed)
    assert 0.9 * mission.altitude_m <= agl.min() and agl.max() <= 1.1 * mission.altitude_m


def test_flight_outside_the_dem_is_refused_naming_file_and_place(tmp_path) -> None:
    mission = hillside_mission()
    far_home = dataclasses.replace(mission.home, lon_deg=mission.home.lon_deg - 0.02)
    dem = Dem(write_utm_dem(tmp_path / "dem.tif"))
    with pytest.raises(PlanError, match=r"dem\.tif.*outside the DEM") as error:
        follow_terrain(dataclasses.replace(mission, home=far_home), dem)
    assert f"{far_home.lon_deg:.6f}" in str(error.value)


def test_nodata_under_the_flight_is_refused(tmp_path) -> None:
    path = write_utm_dem(tmp_path / "dem.tif")
    with rasterio.open(path, "r+") as dst:
        heights = dst.read(1)
        heights[300:320, 300:320] = -9999.0  # a hole near (200 m E, 250 m N)
        dst.write(heights, 1)
    with pytest.raises(PlanError, match=r"dem\.tif: the DEM has no height \(nodata\)"):
        follow_terrain(hillside_mission(), Dem(path))


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_unreadable_or_crs_less_dem_is_an_input_error(tmp_path) -> None:
    (tmp_path / "bad.tif").write_text("not a GeoTIFF")
    with pytest.raises(InputError, match="bad.tif: cannot read the DEM"):
        Dem(tmp_path / "bad.tif")
    profile = dict(driver="GTiff", width=4, height=4, count=1, dtype="float32")
    with rasterio.open(tmp_path / "nocrs.tif", "w", **profile) as dst:
        dst.write(np.zeros((4, 4), "float32"), 1)
    with pytest.raises(InputError, match="nocrs.tif: the DEM has no CRS"):
        Dem(tmp_path / "nocrs.tif")


def test_without_a_dem_the_mission_warns_of_flat_terrain_once() -> None:
    mission = flat_terrain(flat_terrain(hillside_mission()))
    assert mission.warnings == (FLAT_TERRAIN_WARNING,)
    assert "no DEM" in FLAT_TERRAIN_WARNING and "flat terrain" in FLAT_TERRAIN_WARNING


def test_reading_by_small_tiles_gives_the_same_heights(tmp_path, monkeypatch) -> None:
    dem = Dem(write_utm_dem(tmp_path / "dem.tif"))
    rng = np.random.default_rng(3)
    east_m, north_m = rng.uniform(-390.0, 990.0, 500), rng.uniform(-390.0, 890.0, 500)
    lon, lat = TO_LONLAT.transform(ORIGIN_M[0] + east_m, ORIGIN_M[1] + north_m)
    whole = dem.heights_m(np.asarray(lon), np.asarray(lat))
    monkeypatch.setattr("flights.terrain.TILE_PX", 64)
    np.testing.assert_array_equal(dem.heights_m(np.asarray(lon), np.asarray(lat)), whole)
    np.testing.assert_allclose(whole, ground_m(east_m, north_m), atol=0.05)
