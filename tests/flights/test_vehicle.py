"""DroneKit against the simulated ArduCopter, over real MAVLink on UDP loopback."""

from __future__ import annotations

import csv
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pymavlink import mavutil
from pyproj import Transformer
from vehicle_scene import (
    CAMERA,
    GROUND_ELEVATION_M,
    LEFT_M,
    TOP_M,
    quiet_sim,
    two_line_mission,
)

from core.errors import VehicleError
from core.types import Mission
from flights.export import read_mission_file
from flights.items import FRAME_MISSION, MissionItem, mission_items
from flights.vehicle import (
    VehicleLink,
    commands_int,
    connect_vehicle,
    download_mission,
    fly_mission,
    upload_items,
    upload_mission,
)
from sim.vehicle import MissionItem as SimItem
from sim.vehicle import SimVehicle, free_udp_port

mavlink = mavutil.mavlink
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

RES_M = 0.1
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


def test_commands_carry_lat_lon_as_integer_1e7_degrees_and_unset_values_as_nan() -> None:
    items = with_unset_yaws(mission_items(two_line_mission()))
    commands = commands_int(items)
    assert [c.seq for c in commands] == list(range(len(items)))
    waypoint = next(i for i in items[2:] if i.command == mavlink.MAV_CMD_NAV_WAYPOINT)
    sent = commands[waypoint.seq]
    assert (sent.x, sent.y) == (round(waypoint.lat * 1e7), round(waypoint.lon * 1e7))
    assert math.isnan(sent.param4)  # yaw unset: the autopilot chooses
    assert commands[0].current == 1 and commands[1].current == 0


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


def with_unset_yaws(items: list[MissionItem]) -> list[MissionItem]:
    """``items`` with the yaw of every take-off and waypoint unset (NaN), as QGC sends it."""
    nav = (mavlink.MAV_CMD_NAV_TAKEOFF, mavlink.MAV_CMD_NAV_WAYPOINT)
    return [replace(i, p4=None) if i.seq and i.command in nav else i for i in items]


def terrain_following_mission() -> Mission:
    """The two-line mission with per-waypoint heights to the centimetre, as terrain
    following sets them (70.13 m is kept by ArduPilot as 7012 cm)."""
    mission = two_line_mission()
    heights_m = (70.13, 70.07, 58.31, 35.29)
    waypoints = tuple(
        replace(w, altitude_m=h) for w, h in zip(mission.waypoints, heights_m, strict=True)
    )
    return replace(mission, waypoints=waypoints)


def test_a_terrain_following_mission_with_unset_yaws_verifies_on_ardupilot_storage() -> None:
    items = with_unset_yaws(mission_items(terrain_following_mission()))
    items[2] = replace(items[2], p1=2.5)  # a hold ArduPilot keeps in whole seconds
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        upload_items(link, items, timeout_s=10.0)  # raises on any difference
        held = download_mission(link, timeout_s=10.0)
    sent = commands_int(items)
    # The vehicle did not echo the mission: yaw came back 0, some heights 1 cm lower.
    assert all(theirs.param4 == 0.0 for ours, theirs in zip(sent, held, strict=True)
               if math.isnan(ours.param4))  # fmt: skip
    assert any(math.isnan(c.param4) for c in sent)
    assert (sent[2].param1, held[2].param1) == (2.5, 2.0)
    assert min(theirs.z - ours.z for ours, theirs in zip(sent[1:], held[1:], strict=True)) < -0.005


class _FlashSim(SimVehicle):
    """A vehicle whose storage changes what it keeps: ``change`` maps a stored item."""

    def __init__(self, change: Callable[[SimItem], SimItem]) -> None:
        home = two_line_mission().home
        super().__init__(home_lonlat=(home.lon_deg, home.lat_deg),
                         ground_elevation_m=GROUND_ELEVATION_M)  # fmt: skip
        self._change = change

    def _stored(self, item: SimItem) -> SimItem:
        return self._change(super()._stored(item))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda i: replace(i, x=i.x + 3) if i.x else i,  # 3e-7 deg, about 3 cm
         r"mission item 1 \(MAV_CMD_NAV_TAKEOFF\) lat differs"),
        (lambda i: replace(i, param1=i.param1 * 2) if i.command == 206 else i,
         r"item \d+ \(MAV_CMD_DO_SET_CAM_TRIGG_DIST\) param1 differs: sent [\d.]+, vehicle has"),
        (lambda i: replace(i, z=i.z + 0.05) if abs(i.z - 70.07) < 0.02 else i,  # 5 cm
         r"mission item \d+ \(MAV_CMD_NAV_WAYPOINT\) alt differs: sent 70.07"),
    ],
    ids=["latitude", "trigger distance", "altitude"],
)  # fmt: skip
def test_upload_names_the_first_item_and_field_the_vehicle_stored_differently(
    change: Callable[[SimItem], SimItem], expected: str
) -> None:
    items = mission_items(terrain_following_mission())
    with _FlashSim(change) as sim, connect_vehicle(sim.address, timeout_s=10.0) as link:
        with pytest.raises(VehicleError, match=expected):
            upload_items(link, items, timeout_s=10.0)


def test_an_item_the_vehicle_refuses_is_named_with_its_reason() -> None:
    items = mission_items(two_line_mission())
    speed = MissionItem(0, mavlink.MAV_CMD_DO_CHANGE_SPEED, FRAME_MISSION, p1=1.0, p2=6.0,
                        p3=None)  # fmt: skip
    items = [replace(i, seq=k) for k, i in enumerate([*items[:2], speed, *items[2:]])]
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        with pytest.raises(VehicleError, match=r"rejected mission item 2 "
                           r"\(MAV_CMD_DO_CHANGE_SPEED\): MAV_MISSION_INVALID_PARAM3"):  # fmt: skip
            upload_items(link, items, timeout_s=10.0)
        assert sim.mission == []


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


def _link_threads() -> set[threading.Thread]:
    """Threads of DroneKit links (its MAVLink reader and writer) and of our connect watchdog."""
    return {
        t for t in threading.enumerate()
        if "mavlink_thread" in t.name or t.name.startswith("connect ")
    }  # fmt: skip


def test_connect_to_a_silent_port_fails_within_the_timeout_and_cleans_up() -> None:
    before = _link_threads()
    port = free_udp_port()
    address = f"udpin:127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(VehicleError, match=address):
        connect_vehicle(address, timeout_s=3.0)
    assert time.monotonic() - start < 3.0 + 2.0
    deadline = time.monotonic() + 2.0
    while _link_threads() - before:
        assert time.monotonic() < deadline, f"still running: {_link_threads() - before}"
        time.sleep(0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the link's socket is closed


def test_upload_fails_within_its_timeout_when_the_link_drops_mid_upload() -> None:
    items = mission_items(two_line_mission())
    with quiet_sim(drop_link_after_items=3) as sim, connect_vehicle(sim.address, 10.0) as link:
        start = time.monotonic()
        with pytest.raises(VehicleError, match=r"asked for item 2 of \d+, then stopped"):
            upload_items(link, items, timeout_s=3.0)
        assert time.monotonic() - start < 3.0 + 1.0
        assert sim.silent and sim.mission == []  # the vehicle kept no half mission


@pytest.mark.parametrize(
    "name", ["ardupilot/copter_AVC2013_mission.txt", "ardupilot/copter_CANGPS_mission.txt",
             "mavsdk/qgroundcontrol_sample.plan"]
)  # fmt: skip
def test_items_of_real_mission_files_upload_and_read_back_identical(
    shared_data: Path, name: str
) -> None:
    items = read_mission_file(shared_data / "missions" / name).items
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        upload_items(link, items, timeout_s=10.0)  # compares every item after home
        assert [(i.command, i.x, i.y) for i in sim.mission[1:]] == [
            (c.command, c.x, c.y) for c in commands_int(items)[1:]
        ]


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
