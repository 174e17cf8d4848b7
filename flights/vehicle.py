"""The link to an ArduPilot copter through DroneKit: connect, upload a mission, fly it.

The only module that imports ``dronekit``. Every wait is bounded and fails with
:class:`~core.errors.VehicleError`; mission items travel as ``MISSION_ITEM_INT`` (lat/lon
as int degrees * 1e7), and an upload is read back and compared item by item.
"""

from __future__ import annotations

import csv
import math
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from dronekit import APIException, CommandInt, Vehicle, VehicleMode, connect
from pymavlink import mavutil

from core.errors import VehicleError
from core.io import atomic_path
from core.types import Mission
from flights.items import MissionItem, mission_items

mavlink = mavutil.mavlink

RETRY_S = 1.0
LINK_LOST_S = 5.0
LAT_LON_TOLERANCE_E7 = 1  # 1e-7 deg, about 1 cm
ALTITUDE_TOLERANCE_M = 0.01
# The *_INT frames are deprecated aliases; autopilots may answer with either.
_SAME_FRAME = {
    mavlink.MAV_FRAME_GLOBAL_INT: mavlink.MAV_FRAME_GLOBAL,
    mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT: mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT,
    mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT: mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT,
}


@dataclass
class VehicleLink:
    """A connected DroneKit vehicle; close it (or use ``with``) to release the socket."""

    vehicle: Vehicle
    address: str

    def close(self) -> None:
        self.vehicle.close()

    def __enter__(self) -> VehicleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TelemetrySample:
    """One telemetry reading during a flight (altitude above home)."""

    time_s: float
    lat_deg: float
    lon_deg: float
    altitude_m: float
    heading_deg: float
    groundspeed_m_s: float
    battery_pct: float
    mode: str
    armed: bool
    mission_item: int
    mission_items: int


@dataclass(frozen=True)
class FlightLog:
    """The telemetry of one flown mission."""

    samples: tuple[TelemetrySample, ...]
    duration_s: float

    def write_csv(self, path: Path) -> Path:
        """Write the samples as CSV (atomically: temporary file, then rename)."""
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(field.name for field in fields(TelemetrySample))
            writer.writerows(astuple(sample) for sample in self.samples)
        return path


def connect_vehicle(address: str, timeout_s: float = 30.0) -> VehicleLink:
    """Connect to the autopilot at ``address`` (e.g. ``udpin:127.0.0.1:14550``).

    Waits for a heartbeat, all parameters, GPS and attitude; raises ``VehicleError`` after
    ``timeout_s`` at the latest (DroneKit's own ``connect`` can block forever when a
    vehicle heartbeats but never sends parameters, so it runs under a watchdog).
    """
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
        raise VehicleError(f"cannot connect to {address}: {outcome['error']}")
    raise VehicleError(f"no ready vehicle at {address} within {timeout_s:g} s")


def mission_commands(mission: Mission) -> list[CommandInt]:
    """The items after home (from :func:`flights.items.mission_items`) as ``MISSION_ITEM_INT``."""
    return [_command_int(item) for item in mission_items(mission)[1:]]


def _command_int(item: MissionItem) -> CommandInt:
    def value(v: float | None) -> float:
        return math.nan if v is None else v

    def degrees_e7(v: float | None) -> int:
        return 0 if v is None else round(v * 1e7)

    return CommandInt(
        0,
        0,
        item.seq,
        item.frame,
        item.command,
        0,
        int(item.autocontinue),
        value(item.p1),
        value(item.p2),
        value(item.p3),
        value(item.p4),
        degrees_e7(item.lat),
        degrees_e7(item.lon),
        value(item.alt),
    )


def upload_mission(link: VehicleLink, mission: Mission, *, timeout_s: float = 30.0) -> None:
    """Upload ``mission``, wait for the vehicle's ACK, read it back and compare every item."""
    vehicle = link.vehicle
    commands = mission_commands(mission)
    last_requested = [-1]
    acks: list[int] = []

    def on_request(_: Any, name: str, msg: Any) -> None:
        last_requested[0] = max(last_requested[0], msg.seq)

    def on_ack(_: Any, name: str, msg: Any) -> None:
        if last_requested[0] == len(commands):  # the ACK of this upload, not of the clear
            acks.append(msg.type)

    deadline = time.monotonic() + timeout_s
    cmds = vehicle.commands
    try:
        # Download first so item 0 holds the vehicle's home, which clear() keeps.
        cmds.download()
        cmds.wait_ready(timeout=timeout_s)
        cmds.clear()
        for command in commands:
            cmds.add(command)
        with _listening(
            vehicle,
            {
                "MISSION_REQUEST": on_request,
                "MISSION_REQUEST_INT": on_request,
                "MISSION_ACK": on_ack,
            },
        ):
            cmds.upload(timeout=_remaining(deadline))
            _wait(link, lambda: bool(acks), "mission upload acknowledgement", deadline)
    except APIException as exc:  # DroneKit's timeouts
        raise VehicleError(f"{link.address}: mission upload failed: {exc or 'timeout'}") from exc
    if acks[0] != mavlink.MAV_MISSION_ACCEPTED:
        result = _enum_name("MAV_MISSION_RESULT", acks[0])
        raise VehicleError(f"{link.address}: vehicle rejected the mission ({result})")
    _verify(link, commands, download_mission(link, timeout_s=_remaining(deadline)))


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
                    raise VehicleError(f"{link.address}: timed out downloading the mission")
                request()  # a message was lost: ask again
    vehicle.send_mavlink(factory.mission_ack_encode(0, 0, mavlink.MAV_MISSION_ACCEPTED))
    return items


def fly_mission(
    link: VehicleLink,
    *,
    timeout_s: float,
    on_progress: Callable[[TelemetrySample], None] | None = None,
    sample_period_s: float = 0.2,
) -> FlightLog:
    """Fly the uploaded mission: GUIDED, arm, take off, AUTO, until landed and disarmed.

    ``on_progress`` receives every telemetry sample; any step that does not happen within
    ``timeout_s`` (counted from the start) raises ``VehicleError``.
    """
    vehicle = link.vehicle
    start_s = time.monotonic()
    deadline = start_s + timeout_s
    items = download_mission(link, timeout_s=timeout_s)
    takeoffs = [item.z for item in items if item.command == mavlink.MAV_CMD_NAV_TAKEOFF]
    if not takeoffs:
        raise VehicleError(f"{link.address}: the vehicle's mission has no take-off item")
    last_item = len(items) - 1

    _set_mode(link, "GUIDED", deadline)
    _until(link, lambda: setattr(vehicle, "armed", True), lambda: vehicle.armed, "arming",
           deadline)  # fmt: skip
    vehicle.simple_takeoff(takeoffs[0])
    _wait(link, lambda: _altitude_m(vehicle) >= 0.95 * takeoffs[0], "take-off", deadline)
    _set_mode(link, "AUTO", deadline)

    samples: list[TelemetrySample] = []
    while not (not vehicle.armed and vehicle.commands.next >= last_item):
        _check_link(link)
        if time.monotonic() > deadline:
            raise VehicleError(
                f"{link.address}: mission not finished within {timeout_s:g} s "
                f"(item {vehicle.commands.next}/{last_item}, mode {vehicle.mode.name})"
            )
        sample = _sample(vehicle, time.monotonic() - start_s, last_item)
        samples.append(sample)
        if on_progress is not None:
            on_progress(sample)
        time.sleep(sample_period_s)
    samples.append(_sample(vehicle, time.monotonic() - start_s, last_item))
    return FlightLog(tuple(samples), time.monotonic() - start_s)


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


def _check_link(link: VehicleLink) -> None:
    since_s = link.vehicle.last_heartbeat
    if since_s is not None and since_s > LINK_LOST_S:
        raise VehicleError(f"{link.address}: no heartbeat for {since_s:.0f} s")


def _wait(
    link: VehicleLink, condition: Callable[[], bool], what: str, until: float, *, fail: bool = True
) -> bool:
    """Poll ``condition`` until the monotonic time ``until``; raise (or return False) on a miss."""
    while not condition():
        _check_link(link)
        if time.monotonic() >= until:
            if fail:
                raise VehicleError(f"{link.address}: timed out waiting for {what}")
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
            raise VehicleError(f"{link.address}: timed out waiting for {what}")


def _set_mode(link: VehicleLink, mode: str, deadline: float) -> None:
    def send() -> None:
        link.vehicle.mode = VehicleMode(mode)

    _until(link, send, lambda: link.vehicle.mode.name == mode, f"mode {mode}", deadline)


def _altitude_m(vehicle: Vehicle) -> float:
    return vehicle.location.global_relative_frame.alt or 0.0


def _sample(vehicle: Vehicle, time_s: float, last_item: int) -> TelemetrySample:
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
    )


def _enum_name(enum: str, value: int) -> str:
    entry = mavlink.enums[enum].get(value)
    return entry.name if entry else str(value)


def _verify(link: VehicleLink, sent: list[CommandInt], received: list[Any]) -> None:
    """Raise ``VehicleError`` naming the first item that differs between upload and vehicle."""
    if len(received) != len(sent) + 1:
        raise VehicleError(
            f"{link.address}: vehicle holds {len(received) - 1} mission items, sent {len(sent)}"
        )
    for seq, (ours, theirs) in enumerate(zip(sent, received[1:], strict=True), start=1):
        checks = {
            "command": ours.command == theirs.command,
            "lat": abs(ours.x - theirs.x) <= LAT_LON_TOLERANCE_E7,
            "lon": abs(ours.y - theirs.y) <= LAT_LON_TOLERANCE_E7,
            "alt": abs(ours.z - theirs.z) <= ALTITUDE_TOLERANCE_M,
            **{
                f"param{i}": _same(getattr(ours, f"param{i}"), getattr(theirs, f"param{i}"))
                for i in range(1, 5)
            },
        }
        if ours.command < mavlink.MAV_CMD_NAV_LAST:
            checks["frame"] = _SAME_FRAME.get(ours.frame, ours.frame) == _SAME_FRAME.get(
                theirs.frame, theirs.frame
            )
        for field_name, same in checks.items():
            if not same:
                command = _enum_name("MAV_CMD", ours.command)
                raise VehicleError(
                    f"{link.address}: mission item {seq} ({command}) {field_name} differs: "
                    f"sent {_field(ours, field_name)}, vehicle has {_field(theirs, field_name)}"
                )


def _same(ours: float, theirs: float) -> bool:
    """Equal as float32 parameters, NaN (unset) matching NaN."""
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-4)


def _field(item: Any, name: str) -> object:
    return getattr(item, {"lat": "x", "lon": "y", "alt": "z"}.get(name, name))
