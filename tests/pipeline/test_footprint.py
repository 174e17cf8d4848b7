"""Footprints follow DJI's pose convention, with UTM grid convergence accounted for."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from photo_factory import (
    CRS,
    FOCAL_MM,
    HEIGHT_PX,
    PX_PER_MM,
    WIDTH_PX,
    Pose,
    meridian_convergence_deg,
)

from core.types import Camera, ImageRecord
from pipeline.footprint import footprint, frame_to_ground, true_north_bearing_deg

CAMERA = Camera(
    name="test camera",
    make="Test",
    model="T1",
    sensor_width_mm=WIDTH_PX / PX_PER_MM,
    sensor_height_mm=HEIGHT_PX / PX_PER_MM,
    image_width_px=WIDTH_PX,
    image_height_px=HEIGHT_PX,
    focal_length_mm=FOCAL_MM,
)


def _record(pose: Pose) -> ImageRecord:
    lon, lat = pose.lonlat
    return ImageRecord(
        path=Path("x.jpg"),
        sha256="",
        captured_at=datetime(2026, 3, 14, tzinfo=UTC),
        lon_deg=lon,
        lat_deg=lat,
        altitude_m=pose.altitude_m,
        camera=CAMERA,
        yaw_deg=pose.yaw_deg,
        pitch_deg=-90.0,
        width_px=WIDTH_PX,
        height_px=HEIGHT_PX,
    )


def test_grid_convergence_at_berkane() -> None:
    pose = Pose(565000.0, 3865000.0)
    bearing = true_north_bearing_deg(*pose.lonlat, CRS)
    assert bearing == pytest.approx(-meridian_convergence_deg(pose), abs=1e-6)
    assert -0.6 < bearing < -0.2


def test_centre_maps_to_the_gps_position() -> None:
    pose = Pose(565000.0, 3865000.0, altitude_m=60.0, yaw_deg=37.0)
    x, y = frame_to_ground(_record(pose), CRS) @ (WIDTH_PX / 2, HEIGHT_PX / 2)
    assert (x, y) == (pytest.approx(pose.east_m, abs=1e-3), pytest.approx(pose.north_m, abs=1e-3))


@pytest.mark.parametrize("yaw_deg", [0.0, 90.0, 180.0, 30.0, -45.0])
def test_image_top_points_to_the_yaw_and_right_to_yaw_plus_90(yaw_deg: float) -> None:
    pose = Pose(565000.0, 3865000.0, altitude_m=60.0, yaw_deg=yaw_deg)  # GSD 0.1 m
    transform = frame_to_ground(_record(pose), CRS)
    grid_yaw = math.radians(yaw_deg - meridian_convergence_deg(pose))
    top_x, top_y = transform @ (WIDTH_PX / 2, 0)
    right_x, right_y = transform @ (WIDTH_PX, HEIGHT_PX / 2)
    half_height_m, half_width_m = HEIGHT_PX / 2 * 0.1, WIDTH_PX / 2 * 0.1
    assert top_x - pose.east_m == pytest.approx(half_height_m * math.sin(grid_yaw), abs=1e-3)
    assert top_y - pose.north_m == pytest.approx(half_height_m * math.cos(grid_yaw), abs=1e-3)
    assert right_x - pose.east_m == pytest.approx(half_width_m * math.cos(grid_yaw), abs=1e-3)
    assert right_y - pose.north_m == pytest.approx(-half_width_m * math.sin(grid_yaw), abs=1e-3)


def test_footprint_size_scales_with_height() -> None:
    low = footprint(_record(Pose(565000.0, 3865000.0, altitude_m=60.0, yaw_deg=20.0)), CRS)
    high = footprint(_record(Pose(565000.0, 3865000.0, altitude_m=120.0, yaw_deg=20.0)), CRS)
    assert low.area == pytest.approx(64.0 * 48.0, rel=1e-6)
    assert high.area == pytest.approx(4 * low.area, rel=1e-6)
    assert high.contains(low)
