"""The simulator's camera backlog: a camera slower than the flight is waited for frame by frame,
a stalled one fails with the folder and the counts, a failed flight drops its backlog."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from pymavlink import mavutil

from core.errors import VehicleError
from flights.camera import get_camera, preview
from sim.vehicle import COPTER_MODES, SimVehicle, Trigger

mavlink = mavutil.mavlink
HOME_LONLAT = (-2.3431, 34.8961)
CAMERA = preview(get_camera("dji_mavic_3e"), 8)  # 660 x 494 px: quick to render
ALTITUDE_M, LINE_M, TRIGGER_M = 30.0, 45.0, 5.0  # ten photos: one at the start, one every 5 m


class SlowCameraSim(SimVehicle):
    """The simulator with a camera slower than its flight: every frame is rendered for real
    after ``delay_s``, and frame ``stuck_at`` waits until ``unstick`` is set."""

    def __init__(self, *args: Any, delay_s: float, stuck_at: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s, self.stuck_at = delay_s, stuck_at
        self.unstick = threading.Event()

    def _render(self, trigger: Trigger) -> None:
        time.sleep(self.delay_s)
        if trigger.index == self.stuck_at:
            self.unstick.wait(timeout=30.0)
        super()._render(trigger)


def write_ortho(path: Path) -> Path:
    """A small grey-noise RGB GeoTIFF under the flight line (EPSG:32630)."""
    pixels = np.random.default_rng(0).integers(40, 90, (3, 600, 300), dtype=np.uint8)
    transform = Affine(0.2, 0, 528_500.0, 0, -0.2, 3_862_100.0)
    profile = dict(driver="GTiff", width=300, height=600, count=3, dtype="uint8",
                   crs="EPSG:32630", transform=transform)  # fmt: skip
    with rasterio.open(path, "w", **profile) as ortho:
        ortho.write(pixels)
    return path


@contextmanager
def slow_camera_sim(tmp_path: Path, delay_s: float, stuck_at: int = 0) -> Iterator[SlowCameraSim]:
    with SlowCameraSim(
        home_lonlat=HOME_LONLAT,
        ground_elevation_m=12.0,
        ortho_path=write_ortho(tmp_path / "ortho.tif"),
        camera=CAMERA,
        out_dir=tmp_path / "frames",
        captured_at=datetime.fromisoformat("2026-03-01T10:00:00+01:00"),
        speedup=100.0,
        delay_s=delay_s,
        stuck_at=stuck_at,
    ) as sim:
        yield sim


def fly_the_line(sim: SimVehicle) -> None:
    """Upload take-off, camera trigger distance and one waypoint north over MAVLink, fly them
    in AUTO and return when the waypoint is reached (every photo triggered)."""
    lon_e7, lat_e7 = round(HOME_LONLAT[0] * 1e7), round(HOME_LONLAT[1] * 1e7)
    north_e7 = lat_e7 + round(LINE_M / 111_320.0 * 1e7)
    relative, mission = mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, mavlink.MAV_FRAME_MISSION
    items = [
        (relative, mavlink.MAV_CMD_NAV_WAYPOINT, 0.0, 0.0, lat_e7, lon_e7, 0.0),
        (relative, mavlink.MAV_CMD_NAV_TAKEOFF, 0.0, 0.0, lat_e7, lon_e7, ALTITUDE_M),
        (mission, mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST, TRIGGER_M, 1.0, 0, 0, 0.0),
        (relative, mavlink.MAV_CMD_NAV_WAYPOINT, 0.0, 0.0, north_e7, lon_e7, ALTITUDE_M),
    ]
    gcs = mavutil.mavlink_connection(sim.address, source_system=255)
    try:
        assert gcs.wait_heartbeat(timeout=5) is not None
        gcs.mav.mission_count_send(1, 1, len(items))
        answers = ["MISSION_REQUEST", "MISSION_ACK"]
        while (msg := gcs.recv_match(type=answers, blocking=True, timeout=5)) is not None:
            if msg.get_type() == "MISSION_ACK":
                break
            frame, command, p1, p3, x, y, z = items[msg.seq]
            gcs.mav.mission_item_int_send(1, 1, msg.seq, frame, command, 0, 1, p1, 0, p3, 0,
                                          x, y, z)  # fmt: skip
        assert msg is not None and msg.type == mavlink.MAV_MISSION_ACCEPTED
        gcs.mav.command_long_send(1, 1, mavlink.MAV_CMD_DO_SET_MODE, 0,
                                  mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                                  COPTER_MODES["GUIDED"], 0, 0, 0, 0, 0)  # fmt: skip
        gcs.mav.command_long_send(1, 1, mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 0, 1, 0, 0, 0, 0,
                                  0, 0)  # fmt: skip
        gcs.mav.command_long_send(1, 1, mavlink.MAV_CMD_MISSION_START, 0, 0, 0, 0, 0, 0, 0, 0)
        reached = gcs.recv_match(type="MISSION_ITEM_REACHED", blocking=True, timeout=10,
                                 condition="MISSION_ITEM_REACHED.seq==3")  # fmt: skip
        assert reached is not None, "the simulator did not fly to the waypoint"
    finally:
        gcs.close()


def frames_on_disk(sim: SimVehicle) -> int:
    assert sim.poses_path is not None
    return len(list(sim.poses_path.parent.glob("*.JPG")))


def test_a_camera_slower_than_the_flight_is_waited_for_frame_by_frame(tmp_path: Path) -> None:
    with slow_camera_sim(tmp_path, delay_s=0.4) as sim:
        fly_the_line(sim)
        start_s = time.monotonic()
        sim.wait_for_frames(timeout_s=2.0)  # the backlog takes longer than that, frame by frame
        waited_s = time.monotonic() - start_s
        assert len(sim.triggers) >= 8 and frames_on_disk(sim) == len(sim.triggers)
        assert waited_s > 2.0
        assert not sim.errors


def test_a_stalled_camera_fails_naming_its_folder_and_counts(tmp_path: Path) -> None:
    with slow_camera_sim(tmp_path, delay_s=0.0, stuck_at=3) as sim:
        fly_the_line(sim)
        deadline_s = time.monotonic() + 10.0
        while frames_on_disk(sim) < 2 and time.monotonic() < deadline_s:
            time.sleep(0.05)  # the two frames before the stuck one
        try:
            with pytest.raises(VehicleError) as failed:
                sim.wait_for_frames(timeout_s=0.5)
        finally:
            sim.unstick.set()
        folder = tmp_path / "frames"
        assert str(failed.value) == (
            f"simulator: camera stalled, no frame for 0.5 s: 2 of {len(sim.triggers)} frames"
            f" rendered into {folder}"
        )


def test_a_failed_flight_drops_the_frames_not_yet_rendered(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="link lost"):
        with slow_camera_sim(tmp_path, delay_s=0.4) as sim:
            fly_the_line(sim)
            raise RuntimeError("link lost")
    assert len(sim.triggers) >= 8 and frames_on_disk(sim) < len(sim.triggers) // 2
