"""DroneKit against the simulated ArduCopter, over real MAVLink on UDP loopback."""

from __future__ import annotations

import csv
import math
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pymavlink import mavutil
from pyproj import Transformer

from core.errors import VehicleError
from core.types import Mission, SurveySpec, Waypoint
from flights.camera import get_camera, preview
from flights.vehicle import (
    VehicleLink,
    connect_vehicle,
    download_mission,
    fly_mission,
    mission_commands,
    upload_mission,
)
from sim.vehicle import SimVehicle, free_udp_port

mavlink = mavutil.mavlink
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

LEFT_M, TOP_M, RES_M = 560_000.0, 3_862_000.0, 0.1
GROUND_ELEVATION_M = 12.0
CAMERA = preview(get_camera("dji_mavic_3e"), 4)
TO_LONLAT = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True)


def write_ortho(path: Path, size_px: int = 3000, seed: int = 0) -> Path:
    """A seeded 300 m square RGB GeoTIFF (EPSG:32630)."""
    pixels = np.random.default_rng(seed).integers(40, 200, (3, size_px, size_px), dtype=np.uint8)
    profile = dict(
        driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8",
        crs="EPSG:32630", transform=Affine(RES_M, 0.0, LEFT_M, 0.0, -RES_M, TOP_M), tiled=True,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as ortho:
        ortho.write(pixels)
    return path


def two_line_mission(line_m: float = 100.0, spacing_m: float = 40.0) -> Mission:
    """Two parallel east-west survey lines at 10 cm GSD, home 200 m south-west of them."""
    spec = SurveySpec(CAMERA, gsd_cm=10.0, speed_m_s=8.0)
    east, north = LEFT_M + 100.0, TOP_M - 100.0
    corners = [(east, north), (east + line_m, north), (east + line_m, north - spacing_m),
               (east, north - spacing_m)]  # fmt: skip
    waypoints = []
    for xy in corners:
        lon, lat = TO_LONLAT.transform(*xy)
        waypoints.append(Waypoint(lat, lon, spec.altitude_m))
    home_lon, home_lat = TO_LONLAT.transform(LEFT_M + 20.0, TOP_M - 280.0)
    return Mission(
        name="two lines",
        spec=spec,
        home=Waypoint(home_lat, home_lon, 0.0),
        waypoints=tuple(waypoints),
        distance_m=2 * line_m + spacing_m,
        estimated_time_s=60.0,
        photo_count=10,
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimVehicle]:
    mission = two_line_mission()
    with SimVehicle(
        home_lonlat=(mission.home.lon_deg, mission.home.lat_deg),
        ground_elevation_m=GROUND_ELEVATION_M,
        ortho_path=write_ortho(tmp_path / "ortho.tif"),
        camera=CAMERA,
        out_dir=tmp_path / "frames",
        captured_at=datetime.fromisoformat("2026-03-01T10:00:00+01:00"),
        speedup=100.0,
        seed=7,
    ) as vehicle:
        yield vehicle


@pytest.fixture
def link(sim: SimVehicle) -> Iterator[VehicleLink]:
    with connect_vehicle(sim.address, timeout_s=10.0) as connected:
        yield connected


def test_connect_waits_for_parameters_gps_and_mode(link: VehicleLink) -> None:
    vehicle = link.vehicle
    assert vehicle.parameters["WPNAV_SPEED"] == 1000
    assert vehicle.parameters["SYSID_THISMAV"] == 1
    assert vehicle.gps_0.fix_type == 3
    assert vehicle.mode.name == "STABILIZE"
    assert not vehicle.armed


def test_mission_items_switch_the_camera_on_after_the_first_waypoint() -> None:
    commands = [c.command for c in mission_commands(two_line_mission())]
    assert commands == [
        mavlink.MAV_CMD_NAV_TAKEOFF,
        mavlink.MAV_CMD_NAV_WAYPOINT,
        mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        *[mavlink.MAV_CMD_NAV_WAYPOINT] * 3,
        mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH,
    ]


def test_uploaded_mission_reads_back_with_exact_integer_lat_lon(
    link: VehicleLink, sim: SimVehicle
) -> None:
    mission = two_line_mission()
    upload_mission(link, mission, timeout_s=10.0)
    items = download_mission(link, timeout_s=10.0)
    waypoints = [i for i in items[1:] if i.command == mavlink.MAV_CMD_NAV_WAYPOINT]
    assert [(i.x, i.y) for i in waypoints] == [
        (round(w.lat_deg * 1e7), round(w.lon_deg * 1e7)) for w in mission.waypoints
    ]
    assert all(i.z == pytest.approx(mission.altitude_m, abs=0.01) for i in waypoints)
    assert len(sim.mission) == len(items)


class _CorruptingSim(SimVehicle):
    """A vehicle whose flash storage shifts every latitude by 3e-7 deg (about 3 cm)."""

    def _store_item(self, msg: object, x: int, y: int) -> None:
        super()._store_item(msg, x + 3 if x else x, y)


def test_upload_names_the_first_item_the_vehicle_stored_differently() -> None:
    mission = two_line_mission()
    with (
        _CorruptingSim(home_lonlat=(mission.home.lon_deg, mission.home.lat_deg),
                       ground_elevation_m=GROUND_ELEVATION_M) as sim,
        connect_vehicle(sim.address, timeout_s=10.0) as link,
    ):  # fmt: skip
        with pytest.raises(VehicleError, match=r"mission item 1 \(MAV_CMD_NAV_TAKEOFF\) lat"):
            upload_mission(link, mission, timeout_s=10.0)


def test_flying_two_lines_writes_georeferenced_frames(
    link: VehicleLink, sim: SimVehicle, tmp_path: Path
) -> None:
    mission = two_line_mission()
    upload_mission(link, mission, timeout_s=10.0)
    progress: list[int] = []
    log = fly_mission(link, timeout_s=30.0, on_progress=lambda s: progress.append(s.mission_item))
    sim.wait_for_frames(timeout_s=10.0)

    # 240 m of survey path, a photo every ~24.7 m from the first waypoint on.
    expected = math.floor(mission.distance_m / mission.trigger_distance_m) + 1
    assert len(sim.frames) == expected
    assert progress == sorted(progress) and progress[-1] > 3
    assert not log.samples[-1].armed
    assert max(s.altitude_m for s in log.samples) == pytest.approx(mission.altitude_m, abs=1.0)
    telemetry = list(csv.DictReader(log.write_csv(tmp_path / "flight.csv").open()))
    assert len(telemetry) == len(log.samples) and "battery_pct" in telemetry[0]

    poses = list(csv.DictReader(sim.poses_path.open()))
    for pose, frame in zip(poses, sim.frames, strict=True):
        with rasterio.open(frame) as photo:
            tags, xmp = photo.tags(), photo.tags(ns="xml:XMP")["xml:XMP"]
        lat, lon = (_degrees(tags[f"EXIF_GPS{axis}"], tags[f"EXIF_GPS{axis}Ref"])
                    for axis in ("Latitude", "Longitude"))  # fmt: skip
        easting, northing = TO_UTM.transform(lon, lat)
        true_xy = float(pose["true_easting_m"]), float(pose["true_northing_m"])
        assert math.dist((easting, northing), true_xy) < 5.0
        yaw = float(re.search(r'GimbalYawDegree="([-+\d.]+)"', xmp).group(1))
        assert abs((yaw - float(pose["true_yaw_deg"]) + 180) % 360 - 180) < 6.0


def _degrees(dms: str, ref: str) -> float:
    d, m, s = (float(v) for v in re.findall(r"\(([\d.]+)\)", dms))
    return (d + m / 60 + s / 3600) * (-1 if ref in ("S", "W") else 1)


def test_connect_to_a_silent_port_fails_within_the_timeout() -> None:
    address = f"udpin:127.0.0.1:{free_udp_port()}"
    start = time.monotonic()
    with pytest.raises(VehicleError, match=address):
        connect_vehicle(address, timeout_s=2.0)
    assert time.monotonic() - start < 4.0


def test_connect_to_a_vehicle_that_never_sends_parameters_fails_within_the_timeout() -> None:
    port = free_udp_port()
    stop = threading.Event()

    def heartbeat_only() -> None:
        mute = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=1)
        while not stop.wait(0.2):
            mute.mav.heartbeat_send(mavlink.MAV_TYPE_QUADROTOR,
                                    mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA, 1, 0, 3)  # fmt: skip
        mute.close()

    sender = threading.Thread(target=heartbeat_only, daemon=True)
    sender.start()
    address = f"udpin:127.0.0.1:{port}"
    start = time.monotonic()
    try:
        with pytest.raises(VehicleError, match="within 2 s"):
            connect_vehicle(address, timeout_s=2.0)
        assert time.monotonic() - start < 4.0
    finally:
        stop.set()
        sender.join()
    # DroneKit's connect thread winds down instead of polling for parameters forever.
    deadline = time.monotonic() + 5.0
    while any(t.name == f"connect {address}" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the connect thread is still running"
        time.sleep(0.1)
