"""The link to an ArduPilot copter through DroneKit: connect, check, upload, fly, abort.

The only module that imports ``dronekit``. Every wait is bounded and fails with
:class:`~core.errors.VehicleError`, a silent link included. Mission items travel as
``MISSION_ITEM_INT`` (lat/lon as int degrees * 1e7), the upload waits for the vehicle's
``MISSION_ACK`` and is read back and compared item by item, on what ArduPilot keeps of each
command (it zeroes the rest and stores altitudes in whole centimetres). :func:`fly_plan`
does it all for the CLI: connect, pre-flight checks, upload, fly, and a GeoPackage flight
log. Connecting and uploading are tried again on a :class:`LinkError` (silence, a lost
message, a timeout), ``retries`` times with doubling waits; a refused or misstored mission
is not.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dronekit import CommandInt, Vehicle, VehicleMode, connect
from pymavlink import mavutil
from pyproj import Geod

from core.errors import PlanError, VehicleError
from core.types import Mission
from flights.flight_log import DEFAULT_CRS, FlightLog, TelemetrySample
from flights.items import MissionItem, mission_items, nan_if_unset

mavlink = mavutil.mavlink
LOG = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 1.0
LINK_LOST_S = 5.0
PREFLIGHT_WAIT_S = 5.0
ALTITUDE_TOLERANCE_M = 0.02
"""ArduPilot keeps altitudes in whole centimetres (truncated) and sends them as float32."""
# The *_INT frames are deprecated aliases; autopilots may answer with either.
_SAME_FRAME = {
    mavlink.MAV_FRAME_GLOBAL_INT: mavlink.MAV_FRAME_GLOBAL,
    mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT: mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT,
    mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT: mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT,
}
_MISSION = mavlink.MAV_MISSION_TYPE_MISSION


@dataclass(frozen=True)
class _Kept:
    """What ArduPilot keeps of a mission command, hence what a read-back is compared on."""

    params: tuple[int, ...] = ()
    """Parameter numbers (1-4) it keeps; the others come back as 0."""
    whole: tuple[int, ...] = ()
    """Of those, the ones kept as integers (the fraction is dropped)."""
    location: bool = True
    """Latitude, longitude, altitude and frame are kept (else they come back as 0)."""


# ArduCopter's mission storage: AP_Mission::mavlink_int_to_mission_cmd (upload),
# AP_Mission::mission_cmd_to_mavlink_int (download) and AP_Mission::stored_in_location in
# ArduPilot's libraries/AP_Mission/AP_Mission.cpp. Other commands: p1..p4 and the location
# are compared (NaN matching 0).
_KEPT = {
    mavlink.MAV_CMD_NAV_WAYPOINT: _Kept((1,), whole=(1,)),  # hold s; yaw is dropped
    mavlink.MAV_CMD_NAV_TAKEOFF: _Kept((1,), whole=(1,)),  # (plane's pitch); yaw dropped
    mavlink.MAV_CMD_NAV_LAND: _Kept((1,), whole=(1,)),  # p4 comes back as a +-1 flag
    mavlink.MAV_CMD_NAV_LOITER_TIME: _Kept((1,), whole=(1,)),  # p3, p4 come back as flags
    mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH: _Kept(location=False),
    mavlink.MAV_CMD_DO_CHANGE_SPEED: _Kept((1, 2, 3), whole=(1,), location=False),
    mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST: _Kept((1, 3), whole=(3,), location=False),
    mavlink.MAV_CMD_DO_JUMP: _Kept((1, 2), whole=(1, 2), location=False),
    mavlink.MAV_CMD_CONDITION_YAW: _Kept((1, 2, 3, 4), whole=(3, 4), location=False),
}
_UNKNOWN = _Kept((1, 2, 3, 4))
_WGS84 = Geod(ellps="WGS84")


class LinkError(VehicleError):
    """The link failed on the way (no vehicle, silence, lost messages, a timeout): worth
    another try, unlike a vehicle that refuses a mission or stores it differently."""


def with_retries(attempt: Callable[[], T], what: str, retries: int, backoff_s: float) -> T:
    """``attempt()``, tried again up to ``retries`` times on a :class:`LinkError`, after
    ``backoff_s``, then twice as long each time (each retry logged as a warning naming
    ``what``); the final LinkError adds how many attempts were made over how long."""
    start_s = time.monotonic()
    for number in range(retries):
        try:
            return attempt()
        except LinkError as exc:
            delay_s = backoff_s * 2**number
            LOG.warning("%s; %s again in %g s (retry %d of %d)", exc, what, delay_s,
                        number + 1, retries)  # fmt: skip
            time.sleep(delay_s)
    try:
        return attempt()
    except LinkError as exc:
        if not retries:
            raise
        raise LinkError(
            f"{exc} (gave up after {retries + 1} attempts over {time.monotonic() - start_s:.0f} s)"
        ) from exc


@dataclass
class VehicleLink:
    """A connected DroneKit vehicle; close it (or use ``with``) to release the socket.

    It times the vehicle's heartbeats itself: DroneKit's own clock stops when its reader
    thread dies, which would hide a lost link.
    """

    vehicle: Vehicle
    address: str
    _heard_at_s: float = field(default_factory=time.monotonic, init=False, repr=False)

    def __post_init__(self) -> None:
        self.vehicle.add_message_listener("HEARTBEAT", self._on_heartbeat)

    def _on_heartbeat(self, _: Any, name: str, msg: Any) -> None:
        if msg.type != mavlink.MAV_TYPE_GCS:
            self._heard_at_s = time.monotonic()

    @property
    def silence_s(self) -> float:
        """Seconds since the vehicle's last heartbeat."""
        return time.monotonic() - self._heard_at_s

    def close(self) -> None:
        self.vehicle.close()

    def __enter__(self) -> VehicleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PreflightLimits:
    """What the vehicle must report before a mission is started."""

    min_battery_pct: float = 90.0
    min_satellites: int = 8
    max_hdop: float = 2.0
    max_home_offset_m: float = 100.0
    """How far the vehicle's home may be from the plan's (its battery and safety checks
    assumed the plan's home)."""


def connect_vehicle(
    address: str, timeout_s: float = 30.0, *, retries: int = 0, backoff_s: float = 2.0
) -> VehicleLink:
    """Connect to the autopilot at ``address`` (e.g. ``udpin:127.0.0.1:14550``).

    Waits for a heartbeat, all parameters, GPS and attitude; an attempt fails after
    ``timeout_s`` at the latest (DroneKit's own ``connect`` can block forever when a
    vehicle heartbeats but never sends parameters, so it runs under a watchdog) and leaves
    no thread running and no socket open. A failed attempt is repeated ``retries`` times
    (see :func:`with_retries`); then :class:`LinkError` names the address.
    """
    return with_retries(
        lambda: _connect_once(address, timeout_s), f"connecting to {address}", retries, backoff_s
    )


def _connect_once(address: str, timeout_s: float) -> VehicleLink:
    created: list[Vehicle] = []
    outcome: dict[str, Any] = {}

    class _Tracked(Vehicle):
        def __init__(self, handler: Any) -> None:
            super().__init__(handler)
            created.append(self)

    def attempt() -> None:
        try:
            outcome["vehicle"] = connect(
                address,
                wait_ready=True,
                timeout=timeout_s,
                heartbeat_timeout=timeout_s,
                still_waiting_callback=lambda missing: None,
                vehicle_class=_Tracked,
            )
        except Exception as exc:  # any failure of the library becomes a VehicleError below
            outcome["error"] = exc

    worker = threading.Thread(target=attempt, name=f"connect {address}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if "vehicle" in outcome:
        return VehicleLink(outcome["vehicle"], address)
    if created:
        created[0].close()
        # DroneKit's initialize() polls for parameters with no exit once the link is
        # closed; this ends that loop so the worker thread finishes instead of spinning.
        created[0]._params_count = max(created[0]._params_count, 0)
    if "error" in outcome:
        raise LinkError(f"cannot connect to {address}: {str(outcome['error']).rstrip('.')}")
    raise LinkError(f"no ready vehicle at {address} within {timeout_s:g} s")


# -- pre-flight checks -------------------------------------------------------------------


def preflight_problems(
    link: VehicleLink,
    limits: PreflightLimits = PreflightLimits(),
    *,
    planned_home_latlon: tuple[float, float] | None = None,
) -> list[str]:
    """Every failed pre-flight check, as a sentence saying what is wrong and what to do."""
    vehicle = link.vehicle
    problems = []
    if link.silence_s > LINK_LOST_S:
        problems.append(f"no heartbeat for {link.silence_s:.0f} s: check the radio link")
    gps = vehicle.gps_0
    if (gps.fix_type or 0) < mavlink.GPS_FIX_TYPE_3D_FIX:
        problems.append(f"GPS has no 3D fix (fix type {gps.fix_type}): wait for a fix in the open")
    if (gps.satellites_visible or 0) < limits.min_satellites:
        problems.append(
            f"GPS sees {gps.satellites_visible} satellites, "
            f"at least {limits.min_satellites} are required"
        )
    if gps.eph in (None, 65535):  # UINT16_MAX: unknown
        problems.append("GPS HDOP is not reported: wait for a fix")
    elif gps.eph / 100 > limits.max_hdop:
        problems.append(
            f"GPS HDOP {gps.eph / 100:g} is above {limits.max_hdop:g}: wait for a better fix"
        )
    level = vehicle.battery.level if vehicle.battery else None
    if level is None:
        problems.append("battery level is not reported: check the power module")
    elif level < limits.min_battery_pct:
        problems.append(
            f"battery at {level:g} %, at least {limits.min_battery_pct:g} % is required: "
            "fit a charged battery"
        )
    home = vehicle.home_location
    if home is None or (home.lat, home.lon) == (0.0, 0.0):
        problems.append("home position is not set: wait for GPS lock to set it")
    elif planned_home_latlon is not None:
        _, _, offset_m = _WGS84.inv(home.lon, home.lat, *planned_home_latlon[::-1])
        if offset_m > limits.max_home_offset_m:
            problems.append(
                f"the vehicle's home is {offset_m:.0f} m from the plan's home (limit "
                f"{limits.max_home_offset_m:g} m): move the vehicle or re-plan from here"
            )
    if not vehicle.ekf_ok or not vehicle.is_armable:
        problems.append("EKF position estimate is not ready: the vehicle is not armable yet")
    mode = vehicle.mode.name if vehicle.mode else None
    if vehicle.armed:
        problems.append(f"the vehicle is already armed (mode {mode}): land and disarm first")
    elif mode in (None, "INITIALISING"):
        problems.append("the autopilot is still initialising")
    return problems


def preflight(
    link: VehicleLink,
    limits: PreflightLimits = PreflightLimits(),
    *,
    planned_home_latlon: tuple[float, float] | None = None,
    timeout_s: float = PREFLIGHT_WAIT_S,
) -> None:
    """Wait up to ``timeout_s`` for every check to pass; else raise ``VehicleError``
    listing each failed one (a GPS fix or home may still come; a flat battery will not)."""
    factory = link.vehicle.message_factory
    link.vehicle.send_mavlink(
        factory.command_long_encode(0, 0, mavlink.MAV_CMD_GET_HOME_POSITION, 0, *[0] * 7)
    )
    deadline = time.monotonic() + timeout_s
    while problems := preflight_problems(link, limits, planned_home_latlon=planned_home_latlon):
        if time.monotonic() >= deadline:
            raise VehicleError(f"{link.address}: pre-flight checks failed: {'; '.join(problems)}")
        time.sleep(0.1)


# -- mission upload and download -----------------------------------------------------------


def commands_int(items: Sequence[MissionItem]) -> list[CommandInt]:
    """``items`` (item 0 is home) as ``MISSION_ITEM_INT`` commands numbered 0..n-1."""
    return [_command_int(seq, item) for seq, item in enumerate(items)]


def _command_int(seq: int, item: MissionItem) -> CommandInt:
    value = nan_if_unset

    def degrees_e7(v: float | None) -> int:
        return 0 if v is None else round(v * 1e7)

    return CommandInt(
        0,
        0,
        seq,
        item.frame,
        item.command,
        int(item.current),
        int(item.autocontinue),
        value(item.p1),
        value(item.p2),
        value(item.p3),
        value(item.p4),
        degrees_e7(item.lat),
        degrees_e7(item.lon),
        value(item.alt),
    )


def upload_mission(
    link: VehicleLink,
    mission: Mission,
    *,
    timeout_s: float = 30.0,
    retries: int = 0,
    backoff_s: float = 2.0,
) -> None:
    """Upload ``mission`` (see :func:`upload_items`)."""
    upload_items(
        link, mission_items(mission), timeout_s=timeout_s, retries=retries, backoff_s=backoff_s
    )


def upload_items(
    link: VehicleLink,
    items: Sequence[MissionItem],
    *,
    timeout_s: float = 30.0,
    retries: int = 0,
    backoff_s: float = 2.0,
) -> None:
    """Upload ``items`` with the MAVLink mission protocol, then read them back and compare.

    Item 0 is home: it is sent (ArduPilot expects it) but the vehicle keeps its own home,
    so it is not compared. The vehicle's ``MISSION_ACK`` must accept the mission. An
    attempt fails with :class:`LinkError` within ``timeout_s`` if the link goes quiet at
    any point, and is then made again from the start ``retries`` times (see
    :func:`with_retries`); a refused or misstored mission raises ``VehicleError`` at once.
    """
    if len(items) < 2:
        raise VehicleError(f"{link.address}: nothing to upload (no mission items after home)")
    with_retries(
        lambda: _upload_once(link, items, timeout_s),
        f"uploading the mission to {link.address}",
        retries,
        backoff_s,
    )


def _upload_once(link: VehicleLink, items: Sequence[MissionItem], timeout_s: float) -> None:
    commands = commands_int(items)
    vehicle = link.vehicle
    factory = vehicle.message_factory
    requested: list[int] = []
    acks: list[int] = []

    def on_request(_: Any, name: str, msg: Any) -> None:
        if getattr(msg, "mission_type", _MISSION) == _MISSION and 0 <= msg.seq < len(commands):
            requested.append(msg.seq)
            vehicle.send_mavlink(_item_int_message(factory, commands[msg.seq]))

    def on_ack(_: Any, name: str, msg: Any) -> None:
        if getattr(msg, "mission_type", _MISSION) == _MISSION:
            acks.append(msg.type)

    def send_count() -> None:
        vehicle.send_mavlink(factory.mission_count_encode(0, 0, len(commands)))

    deadline = time.monotonic() + timeout_s
    listeners = {"MISSION_REQUEST": on_request, "MISSION_REQUEST_INT": on_request,
                 "MISSION_ACK": on_ack}  # fmt: skip
    with _listening(vehicle, listeners):
        try:
            send_count()
            while not _wait(link, lambda: bool(acks), "the mission upload",
                            min(deadline, time.monotonic() + RETRY_S), fail=False):  # fmt: skip
                if time.monotonic() >= deadline:
                    raise LinkError(_upload_stalled(link, requested, len(commands), timeout_s))
                if not requested:
                    send_count()  # the count was lost: announce the upload again
        except VehicleError:
            vehicle.send_mavlink(
                factory.mission_ack_encode(0, 0, mavlink.MAV_MISSION_OPERATION_CANCELLED)
            )
            raise
    if acks[0] != mavlink.MAV_MISSION_ACCEPTED:
        raise VehicleError(_rejected(link, acks[0], requested, items))
    if max(requested, default=-1) < len(commands) - 1:
        raise VehicleError(
            f"{link.address}: vehicle accepted the mission after {len(set(requested))} of "
            f"{len(commands)} items"
        )
    _verify(link, commands, download_mission(link, timeout_s=_remaining(deadline)))


def _rejected(
    link: VehicleLink, result: int, requested: list[int], items: Sequence[MissionItem]
) -> str:
    """The vehicle refused the upload: name the item it refused (the last one it asked for)."""
    reason = _enum_name("MAV_MISSION_RESULT", result)
    if not requested:
        return f"{link.address}: vehicle rejected the mission ({reason})"
    seq = max(requested)
    command = _enum_name("MAV_CMD", items[seq].command)
    return (
        f"{link.address}: vehicle rejected mission item {seq} ({command}): {reason}; "
        "fix that item in the plan (ArduPilot refuses NaN parameters except a NAV "
        "command's yaw, and commands or frames it does not support)"
    )


def _upload_stalled(link: VehicleLink, requested: list[int], count: int, timeout_s: float) -> str:
    if not requested:
        progress = "the vehicle never asked for an item"
    elif max(requested) < count - 1:
        progress = f"the vehicle asked for item {max(requested)} of {count - 1}, then stopped"
    else:
        progress = "all items were sent but the vehicle never acknowledged them"
    silence = f"; no heartbeat for {link.silence_s:.1f} s" if link.silence_s > RETRY_S else ""
    return f"{link.address}: mission upload timed out after {timeout_s:g} s: {progress}{silence}"


def _item_int_message(factory: Any, command: CommandInt) -> Any:
    return factory.mission_item_int_encode(
        0, 0, command.seq, command.frame, command.command, command.current,
        command.autocontinue, command.param1, command.param2, command.param3,
        command.param4, command.x, command.y, command.z,
    )  # fmt: skip


def download_mission(link: VehicleLink, *, timeout_s: float = 30.0) -> list[Any]:
    """The vehicle's mission as ``MISSION_ITEM_INT`` messages (item 0 is home).

    Requests items with ``MISSION_REQUEST_INT`` (DroneKit's own download uses the float
    ``MISSION_REQUEST``, which loses ~0.2 m at Berkane's latitude).
    """
    vehicle = link.vehicle
    factory = vehicle.message_factory
    count: list[int] = []
    items: list[Any] = []

    def on_count(_: Any, name: str, msg: Any) -> None:
        if not count:
            count.append(msg.count)
            request()

    def on_item(_: Any, name: str, msg: Any) -> None:
        if count and msg.seq == len(items) < count[0]:
            items.append(msg)
            request()

    def request() -> None:
        if not count:
            vehicle.send_mavlink(factory.mission_request_list_encode(0, 0))
        elif len(items) < count[0]:
            vehicle.send_mavlink(factory.mission_request_int_encode(0, 0, len(items)))

    def progress() -> tuple[int, int]:
        return len(count), len(items)

    deadline = time.monotonic() + timeout_s
    with _listening(vehicle, {"MISSION_COUNT": on_count, "MISSION_ITEM_INT": on_item}):
        request()
        while not (count and len(items) == count[0]):
            before = progress()
            _wait(
                link,
                lambda before=before: progress() != before,
                "mission download",
                min(deadline, time.monotonic() + RETRY_S),
                fail=False,
            )
            if progress() == before:
                if time.monotonic() >= deadline:
                    raise LinkError(f"{link.address}: timed out downloading the mission")
                request()  # a message was lost: ask again
    vehicle.send_mavlink(factory.mission_ack_encode(0, 0, mavlink.MAV_MISSION_ACCEPTED))
    return items


# -- flying ------------------------------------------------------------------------------


def fly_mission(
    link: VehicleLink,
    *,
    timeout_s: float,
    on_progress: Callable[[TelemetrySample], None] | None = None,
    sample_period_s: float = 0.2,
    abort_event: threading.Event | None = None,
    abort_when: Callable[[TelemetrySample], str | None] | None = None,
    rtl_battery_pct: float = 25.0,
    link_lost_s: float = LINK_LOST_S,
) -> FlightLog:
    """Fly the uploaded mission: GUIDED, arm, take off, AUTO, until landed and disarmed.

    The flight returns to launch early when ``abort_event`` is set, when ``abort_when``
    returns a reason for a sample, or when the battery falls below ``rtl_battery_pct``; it
    then still waits for the landing. ``on_progress`` receives every telemetry sample
    (events included). Raises ``VehicleError`` when the link is silent for ``link_lost_s``
    or the flight is not over within ``timeout_s`` (counted from the start).
    """
    vehicle = link.vehicle
    start_s = time.monotonic()
    deadline = start_s + timeout_s
    items = download_mission(link, timeout_s=timeout_s)
    takeoffs = [item.z for item in items if item.command == mavlink.MAV_CMD_NAV_TAKEOFF]
    if not takeoffs:
        raise VehicleError(f"{link.address}: the vehicle's mission has no take-off item")
    last_item = len(items) - 1
    samples: list[TelemetrySample] = []

    def record(event: str = "") -> TelemetrySample:
        sample = _sample(vehicle, time.monotonic() - start_s, last_item, event)
        samples.append(sample)
        if on_progress is not None:
            on_progress(sample)
        return sample

    def abort_requested() -> bool:
        return abort_event is not None and abort_event.is_set()

    _set_mode(link, "GUIDED", deadline)
    _until(link, lambda: setattr(vehicle, "armed", True), lambda: vehicle.armed, "arming",
           deadline)  # fmt: skip
    record("armed: taking off")
    vehicle.simple_takeoff(takeoffs[0])
    _wait(link, lambda: _altitude_m(vehicle) >= 0.95 * takeoffs[0] or abort_requested(),
          "take-off", deadline)  # fmt: skip
    if not abort_requested():
        _set_mode(link, "AUTO", deadline)
        record("mission started")

    reason = ""
    while vehicle.armed:
        if link.silence_s > link_lost_s:
            message = f"link lost: no heartbeat for {link.silence_s:.1f} s"
            record(message)
            raise VehicleError(
                f"{link.address}: {message} (last seen at mission item "
                f"{vehicle.commands.next}/{last_item}, mode {vehicle.mode.name})"
            )
        if time.monotonic() > deadline:
            record("flight timeout")
            raise VehicleError(
                f"{link.address}: flight not over within {timeout_s:g} s "
                f"(item {vehicle.commands.next}/{last_item}, mode {vehicle.mode.name})"
            )
        sample = record()
        if not reason:
            reason = _abort_reason(sample, abort_requested(), abort_when, rtl_battery_pct)
            if reason:
                abort(link, timeout_s=_remaining(deadline))
                record(f"abort: {reason}: returning to launch")
        time.sleep(sample_period_s)
    record("landed")
    if reason:
        outcome = f"aborted: {reason}"
    elif vehicle.commands.next >= last_item:
        outcome = "completed"
    else:
        outcome = f"aborted: the vehicle landed at mission item {vehicle.commands.next}"
    return FlightLog(tuple(samples), time.monotonic() - start_s, outcome)


def _abort_reason(
    sample: TelemetrySample,
    requested: bool,
    abort_when: Callable[[TelemetrySample], str | None] | None,
    rtl_battery_pct: float,
) -> str:
    if requested:
        return "requested by the operator"
    if abort_when is not None and (reason := abort_when(sample)):
        return reason
    if sample.battery_pct < rtl_battery_pct:
        return f"battery at {sample.battery_pct:g} %, below {rtl_battery_pct:g} %"
    return ""


def abort(link: VehicleLink, *, timeout_s: float = 10.0) -> None:
    """Return to launch now (mode RTL): the vehicle flies home and lands."""
    _set_mode(link, "RTL", time.monotonic() + timeout_s)


def fly_plan(
    address: str,
    items: Sequence[MissionItem],
    *,
    log_path: str | Path,
    timeout_s: float = 30.0,
    flight_timeout_s: float = 3600.0,
    limits: PreflightLimits = PreflightLimits(),
    rtl_battery_pct: float = 25.0,
    abort_event: threading.Event | None = None,
    on_progress: Callable[[TelemetrySample], None] | None = None,
    link_lost_s: float = LINK_LOST_S,
    crs: str = DEFAULT_CRS,
    retries: int = 0,
    backoff_s: float = 2.0,
) -> FlightLog:
    """Connect, check, upload ``items`` (item 0 is the plan's home), verify, fly, and write
    the flight log to ``log_path`` (GeoPackage; written even when the flight fails).

    ``timeout_s`` bounds each link step (connect, upload), each tried again ``retries``
    times with doubling waits from ``backoff_s``; ``flight_timeout_s`` bounds the flight,
    which is never restarted. The link is always closed.
    """
    _check_plan(items)
    home = items[0]
    planned_home = (home.lat, home.lon) if home.lat and home.lon else None
    samples: list[TelemetrySample] = []

    def record(sample: TelemetrySample) -> None:
        samples.append(sample)
        if on_progress is not None:
            on_progress(sample)

    with connect_vehicle(address, timeout_s, retries=retries, backoff_s=backoff_s) as link:
        preflight(link, limits, planned_home_latlon=planned_home,
                  timeout_s=min(timeout_s, PREFLIGHT_WAIT_S))  # fmt: skip
        upload_items(link, items, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        start_s = time.monotonic()
        try:
            log = fly_mission(
                link,
                timeout_s=flight_timeout_s,
                on_progress=record,
                abort_event=abort_event,
                rtl_battery_pct=rtl_battery_pct,
                link_lost_s=link_lost_s,
            )
        except BaseException as exc:  # the log of a failed flight matters most
            failed = FlightLog(
                tuple(samples), time.monotonic() - start_s, f"failed: {type(exc).__name__}: {exc}"
            )
            failed.write_gpkg(log_path, crs)
            raise
    log.write_gpkg(log_path, crs)
    return log


def _check_plan(items: Sequence[MissionItem]) -> None:
    if len(items) < 2:
        raise PlanError("the plan has no mission items after home: nothing to fly")
    if not any(item.command == mavlink.MAV_CMD_NAV_TAKEOFF for item in items[1:]):
        raise PlanError(
            "the plan has no take-off item (MAV_CMD_NAV_TAKEOFF): ArduCopter needs one to "
            "start a mission from the ground; add one after home"
        )


# -- helpers -------------------------------------------------------------------------------


class _listening:
    """Context manager adding DroneKit message listeners and removing them afterwards."""

    def __init__(self, vehicle: Vehicle, listeners: dict[str, Callable[..., None]]) -> None:
        self.vehicle = vehicle
        self.listeners = listeners

    def __enter__(self) -> None:
        for name, listener in self.listeners.items():
            self.vehicle.add_message_listener(name, listener)

    def __exit__(self, *exc: object) -> None:
        for name, listener in self.listeners.items():
            self.vehicle.remove_message_listener(name, listener)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


def _wait(
    link: VehicleLink, condition: Callable[[], bool], what: str, until: float, *, fail: bool = True
) -> bool:
    """Poll ``condition`` until the monotonic time ``until``; raise (or return False) on a miss."""
    while not condition():
        if link.silence_s > LINK_LOST_S:
            raise LinkError(
                f"{link.address}: link lost while waiting for {what}: "
                f"no heartbeat for {link.silence_s:.1f} s"
            )
        if time.monotonic() >= until:
            if fail:
                raise LinkError(f"{link.address}: timed out waiting for {what}")
            return False
        time.sleep(0.02)
    return True


def _until(
    link: VehicleLink,
    send: Callable[[], object],
    condition: Callable[[], bool],
    what: str,
    deadline: float,
) -> None:
    """Send a command, re-sending it every second (UDP loses messages) until it takes effect."""
    while True:
        send()
        if _wait(link, condition, what, min(deadline, time.monotonic() + RETRY_S), fail=False):
            return
        if time.monotonic() >= deadline:
            raise LinkError(f"{link.address}: timed out waiting for {what}")


def _set_mode(link: VehicleLink, mode: str, deadline: float) -> None:
    def send() -> None:
        link.vehicle.mode = VehicleMode(mode)

    _until(link, send, lambda: link.vehicle.mode.name == mode, f"mode {mode}", deadline)


def _altitude_m(vehicle: Vehicle) -> float:
    return vehicle.location.global_relative_frame.alt or 0.0


def _sample(vehicle: Vehicle, time_s: float, last_item: int, event: str) -> TelemetrySample:
    position = vehicle.location.global_relative_frame
    battery = vehicle.battery
    return TelemetrySample(
        time_s=round(time_s, 3),
        lat_deg=position.lat or math.nan,
        lon_deg=position.lon or math.nan,
        altitude_m=position.alt or 0.0,
        heading_deg=float(vehicle.heading or 0),
        groundspeed_m_s=vehicle.groundspeed or 0.0,
        battery_pct=float(battery.level) if battery and battery.level is not None else math.nan,
        mode=vehicle.mode.name if vehicle.mode else "",
        armed=vehicle.armed,
        mission_item=vehicle.commands.next,
        mission_items=last_item,
        captured_at=datetime.now(UTC),
        event=event,
    )


def _enum_name(enum: str, value: int) -> str:
    entry = mavlink.enums[enum].get(value)
    return entry.name if entry else str(value)


def _verify(link: VehicleLink, sent: list[CommandInt], received: list[Any]) -> None:
    """Raise ``VehicleError`` naming the first item after home, and its field, that the
    vehicle holds differently from what was sent (on what ArduPilot keeps: see ``_KEPT``)."""
    if len(received) != len(sent):
        raise VehicleError(
            f"{link.address}: vehicle holds {len(received) - 1} mission items, sent {len(sent) - 1}"
        )
    for ours, theirs in zip(sent[1:], received[1:], strict=True):
        if differences := _differences(ours, theirs):
            field_name = differences[0]
            command = _enum_name("MAV_CMD", ours.command)
            raise VehicleError(
                f"{link.address}: mission item {ours.seq} ({command}) {field_name} differs: "
                f"sent {_field(ours, field_name)}, vehicle has {_field(theirs, field_name)}"
            )


def _differences(ours: CommandInt, theirs: Any) -> list[str]:
    """The fields of the sent item ``ours`` that the vehicle's copy ``theirs`` does not match."""
    if ours.command != theirs.command:
        return ["command"]
    kept = _KEPT.get(ours.command, _UNKNOWN)
    checks = {}
    for number in kept.params:
        name = f"param{number}"
        expected = getattr(ours, name)
        if number in kept.whole and math.isfinite(expected):
            expected = float(math.trunc(expected))
        checks[name] = _same(expected, getattr(theirs, name))
    if kept.location:
        checks["lat"] = ours.x == theirs.x
        checks["lon"] = ours.y == theirs.y
        checks["alt"] = _same(ours.z, theirs.z, ALTITUDE_TOLERANCE_M)
        if ours.command < mavlink.MAV_CMD_NAV_LAST:
            checks["frame"] = _SAME_FRAME.get(ours.frame, ours.frame) == _SAME_FRAME.get(
                theirs.frame, theirs.frame
            )
    return [name for name, same in checks.items() if not same]


def _same(ours: float, theirs: float, abs_tol: float = 1e-4) -> bool:
    """Equal as float32 parameters; an unset value (NaN) matches 0, as ArduPilot stores it."""
    ours, theirs = (0.0 if math.isnan(v) else v for v in (ours, theirs))
    return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=abs_tol)


def _field(item: Any, name: str) -> object:
    return getattr(item, {"lat": "x", "lon": "y", "alt": "z"}.get(name, name))
