"""The vehicle link tries again, with doubling waits, when the link fails on the way: a
vehicle that answers late, an upload whose link drops. Real MAVLink to the simulator."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pytest
from pymavlink import mavutil
from vehicle_scene import quiet_sim, two_line_mission

from core.errors import VehicleError
from flights.items import FRAME_MISSION, MissionItem, mission_items
from flights.vehicle import LinkError, connect_vehicle, upload_items
from sim.vehicle import SimVehicle, free_udp_port

mavlink = mavutil.mavlink
RETRY_LOG = "flights.vehicle"


def test_connect_tries_again_until_a_late_vehicle_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = quiet_sim()
    powered_on = threading.Timer(2.5, sim.start)  # after the first attempt gave up
    start = time.monotonic()
    powered_on.start()
    try:
        with caplog.at_level(logging.WARNING, logger=RETRY_LOG):
            with connect_vehicle(sim.address, timeout_s=2.0, retries=3, backoff_s=0.5) as link:
                assert link.vehicle.gps_0.fix_type == 3
    finally:
        powered_on.join()
        sim.stop()
    assert 2.5 < time.monotonic() - start < 6.0
    [retry] = caplog.records  # DroneKit's timeout or our watchdog's, whichever came first
    assert retry.getMessage().endswith(f"; connecting to {sim.address} again in 0.5 s "
                                       "(retry 1 of 3)")  # fmt: skip


def test_connect_gives_up_naming_the_address_and_the_attempts() -> None:
    address = f"udpin:127.0.0.1:{free_udp_port()}"
    start = time.monotonic()
    # "no ready vehicle at ..." or DroneKit's "Timeout in initializing connection"
    with pytest.raises(LinkError, match=rf"{address}.*\(gave up after 3 attempts over 2 s\)"):
        connect_vehicle(address, timeout_s=0.5, retries=2, backoff_s=0.1)
    # three attempts of 0.5 s, waits of 0.1 then 0.2 s
    assert 1.8 <= time.monotonic() - start < 3.5


class _FlakyRadioSim(SimVehicle):
    """Loses its radio during the first upload (after ``drop_link_after_items``) for
    ``silent_s``, then hears and speaks again."""

    silent_s = 3.0  # longer than an attempt's timeout

    def go_silent(self) -> None:
        super().go_silent()
        self.drop_link_after_items = None  # the next upload goes through
        assert self._radio is not None
        threading.Timer(self.silent_s, self._radio.muted.clear).start()


def test_an_upload_whose_link_dropped_is_made_again_and_verified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = mission_items(two_line_mission())
    home = two_line_mission().home
    with (
        _FlakyRadioSim(home_lonlat=(home.lon_deg, home.lat_deg), ground_elevation_m=12.0,
                       speedup=100.0, drop_link_after_items=3) as sim,
        connect_vehicle(sim.address, timeout_s=10.0) as link,
        caplog.at_level(logging.WARNING, logger=RETRY_LOG),
    ):  # fmt: skip
        upload_items(link, items, timeout_s=2.0, retries=2, backoff_s=0.5)  # verifies
        assert len(sim.mission) == len(items)
    [retry] = caplog.records
    assert "asked for item 2 of" in retry.getMessage()
    assert "again in 0.5 s (retry 1 of 2)" in retry.getMessage()


def test_a_mission_the_vehicle_refuses_is_not_uploaded_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = mission_items(two_line_mission())
    speed = MissionItem(
        0, mavlink.MAV_CMD_DO_CHANGE_SPEED, FRAME_MISSION, p1=1.0, p2=6.0, p3=None
    )  # fmt: skip  (ArduPilot refuses a NaN param3)
    items = [replace(i, seq=k) for k, i in enumerate([*items[:2], speed, *items[2:]])]
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        start = time.monotonic()
        with pytest.raises(VehicleError, match="MAV_MISSION_INVALID_PARAM3") as refused:
            upload_items(link, items, timeout_s=5.0, retries=3, backoff_s=5.0)
        assert time.monotonic() - start < 2.0
    assert not isinstance(refused.value, LinkError)
    assert not [r for r in caplog.records if r.name == RETRY_LOG]
