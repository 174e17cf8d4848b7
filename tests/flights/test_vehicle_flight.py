"""Flying through DroneKit against the simulated copter: abort, low battery, lost link,
and :func:`fly_plan` from a real mission file to a GeoPackage flight log."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pyogrio
import pytest
from pyproj import Geod
from vehicle_scene import quiet_sim, two_line_mission

from core.errors import PlanError, VehicleError
from flights.export import read_mission_file
from flights.flight_log import TelemetrySample
from flights.items import mission_items
from flights.vehicle import connect_vehicle, fly_mission, fly_plan, upload_mission
from sim.vehicle import Health, SimVehicle

WGS84 = Geod(ellps="WGS84")
AVC_HOME_LONLAT = (-105.230575, 40.072842)  # item 0 of ArduPilot's AVC 2013 mission


def _metres_from_home(sample: TelemetrySample, home_lonlat: tuple[float, float]) -> float:
    return WGS84.inv(*home_lonlat, sample.lon_deg, sample.lat_deg)[2]


@pytest.mark.parametrize("trigger", ["event", "callback", "battery"])
def test_an_abort_mid_mission_returns_to_launch_and_lands_at_home(trigger: str) -> None:
    mission = two_line_mission()
    abort_event = threading.Event()
    health = Health(battery_pct=40.0, battery_endurance_s=300.0) if trigger == "battery" else None

    def on_progress(sample: TelemetrySample) -> None:
        if trigger == "event" and sample.mission_item >= 3:
            abort_event.set()  # as a Ctrl-C handler or a UI button would

    def abort_when(sample: TelemetrySample) -> str | None:
        return (
            "left the survey area" if trigger == "callback" and sample.mission_item >= 3 else None
        )

    with quiet_sim(health=health) as sim, connect_vehicle(sim.address, 10.0) as link:
        upload_mission(link, mission, timeout_s=10.0)
        log = fly_mission(link, timeout_s=30.0, sample_period_s=0.05, on_progress=on_progress,
                          abort_event=abort_event, abort_when=abort_when)  # fmt: skip

    reason = {"event": "requested by the operator", "callback": "left the survey area",
              "battery": "battery at 2"}[trigger]  # fmt: skip
    assert log.outcome.startswith(f"aborted: {reason}")
    abort = next(s for s in log.samples if s.event.startswith("abort"))
    assert abort.mode == "RTL" and abort.armed
    assert abort.mission_item < len(mission_items(mission)) - 2  # before the survey's end
    landed = log.samples[-1]
    assert landed.event == "landed" and not landed.armed and landed.mode == "RTL"
    home = (mission.home.lon_deg, mission.home.lat_deg)
    assert _metres_from_home(landed, home) < 1.0


def test_an_abort_during_take_off_never_starts_the_mission() -> None:
    abort_event = threading.Event()
    abort_event.set()
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        upload_mission(link, two_line_mission(), timeout_s=10.0)
        log = fly_mission(link, timeout_s=30.0, abort_event=abort_event)
        assert sim.triggers == []
    assert log.outcome == "aborted: requested by the operator"
    assert "mission started" not in [s.event for s in log.samples]
    assert [s.mode for s in log.samples if s.event.startswith("abort")] == ["RTL"]
    assert log.samples[-1].mode == "RTL" and not log.samples[-1].armed


def test_a_link_lost_mid_flight_is_reported_within_the_limit() -> None:
    mission = two_line_mission()
    events: list[str] = []
    silent_at: list[float] = []

    def on_progress(sample: TelemetrySample) -> None:
        events.append(sample.event)
        if sample.mission_item >= 2 and not silent_at:
            sim.go_silent()
            silent_at.append(time.monotonic())

    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        upload_mission(link, mission, timeout_s=10.0)
        with pytest.raises(VehicleError, match=r"link lost: no heartbeat for 1\.\d s"):
            fly_mission(link, timeout_s=30.0, sample_period_s=0.05, on_progress=on_progress,
                        link_lost_s=1.0)  # fmt: skip
        detected_after_s = time.monotonic() - silent_at[0]
    assert detected_after_s < 1.0 + 1.5  # 1 s of silence, plus sampling and scheduling
    assert events[-1].startswith("link lost")


def test_fly_plan_flies_a_real_ardupilot_mission_file_and_logs_it(
    shared_data: Path, tmp_path: Path
) -> None:
    document = read_mission_file(shared_data / "missions/ardupilot/copter_AVC2013_mission.txt")
    seen: list[TelemetrySample] = []
    with SimVehicle(home_lonlat=AVC_HOME_LONLAT, ground_elevation_m=1600.0, speedup=100.0,
                    crs="EPSG:32613") as sim:  # fmt: skip
        log = fly_plan(sim.address, document.items, log_path=tmp_path / "flight.gpkg",
                       timeout_s=10.0, flight_timeout_s=60.0, on_progress=seen.append,
                       crs="EPSG:32613")  # fmt: skip
        uploaded = len(sim.mission)

    assert uploaded == len(document.items) and log.outcome == "completed"
    assert seen == list(log.samples)
    assert max(s.altitude_m for s in log.samples) == pytest.approx(20.0, abs=0.5)
    assert _metres_from_home(log.samples[-1], AVC_HOME_LONLAT) < 1.0  # NAV_LAND at home

    track = pyogrio.read_dataframe(tmp_path / "flight.gpkg", layer="track")
    assert len(track) == len(log.samples) and track.crs == "EPSG:32613"
    assert list(track["event"].iloc[[0, -1]]) == ["armed: taking off", "landed"]
    assert {"captured_at", "altitude_m", "groundspeed_m_s", "battery_pct", "mode",
            "mission_item"} <= set(track.columns)  # fmt: skip
    line = pyogrio.read_dataframe(tmp_path / "flight.gpkg", layer="track_line")
    assert line["outcome"][0] == "completed" and line.geometry[0].length > 300.0
    with sqlite3.connect(tmp_path / "flight.gpkg") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300  # GeoPackage 1.3


def test_fly_plan_writes_the_log_of_a_flight_that_lost_its_link(tmp_path: Path) -> None:
    items = mission_items(two_line_mission())

    def drop_at_item_3(sample: TelemetrySample) -> None:
        if sample.mission_item >= 3:
            sim.go_silent()

    with quiet_sim() as sim:
        with pytest.raises(VehicleError, match="link lost"):
            fly_plan(sim.address, items, log_path=tmp_path / "flight.gpkg", timeout_s=10.0,
                     on_progress=drop_at_item_3, link_lost_s=1.0)  # fmt: skip
    line = pyogrio.read_dataframe(tmp_path / "flight.gpkg", layer="track_line")
    assert (
        line["outcome"][0].startswith("failed: VehicleError") and "link lost" in line["events"][0]
    )


def test_fly_plan_refuses_a_vehicle_that_fails_its_checks_before_uploading(
    tmp_path: Path,
) -> None:
    items = mission_items(two_line_mission())
    with quiet_sim(health=Health(battery_pct=30.0)) as sim:
        with pytest.raises(VehicleError, match="battery at 30 %"):
            fly_plan(sim.address, items, log_path=tmp_path / "flight.gpkg", timeout_s=2.0)
        assert sim.mission == []
    assert not (tmp_path / "flight.gpkg").exists()


def test_fly_plan_refuses_a_plan_without_take_off_before_connecting(tmp_path: Path) -> None:
    items = [i for i in mission_items(two_line_mission()) if i.command != 22]  # no TAKEOFF
    start = time.monotonic()
    with pytest.raises(PlanError, match="no take-off item"):
        fly_plan("udpin:127.0.0.1:9", items, log_path=tmp_path / "flight.gpkg", timeout_s=30.0)
    assert time.monotonic() - start < 0.5
