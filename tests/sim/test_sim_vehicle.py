"""The simulated ArduCopter, driven over MAVLink by a plain pymavlink ground station."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest
from pymavlink import mavutil

from sim.vehicle import (
    COPTER_MODES,
    DEFAULT_PARAMETERS,
    GnssError,
    Health,
    ItemRejected,
    MissionItem,
    SimVehicle,
    stored_item,
)

mavlink = mavutil.mavlink
HOME_LONLAT = (-2.3431, 34.8961)  # Triffa plain, near Berkane


@pytest.fixture
def sim() -> Iterator[SimVehicle]:
    with SimVehicle(home_lonlat=HOME_LONLAT, ground_elevation_m=12.0, speedup=50.0) as vehicle:
        yield vehicle


@pytest.fixture
def gcs(sim: SimVehicle) -> Iterator[mavutil.mavfile]:
    """A ground station listening where the simulator sends, with the vehicle's heartbeat."""
    station = mavutil.mavlink_connection(sim.address, source_system=255)
    assert station.wait_heartbeat(timeout=5) is not None
    yield station
    station.close()


def command(gcs: mavutil.mavfile, cmd: int, *params: float) -> int:
    """Send COMMAND_LONG and return the COMMAND_ACK result."""
    padded = [*params, *[0.0] * (7 - len(params))]
    gcs.mav.command_long_send(1, 1, cmd, 0, *padded)
    ack = gcs.recv_match(type="COMMAND_ACK", blocking=True, timeout=5,
                         condition=f"COMMAND_ACK.command=={cmd}")  # fmt: skip
    assert ack is not None, f"no COMMAND_ACK for {cmd}"
    return ack.result


def test_heartbeat_is_an_arducopter_quad_in_stabilize(gcs: mavutil.mavfile) -> None:
    heartbeat = gcs.recv_match(type="HEARTBEAT", blocking=True, timeout=5)
    assert heartbeat.type == mavlink.MAV_TYPE_QUADROTOR
    assert heartbeat.autopilot == mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA
    assert heartbeat.custom_mode == COPTER_MODES["STABILIZE"]
    assert gcs.flightmode == "STABILIZE"


def test_parameter_list_is_complete_and_settable(gcs: mavutil.mavfile) -> None:
    gcs.mav.param_request_list_send(1, 1)
    values = {}
    while len(values) < len(DEFAULT_PARAMETERS):
        msg = gcs.recv_match(type="PARAM_VALUE", blocking=True, timeout=5)
        assert msg is not None and msg.param_count == len(DEFAULT_PARAMETERS)
        values[msg.param_id] = msg.param_value
    assert values["RTL_ALT"] == 3000 and values["BATT_CAPACITY"] == 5000

    gcs.mav.param_set_send(1, 1, b"WPNAV_SPEED", 850.0, mavlink.MAV_PARAM_TYPE_REAL32)
    echo = gcs.recv_match(type="PARAM_VALUE", blocking=True, timeout=5,
                          condition="PARAM_VALUE.param_id=='WPNAV_SPEED'")  # fmt: skip
    assert echo.param_value == 850.0


def test_arming_is_refused_in_auto_and_take_off_climbs_in_guided(gcs: mavutil.mavfile) -> None:
    set_mode = mavlink.MAV_CMD_DO_SET_MODE
    flag = mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    arm = mavlink.MAV_CMD_COMPONENT_ARM_DISARM
    assert command(gcs, set_mode, flag, COPTER_MODES["AUTO"]) == mavlink.MAV_RESULT_ACCEPTED
    assert command(gcs, arm, 1) == mavlink.MAV_RESULT_DENIED

    assert command(gcs, set_mode, flag, COPTER_MODES["GUIDED"]) == mavlink.MAV_RESULT_ACCEPTED
    assert command(gcs, arm, 1) == mavlink.MAV_RESULT_ACCEPTED
    takeoff = mavlink.MAV_CMD_NAV_TAKEOFF
    assert command(gcs, takeoff, 0, 0, 0, 0, 0, 0, 20.0) == mavlink.MAV_RESULT_ACCEPTED
    position = gcs.recv_match(type="GLOBAL_POSITION_INT", blocking=True, timeout=5,
                              condition="GLOBAL_POSITION_INT.relative_alt > 19500")  # fmt: skip
    assert position is not None
    assert position.lon == pytest.approx(HOME_LONLAT[0] * 1e7, abs=2)
    assert command(gcs, arm, 0) == mavlink.MAV_RESULT_DENIED  # no disarming in the air


def test_home_position_answers_get_home_position(gcs: mavutil.mavfile) -> None:
    assert command(gcs, mavlink.MAV_CMD_GET_HOME_POSITION) == mavlink.MAV_RESULT_ACCEPTED
    home = gcs.recv_match(type="HOME_POSITION", blocking=True, timeout=5)
    assert (home.longitude, home.latitude) == tuple(round(v * 1e7) for v in HOME_LONLAT)
    assert home.altitude == 12_000  # mm above mean sea level


def test_gnss_bias_random_walks_within_one_to_three_metres() -> None:
    error = GnssError(np.random.default_rng(5))
    magnitudes = []
    for time_s in range(0, 3600, 3):
        error.advance(float(time_s))
        magnitudes.append(float(np.hypot(*error.bias_m)))
    assert 1.0 <= min(magnitudes) and max(magnitudes) <= 3.0
    assert max(magnitudes) - min(magnitudes) > 0.1  # it does wander


def test_health_faults_are_reported_and_refuse_arming() -> None:
    health = Health(gps_fix_type=1, satellites=4, hdop=3.5, battery_pct=40.0, ekf_healthy=False)
    with SimVehicle(home_lonlat=HOME_LONLAT, ground_elevation_m=12.0, health=health) as sim:
        station = mavutil.mavlink_connection(sim.address, source_system=255)
        try:
            assert station.wait_heartbeat(timeout=5) is not None
            gps = station.recv_match(type="GPS_RAW_INT", blocking=True, timeout=5)
            assert (gps.fix_type, gps.satellites_visible, gps.eph) == (1, 4, 350)
            status = station.recv_match(type="SYS_STATUS", blocking=True, timeout=5)
            assert status.battery_remaining == 40
            ekf = station.recv_match(type="EKF_STATUS_REPORT", blocking=True, timeout=5)
            assert not ekf.flags & mavlink.EKF_PRED_POS_HORIZ_ABS
            set_mode = mavlink.MAV_CMD_DO_SET_MODE
            command(station, set_mode, mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                    COPTER_MODES["GUIDED"])  # fmt: skip
            assert command(station, mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 1) == (
                mavlink.MAV_RESULT_DENIED
            )
            # sent just before the COMMAND_ACK; the connection keeps the last of each type
            assert station.messages["STATUSTEXT"].text.startswith("PreArm: GPS")
        finally:
            station.close()


def test_without_home_the_vehicle_sends_no_home_position() -> None:
    health = Health(home_known=False)
    with SimVehicle(home_lonlat=HOME_LONLAT, ground_elevation_m=12.0, health=health) as sim:
        station = mavutil.mavlink_connection(sim.address, source_system=255)
        try:
            assert station.wait_heartbeat(timeout=5) is not None
            get_home = mavlink.MAV_CMD_GET_HOME_POSITION
            assert command(station, get_home) == mavlink.MAV_RESULT_FAILED
            assert station.recv_match(type="HOME_POSITION", blocking=True, timeout=1.5) is None
        finally:
            station.close()


def test_battery_drains_over_the_rated_endurance_in_flight(
    sim: SimVehicle, gcs: mavutil.mavfile
) -> None:
    sim.health = Health(battery_pct=80.0, battery_endurance_s=100.0)  # 1 % per second

    def latest() -> tuple[float, int]:
        """Simulated time (s) and battery (%) of the last telemetry sent."""
        while gcs.recv_match(blocking=False) is not None:
            pass
        return gcs.messages["GLOBAL_POSITION_INT"].time_boot_ms / 1000, gcs.messages[
            "SYS_STATUS"
        ].battery_remaining

    command(gcs, mavlink.MAV_CMD_DO_SET_MODE, mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
            COPTER_MODES["GUIDED"])  # fmt: skip
    assert command(gcs, mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mavlink.MAV_RESULT_ACCEPTED
    time.sleep(0.2)
    start_s, start_pct = latest()
    time.sleep(0.5)  # about 25 s of flight at 50x
    end_s, end_pct = latest()
    assert end_s - start_s > 10.0
    assert start_pct - end_pct == pytest.approx(end_s - start_s, abs=2.0)


def test_a_silent_vehicle_sends_nothing_and_ignores_commands(
    sim: SimVehicle, gcs: mavutil.mavfile
) -> None:
    sim.go_silent()
    time.sleep(0.2)
    while gcs.recv_match(blocking=False) is not None:
        pass  # what was already on its way
    gcs.mav.param_request_list_send(1, 1)
    assert gcs.recv_match(blocking=True, timeout=1.5) is None


def test_the_link_drops_after_the_given_number_of_uploaded_items() -> None:
    with SimVehicle(home_lonlat=HOME_LONLAT, ground_elevation_m=12.0,
                    drop_link_after_items=2) as sim:  # fmt: skip
        station = mavutil.mavlink_connection(sim.address, source_system=255)
        try:
            assert station.wait_heartbeat(timeout=5) is not None
            station.mav.mission_count_send(1, 1, 5)
            requested = []
            kinds = ["MISSION_REQUEST", "MISSION_REQUEST_INT"]
            while (
                request := station.recv_match(type=kinds, blocking=True, timeout=1.5)
            ) is not None:
                requested.append(request.seq)
                station.mav.mission_item_int_send(
                    1, 1, request.seq, 3, mavlink.MAV_CMD_NAV_WAYPOINT, 0, 1, 0, 0, 0, 0,
                    349_000_000, -23_000_000, 30.0,
                )  # fmt: skip
            assert requested == [0, 1] and sim.silent and sim.mission == []
        finally:
            station.close()


LAT_E7, LON_E7 = 348_961_000, -23_431_000
NAN = math.nan


def item(command: int, *params: float, frame: int = 3, z: float = 70.0) -> MissionItem:
    """A received MISSION_ITEM_INT (seq 5) with param1..4 ``params``, at Berkane."""
    return MissionItem(5, frame, command, 0, 1, *params, LAT_E7, LON_E7, z)


def test_a_waypoint_keeps_its_hold_in_whole_seconds_and_its_height_in_whole_cm() -> None:
    kept = stored_item(item(mavlink.MAV_CMD_NAV_WAYPOINT, 2.7, 3.0, 4.0, NAN, z=70.13,
                            frame=mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT))  # fmt: skip
    assert (kept.param1, kept.param2, kept.param3, kept.param4) == (2.0, 0.0, 0.0, 0.0)
    assert (kept.x, kept.y) == (LAT_E7, LON_E7)
    assert kept.z == pytest.approx(70.12, abs=1e-5)  # 70.13 m as float32 is 7012.99.. cm
    assert kept.frame == mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT


def test_commands_without_a_location_come_back_with_only_what_ardupilot_keeps() -> None:
    trigger = stored_item(item(mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST, 24.7, 5.0, 1.0, 9.0))
    assert (trigger.param1, trigger.param2, trigger.param3, trigger.param4) == (
        pytest.approx(24.7, rel=1e-7),
        0.0,
        1.0,
        0.0,
    )
    assert (trigger.x, trigger.y, trigger.z, trigger.frame) == (0, 0, 0.0, 0)
    speed = stored_item(item(mavlink.MAV_CMD_DO_CHANGE_SPEED, 1.0, 6.5, 40.0, 7.0))
    assert (speed.param1, speed.param2, speed.param3, speed.param4) == (1.0, 6.5, 40.0, 0.0)
    rtl = stored_item(item(mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH, 1.0, 2.0, 3.0, 4.0))
    assert (rtl.param1, rtl.param4, rtl.x, rtl.z) == (0.0, 0.0, 0, 0.0)
    land = stored_item(item(mavlink.MAV_CMD_NAV_LAND, 0.0, 0.0, 0.0, NAN, z=0.0))
    assert land.param4 == 1.0 and (land.x, land.y) == (LAT_E7, LON_E7)


@pytest.mark.parametrize(
    ("received", "result"),
    [
        (item(mavlink.MAV_CMD_NAV_WAYPOINT, NAN, 0.0, 0.0, NAN), "INVALID_PARAM1"),
        (item(mavlink.MAV_CMD_DO_CHANGE_SPEED, 1.0, NAN, 0.0, 0.0), "INVALID_PARAM2"),
        (item(mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST, 25.0, 0.0, 1.0, NAN), "INVALID_PARAM4"),
        (item(mavlink.MAV_CMD_NAV_TAKEOFF, math.inf, 0.0, 0.0, 0.0), "INVALID_PARAM1"),
        (item(mavlink.MAV_CMD_NAV_WAYPOINT, 0.0, 0.0, 0.0, 0.0, z=NAN), "INVALID_PARAM7"),
        (item(mavlink.MAV_CMD_NAV_WAYPOINT, 0.0, 0.0, 0.0, 0.0, frame=mavlink.MAV_FRAME_BODY_FRD),
         "UNSUPPORTED_FRAME"),
        (item(mavlink.MAV_CMD_DO_SET_PARAMETER, 1.0, 2.0, 0.0, 0.0), "UNSUPPORTED"),
    ],
    ids=["nan hold", "nan speed", "nan trigger p4", "inf", "nan altitude", "body frame",
         "unknown command"],
)  # fmt: skip
def test_items_ardupilot_refuses_are_refused_with_its_reason(
    received: MissionItem, result: str
) -> None:
    with pytest.raises(ItemRejected) as refused:
        stored_item(received)
    assert refused.value.result == getattr(mavlink, f"MAV_MISSION_{result}")
