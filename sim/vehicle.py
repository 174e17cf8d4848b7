"""A simulated ArduCopter speaking MAVLink over UDP loopback, in accelerated time.

It sends to a ground station listening on ``127.0.0.1:PORT`` (as SITL's ``--out udp:``
does), so DroneKit connects with ``udpin:127.0.0.1:PORT``. It answers parameters, mission
upload/download (keeping each item as ArduCopter's storage does, see :func:`stored_item`:
unkept parameters come back as 0, altitudes in whole centimetres), arming, mode changes and
take-off; in AUTO it flies the mission, fires the camera every ``DO_SET_CAM_TRIGG_DIST``
metres (rendering a frame at the TRUE pose while the EXIF carries the GNSS pose) and lands
at the end.

Faults for testing a ground station: :class:`Health` sets the GPS fix, satellites, battery,
EKF and home position the vehicle reports (and its pre-arm checks refuse on), and the radio
link can go silent mid-upload (``drop_link_after_items``) or at any time (:meth:`go_silent`).
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from pymavlink import mavutil
from pyproj import Transformer

from core.errors import VehicleError
from core.types import Camera
from flights.camera import get_camera, preview
from sim.camera import MOROCCO_TIME, FlightCamera, FrameExif, Pose

mavlink = mavutil.mavlink
log = logging.getLogger(__name__)

COPTER_MODES = {
    "STABILIZE": 0,
    "ALT_HOLD": 2,
    "AUTO": 3,
    "GUIDED": 4,
    "LOITER": 5,
    "RTL": 6,
    "LAND": 9,
}
ARMABLE_MODES = {"STABILIZE", "ALT_HOLD", "GUIDED", "LOITER"}
FORCE_DISARM = 21196
LAND_ALT_LOW_M = 10.0
TICK_S = 0.01
HEARTBEAT_PERIOD_S = 1.0
HELLO_PERIOD_S = 0.2  # heartbeat rate until a ground station is heard, so it connects fast
TELEMETRY_PERIOD_S = 0.1
REQUEST_RETRY_S = 1.0
FRAMES_REPORT_PERIOD_S = 30.0
BATTERY_ENDURANCE_S = 40 * 60.0

_REAL32, _INT8, _INT16, _INT32 = (
    mavlink.MAV_PARAM_TYPE_REAL32,
    mavlink.MAV_PARAM_TYPE_INT8,
    mavlink.MAV_PARAM_TYPE_INT16,
    mavlink.MAV_PARAM_TYPE_INT32,
)
# A realistic subset of ArduCopter 4.5 parameters: (value, MAVLink type). Speeds in cm/s.
DEFAULT_PARAMETERS: dict[str, tuple[float, int]] = {
    "SYSID_THISMAV": (1, _INT8),
    "SYSID_MYGCS": (255, _INT16),
    "FRAME_CLASS": (1, _INT8),
    "FRAME_TYPE": (1, _INT8),
    "AHRS_EKF_TYPE": (3, _INT8),
    "GPS_TYPE": (1, _INT8),
    "ARMING_CHECK": (1, _INT32),
    "DISARM_DELAY": (10, _INT8),
    "ANGLE_MAX": (3000, _INT16),
    "PILOT_SPEED_UP": (250, _INT16),
    "WPNAV_SPEED": (1000, _REAL32),
    "WPNAV_SPEED_UP": (250, _REAL32),
    "WPNAV_SPEED_DN": (150, _REAL32),
    "WPNAV_ACCEL": (250, _REAL32),
    "WPNAV_RADIUS": (200, _REAL32),
    "WP_YAW_BEHAVIOR": (2, _INT8),
    "RTL_ALT": (3000, _INT32),
    "RTL_ALT_FINAL": (0, _INT32),
    "RTL_SPEED": (0, _INT16),
    "RTL_LOIT_TIME": (5000, _INT32),
    "LAND_SPEED": (50, _INT16),
    "LAND_SPEED_HIGH": (0, _INT16),
    "FENCE_ENABLE": (1, _INT8),
    "FENCE_TYPE": (7, _INT8),
    "FENCE_ACTION": (1, _INT8),
    "FENCE_ALT_MAX": (120, _REAL32),
    "FENCE_RADIUS": (1000, _REAL32),
    "BATT_MONITOR": (4, _INT8),
    "BATT_CAPACITY": (5000, _INT32),
    "BATT_LOW_VOLT": (14.0, _REAL32),
    "BATT_CRT_VOLT": (13.6, _REAL32),
    "BATT_FS_LOW_ACT": (2, _INT8),
    "FS_THR_ENABLE": (1, _INT8),
    "FS_GCS_ENABLE": (0, _INT8),
    "CAM_TRIGG_TYPE": (0, _INT8),
    "CAM_DURATION": (10, _INT8),
    "CAM_MIN_INTERVAL": (700, _INT16),
    "SIM_SPEEDUP": (1, _REAL32),
}


def free_udp_port() -> int:
    """A UDP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class MissionItem:
    """A stored mission item, latitude/longitude as int degrees * 1e7 (MISSION_ITEM_INT)."""

    seq: int
    frame: int
    command: int
    current: int
    autocontinue: int
    param1: float
    param2: float
    param3: float
    param4: float
    x: int
    y: int
    z: float


class ItemRejected(Exception):
    """ArduPilot refuses a mission item; ``result`` is the ``MAV_MISSION_RESULT`` it acks."""

    def __init__(self, result: int) -> None:
        super().__init__(mavlink.enums["MAV_MISSION_RESULT"][result].name)
        self.result = result


@dataclass(frozen=True)
class _Storage:
    """How ArduCopter keeps one mission command: the C type of each of param1..4 ("" when
    it is not kept and comes back as 0), whether lat/lon/alt are kept as a location, and
    the type x and y are kept in when they are not a location."""

    params: tuple[str, str, str, str] = ("", "", "", "")
    location: bool = False
    xy: str = ""


def _whole(low: int, high: int) -> Callable[[float], float]:
    """A C float-to-integer member: truncated toward zero, clamped (NaN: 0)."""
    return lambda v: 0.0 if math.isnan(v) else float(min(max(math.trunc(v), low), high))


_KEEP: dict[str, Callable[[float], float]] = {
    "f": lambda v: float(np.float32(v)),
    "u8": _whole(0, 0xFF),
    "i8": _whole(-0x80, 0x7F),
    "u16": _whole(0, 0xFFFF),
    "i16": _whole(-0x8000, 0x7FFF),
    "sign": lambda v: -1.0 if v < 0 else 1.0,  # a direction flag sent back as -1/+1
    "flag": lambda v: 1.0 if v > 0 else 0.0,  # a 0/1 flag (NaN: 0)
}
# ArduCopter's mission storage of a subset of its commands, after
# AP_Mission::mavlink_int_to_mission_cmd (upload), AP_Mission::mission_cmd_to_mavlink_int
# (download) and AP_Mission::stored_in_location in ArduPilot's
# libraries/AP_Mission/AP_Mission.cpp. Other commands are refused (MAV_MISSION_UNSUPPORTED,
# ArduPilot's answer to a command it lacks), so a plan using one fails here, not untested.
ARDUCOPTER_STORAGE: dict[int, _Storage] = {
    mavlink.MAV_CMD_NAV_WAYPOINT: _Storage(("u16", "", "", ""), location=True),  # hold time
    mavlink.MAV_CMD_NAV_LOITER_TIME: _Storage(("u16", "", "sign", "flag"), location=True),
    mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH: _Storage(),
    mavlink.MAV_CMD_NAV_LAND: _Storage(("u16", "", "", "sign"), location=True),
    mavlink.MAV_CMD_NAV_TAKEOFF: _Storage(("u16", "", "", ""), location=True),
    mavlink.MAV_CMD_NAV_SPLINE_WAYPOINT: _Storage(("u16", "", "", ""), location=True),
    mavlink.MAV_CMD_CONDITION_DELAY: _Storage(("f", "", "", "")),
    mavlink.MAV_CMD_CONDITION_DISTANCE: _Storage(("f", "", "", "")),
    mavlink.MAV_CMD_CONDITION_YAW: _Storage(("f", "f", "i8", "u8")),
    mavlink.MAV_CMD_DO_JUMP: _Storage(("u16", "i16", "", "")),
    mavlink.MAV_CMD_DO_CHANGE_SPEED: _Storage(("u8", "f", "f", "")),
    mavlink.MAV_CMD_DO_SET_SERVO: _Storage(("u8", "u16", "", "")),
    mavlink.MAV_CMD_DO_SET_ROI: _Storage(("u16", "", "", ""), location=True),
    mavlink.MAV_CMD_DO_DIGICAM_CONTROL: _Storage(("u8", "u8", "i8", "u8"), xy="u8"),
    mavlink.MAV_CMD_DO_MOUNT_CONTROL: _Storage(("f", "f", "f", "")),
    mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST: _Storage(("f", "", "u8", "")),  # meters, trigger now
    mavlink.MAV_CMD_IMAGE_START_CAPTURE: _Storage(("u8", "f", "u16", "u16")),
}
# AP_Mission::sanity_check_params: NaN is refused in every parameter but these.
_NAN_ALLOWED = {
    mavlink.MAV_CMD_NAV_WAYPOINT: {4},
    mavlink.MAV_CMD_NAV_LAND: {4},
    mavlink.MAV_CMD_NAV_TAKEOFF: {4},
}
_ABSOLUTE_FRAMES = {
    mavlink.MAV_FRAME_MISSION,
    mavlink.MAV_FRAME_GLOBAL,
    mavlink.MAV_FRAME_GLOBAL_INT,
}
_RELATIVE_FRAMES = {
    mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT,
    mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
}
_TERRAIN_FRAMES = {mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT, mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT}
LOCATION_ALT_MAX_M = 83_000.0
_RAW_XY = {mavlink.MAV_CMD_DO_DIGICAM_CONTROL, mavlink.MAV_CMD_DO_DIGICAM_CONFIGURE}
"""Commands whose x and y are not a location: MISSION_ITEM carries them unscaled."""


def stored_item(item: MissionItem) -> MissionItem:
    """``item`` as ArduCopter keeps it and sends it back when the mission is read.

    Parameters it does not keep come back as 0, integer ones truncated, floats as float32;
    the altitude is kept in whole centimetres (truncated); commands without a location
    come back with x = y = z = 0 and frame 0. Raises :class:`ItemRejected` where
    ArduPilot refuses the item (NaN or infinite parameter, unknown command or frame,
    latitude/longitude out of range).
    """
    params = (item.param1, item.param2, item.param3, item.param4)
    nan_allowed = _NAN_ALLOWED.get(item.command, set())
    for number, value in enumerate(params, start=1):
        if math.isinf(value) or (math.isnan(value) and number not in nan_allowed):
            raise ItemRejected(mavlink.MAV_MISSION_INVALID_PARAM1 + number - 1)
    storage = ARDUCOPTER_STORAGE.get(item.command)
    if storage is None:
        raise ItemRejected(mavlink.MAV_MISSION_UNSUPPORTED)
    kinds = storage.params
    kept = [_KEEP[kind](v) if kind else 0.0 for kind, v in zip(kinds, params, strict=True)]
    x = y = 0
    z, frame = 0.0, mavlink.MAV_FRAME_GLOBAL
    if storage.location:
        x, y, z, frame = _stored_location(item)
    elif storage.xy:
        x, y = (int(_KEEP[storage.xy](v)) for v in (item.x, item.y))
    return MissionItem(item.seq, frame, item.command, 0, 1, *kept, x, y, z)


def _stored_location(item: MissionItem) -> tuple[int, int, float, int]:
    """Latitude, longitude (1e-7 deg), altitude (m, via whole cm) and frame as kept."""
    if abs(item.x) > 90 * 10**7:
        raise ItemRejected(mavlink.MAV_MISSION_INVALID_PARAM5_X)
    if abs(item.y) > 180 * 10**7:
        raise ItemRejected(mavlink.MAV_MISSION_INVALID_PARAM6_Y)
    if math.isnan(item.z) or abs(item.z) >= LOCATION_ALT_MAX_M:
        raise ItemRejected(mavlink.MAV_MISSION_INVALID_PARAM7)
    if item.frame in _ABSOLUTE_FRAMES:
        frame = mavlink.MAV_FRAME_GLOBAL
    elif item.frame in _RELATIVE_FRAMES:
        frame = mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT
    elif item.frame in _TERRAIN_FRAMES:
        frame = mavlink.MAV_FRAME_GLOBAL_TERRAIN_ALT
    else:
        raise ItemRejected(mavlink.MAV_MISSION_UNSUPPORTED_FRAME)
    alt_cm = int(np.float32(item.z) * np.float32(100.0))  # int32 centimetres, truncated
    return item.x, item.y, float(np.float32(alt_cm) * np.float32(0.01)), frame


@dataclass(frozen=True)
class Trigger:
    """One camera shot: the pose that renders it and the metadata the drone records."""

    index: int
    time_s: float
    true_pose: Pose
    exif: FrameExif


@dataclass(frozen=True)
class Health:
    """What the vehicle reports about its sensors and battery before and during a flight."""

    gps_fix_type: int = mavlink.GPS_FIX_TYPE_3D_FIX
    satellites: int = 19
    hdop: float = 0.7
    battery_pct: float = 100.0
    """Charge at take-off; it drains linearly over ``battery_endurance_s`` of flight."""
    battery_endurance_s: float = BATTERY_ENDURANCE_S
    ekf_healthy: bool = True
    home_known: bool = True


class _Radio:
    """The autopilot's side of the link: writes pass through until it is muted."""

    def __init__(self, conn: mavutil.mavfile) -> None:
        self._conn = conn
        self.muted = threading.Event()

    def write(self, buf: bytes) -> None:
        if not self.muted.is_set():
            self._conn.write(buf)


@dataclass
class _Leg:
    """A straight 3-D move to a point (altitude above home), with speed limits."""

    easting_m: float
    northing_m: float
    altitude_m: float
    horizontal_speed_m_s: float
    vertical_speed_m_s: float
    lands: bool = False


class GnssError:
    """Per-flight GNSS error: a 1-3 m horizontal bias that random-walks, plus white noise.

    The autopilot steers on its GNSS estimate, so the TRUE position is the estimate minus
    the bias; the photo metadata records the estimate plus measurement noise.
    """

    def __init__(self, rng: np.random.Generator, bias_m: tuple[float, float] | None = None) -> None:
        """``bias_m``: the (east, north) bias at take-off, 1-3 m; a seeded one by default."""
        self._rng = rng
        angle = rng.uniform(0, 2 * math.pi)
        magnitude_m = rng.uniform(1.0, 3.0)
        self.bias_m = np.array([magnitude_m * math.sin(angle), magnitude_m * math.cos(angle)])
        if bias_m is not None:
            if not 1.0 <= math.hypot(*bias_m) <= 3.0:
                raise ValueError(f"GNSS bias {bias_m} m: its length must be 1-3 m")
            self.bias_m = np.array(bias_m, dtype=np.float64)
        self.altitude_bias_m = float(rng.normal(0.0, 0.5))
        self._time_s = 0.0

    def advance(self, time_s: float) -> None:
        """Random-walk the bias to ``time_s`` (2 cm / sqrt(s)), kept within 1-3 m."""
        dt_s = max(time_s - self._time_s, 0.0)
        self._time_s = time_s
        self.bias_m += self._rng.normal(0.0, 0.02 * math.sqrt(dt_s), 2)
        magnitude_m = float(np.hypot(*self.bias_m))
        self.bias_m *= min(max(magnitude_m, 1.0), 3.0) / max(magnitude_m, 1e-9)

    def noise_m(self, sigma_m: float, size: int = 2) -> np.ndarray:
        return self._rng.normal(0.0, sigma_m, size)


@dataclass
class _State:
    easting_m: float
    northing_m: float
    altitude_m: float = 0.0
    heading_deg: float = 0.0
    velocity_m_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    armed: bool = False
    mode: str = "STABILIZE"
    time_s: float = 0.0
    flight_time_s: float = 0.0
    legs: list[_Leg] = field(default_factory=list)
    hold_s: float = 0.0
    current_seq: int = 0
    item_running: bool = False
    speed_m_s: float | None = None
    trigger_distance_m: float = 0.0
    since_trigger_m: float = 0.0


class SimVehicle:
    """A simulated copter on ``udpout:127.0.0.1:port``; use as a context manager.

    With ``ortho_path``, ``camera`` and ``out_dir`` every trigger renders a JPEG into
    ``out_dir`` (plus ``poses.csv``); ``on_trigger`` replaces that with your own callback.
    Callbacks run on a worker thread so the autopilot keeps its timing while frames render.
    ``gnss_bias_m`` fixes the GNSS bias at take-off (see :class:`GnssError`).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        home_lonlat: tuple[float, float],
        ground_elevation_m: float,
        ortho_path: Path | None = None,
        camera: Camera | None = None,
        out_dir: Path | None = None,
        captured_at: datetime | None = None,
        speedup: float = 20.0,
        seed: int = 0,
        crs: str = "EPSG:32630",
        on_trigger: Callable[[Trigger], None] | None = None,
        health: Health | None = None,
        drop_link_after_items: int | None = None,
        gnss_bias_m: tuple[float, float] | None = None,
    ) -> None:
        self.port = port or free_udp_port()
        self.health = health or Health()
        self.drop_link_after_items = drop_link_after_items
        self.home_lonlat = home_lonlat
        self.ground_elevation_m = ground_elevation_m
        self.speedup = speedup
        self.start_time = captured_at or datetime.now(MOROCCO_TIME)
        self.parameters = {name: value for name, (value, _) in DEFAULT_PARAMETERS.items()}
        self.parameters["SIM_SPEEDUP"] = speedup
        self.mission: list[MissionItem] = []
        self.triggers: list[Trigger] = []
        self.frames: list[Path] = []
        self.errors: list[str] = []
        self._to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        self.home_easting_m, self.home_northing_m = self._to_crs.transform(*home_lonlat)
        north_e, north_n = self._to_crs.transform(home_lonlat[0], home_lonlat[1] + 0.001)
        # Headings fly in the grid; EXIF yaw is from true north (grid and true north differ
        # by the meridian convergence, ~0.4 deg at Berkane in UTM 30N).
        self._true_north_grid_deg = math.degrees(
            math.atan2(north_e - self.home_easting_m, north_n - self.home_northing_m)
        )
        self._state = _State(self.home_easting_m, self.home_northing_m)
        self._gnss = GnssError(np.random.default_rng(seed), gnss_bias_m)
        self._flight_camera: FlightCamera | None = None
        self._render_to: tuple[Path, Camera, Path] | None = None
        if on_trigger is None and ortho_path is not None:
            if camera is None or out_dir is None:
                raise ValueError("rendering frames needs camera and out_dir with ortho_path")
            self._render_to = (Path(ortho_path), camera, Path(out_dir))
            on_trigger = self._render
        self._on_trigger = on_trigger
        self._camera = camera
        self._seed = seed
        self._upload: list[MissionItem | None] | None = None
        self._last_request_s = 0.0
        self._pending: queue.Queue[Trigger | None] = queue.Queue()
        self._handled = 0
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conn: mavutil.mavfile | None = None
        self._radio: _Radio | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The connection string a ground station (DroneKit) listens on."""
        return f"udpin:127.0.0.1:{self.port}"

    def start(self) -> SimVehicle:
        """Open the ortho and the UDP link, and start the autopilot and camera threads."""
        if self._render_to is not None:
            self._flight_camera = FlightCamera(*self._render_to, seed=self._seed)
        self._conn = mavutil.mavlink_connection(
            f"udpout:127.0.0.1:{self.port}", source_system=1, source_component=1
        )
        self._radio = _Radio(self._conn)
        self._conn.mav.file = self._radio
        self._running.set()
        self._threads = [
            threading.Thread(target=self._autopilot_loop, name="sim-autopilot", daemon=True),
            threading.Thread(target=self._trigger_loop, name="sim-camera", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, *, drop_pending: bool = False) -> None:
        """Stop the autopilot, finish rendering queued frames (with ``drop_pending``, only the
        one being rendered: a failed flight does not wait for its backlog), close the link."""
        self._running.clear()
        if self._threads:
            autopilot, camera = self._threads
            autopilot.join()
            if drop_pending:
                self._drop_pending()
            self._pending.put(None)  # after the last possible shot: the queue is FIFO
            camera.join()
        self._threads = []
        if self._flight_camera is not None:
            self._flight_camera.close()
            self._flight_camera = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SimVehicle:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.stop(drop_pending=exc_type is not None)

    def _drop_pending(self) -> None:
        while True:
            try:
                self._pending.get_nowait()
            except queue.Empty:
                return

    def go_silent(self) -> None:
        """Lose the radio link: from now on the vehicle neither sends nor hears anything
        (it keeps flying what it was flying, as a real autopilot does)."""
        if self._radio is not None:
            self._radio.muted.set()

    @property
    def silent(self) -> bool:
        return self._radio is not None and self._radio.muted.is_set()

    def wait_for_frames(self, timeout_s: float = 60.0) -> None:
        """Block until every trigger so far has been rendered (or handled by ``on_trigger``),
        however long the backlog takes; raise :class:`VehicleError` only when no frame has been
        finished for ``timeout_s`` (a stalled camera, not a slow one)."""
        done, progress_s = self._handled, time.monotonic()
        report_s = progress_s + FRAMES_REPORT_PERIOD_S
        while self._handled < len(self.triggers):
            now_s = time.monotonic()
            if self._handled > done:
                done, progress_s = self._handled, now_s
            elif now_s - progress_s > timeout_s:
                stalled = f"camera stalled, no frame for {timeout_s:g} s"
                raise VehicleError(f"simulator: {stalled}: {self._frames_status()}")
            if now_s > report_s:
                log.info("simulator: %s", self._frames_status())
                report_s = now_s + FRAMES_REPORT_PERIOD_S
            time.sleep(0.02)

    def _frames_status(self) -> str:
        """How far the camera is, e.g. "412 of 935 frames rendered into /x/frames"."""
        where = "handled" if self._render_to is None else f"rendered into {self._render_to[2]}"
        return f"{self._handled} of {len(self.triggers)} frames {where}"

    @property
    def poses_path(self) -> Path | None:
        """The flight's ``poses.csv`` (true and reported pose per frame), when rendering."""
        return None if self._render_to is None else self._render_to[2] / "poses.csv"

    # -- threads -----------------------------------------------------------------------

    def _autopilot_loop(self) -> None:
        last_s = time.monotonic()
        next_heartbeat_s = next_telemetry_s = last_s
        while self._running.is_set():
            now_s = time.monotonic()
            try:
                self._receive()
                self._step((now_s - last_s) * self.speedup)
                if now_s >= next_heartbeat_s:
                    self._send_heartbeat()
                    heard = self._conn is not None and self._conn.messages.get("HEARTBEAT")
                    next_heartbeat_s = now_s + (HEARTBEAT_PERIOD_S if heard else HELLO_PERIOD_S)
                if now_s >= next_telemetry_s:
                    self._send_telemetry()
                    next_telemetry_s = now_s + TELEMETRY_PERIOD_S
                self._retry_mission_request(now_s)
            except Exception as exc:  # a crashed autopilot goes silent, as a real one would
                log.exception("simulated autopilot crashed")
                self.errors.append(f"autopilot: {exc}")
                return
            last_s = now_s
            time.sleep(TICK_S)

    def _trigger_loop(self) -> None:
        while (trigger := self._pending.get()) is not None:
            try:
                assert self._on_trigger is not None
                self._on_trigger(trigger)
            except Exception as exc:  # one bad frame must not end the flight
                log.exception("camera trigger %d failed", trigger.index)
                self.errors.append(f"trigger {trigger.index}: {exc}")
            self._handled += 1

    def _render(self, trigger: Trigger) -> None:
        assert self._flight_camera is not None
        self.frames.append(self._flight_camera.capture(trigger.true_pose, trigger.exif))

    # -- MAVLink in --------------------------------------------------------------------

    def _receive(self) -> None:
        assert self._conn is not None
        while (msg := self._conn.recv_match(blocking=False)) is not None:
            if self.silent:
                continue
            handler = getattr(self, f"_on_{msg.get_type().lower()}", None)
            target = getattr(msg, "target_system", 0)
            if handler is not None and target in (0, self._sysid):
                handler(msg)

    @property
    def _sysid(self) -> int:
        return int(self.parameters["SYSID_THISMAV"])

    @property
    def _mav(self) -> mavutil.mavlink.MAVLink:
        assert self._conn is not None
        return self._conn.mav

    def _on_param_request_list(self, msg: object) -> None:
        for index in range(len(self.parameters)):
            self._send_param(index)

    def _on_param_request_read(self, msg: mavlink.MAVLink_param_request_read_message) -> None:
        names = list(self.parameters)
        name = msg.param_id.rstrip("\x00") if isinstance(msg.param_id, str) else ""
        if msg.param_index >= 0 and msg.param_index < len(names):
            self._send_param(msg.param_index)
        elif name in self.parameters:
            self._send_param(names.index(name))

    def _on_param_set(self, msg: mavlink.MAVLink_param_set_message) -> None:
        name = msg.param_id.rstrip("\x00")
        if name not in self.parameters:
            self._status(mavlink.MAV_SEVERITY_WARNING, f"Unknown parameter {name}")
            return
        self.parameters[name] = msg.param_value
        if name == "SIM_SPEEDUP" and msg.param_value > 0:
            self.speedup = msg.param_value
        self._send_param(list(self.parameters).index(name))

    def _on_mission_clear_all(self, msg: object) -> None:
        self.mission = []
        self._state.current_seq = 0
        self._state.item_running = False
        self._mission_ack(mavlink.MAV_MISSION_ACCEPTED)

    def _on_mission_count(self, msg: mavlink.MAVLink_mission_count_message) -> None:
        if msg.count == 0:
            self._on_mission_clear_all(msg)
            return
        self._upload = [None] * msg.count
        self._request_item(0)

    def _on_mission_item_int(self, msg: mavlink.MAVLink_mission_item_int_message) -> None:
        self._store_item(msg, msg.x, msg.y)

    def _on_mission_item(self, msg: mavlink.MAVLink_mission_item_message) -> None:
        if msg.command in _RAW_XY:
            self._store_item(msg, round(msg.x), round(msg.y))
        else:
            self._store_item(msg, round(msg.x * 1e7), round(msg.y * 1e7))

    def _store_item(self, msg: Any, x: int, y: int) -> None:
        if self._upload is None:
            return
        expected = self._upload.index(None)
        if msg.seq != expected:
            self._request_item(expected)
            return
        names = ("seq", "frame", "command", "current", "autocontinue",
                 "param1", "param2", "param3", "param4")  # fmt: skip
        received = MissionItem(*(getattr(msg, n) for n in names), x, y, msg.z)
        try:
            self._upload[expected] = self._stored(received)
        except ItemRejected as rejected:  # ArduPilot ends the upload with the reason
            self._upload = None
            self._mission_ack(rejected.result)
            self._status(mavlink.MAV_SEVERITY_WARNING, f"Mission item {expected}: {rejected}")
            return
        if self.drop_link_after_items == expected + 1:
            self.go_silent()
        if None in self._upload:
            self._request_item(expected + 1)
            return
        self.mission = [item for item in self._upload if item is not None]
        self._upload = None
        self._state.current_seq = 0
        self._state.item_running = False
        self._mission_ack(mavlink.MAV_MISSION_ACCEPTED)
        self._status(mavlink.MAV_SEVERITY_INFO, f"Flight plan received: {len(self.mission)} items")

    def _stored(self, item: MissionItem) -> MissionItem:
        """What the vehicle's storage keeps of ``item`` (see :func:`stored_item`)."""
        return stored_item(item)

    def _request_item(self, seq: int) -> None:
        self._last_request_s = time.monotonic()
        self._mav.mission_request_send(255, 0, seq)

    def _retry_mission_request(self, now_s: float) -> None:
        if self._upload is not None and now_s - self._last_request_s > REQUEST_RETRY_S:
            self._request_item(self._upload.index(None))

    def _on_mission_request_list(self, msg: object) -> None:
        # Like ArduPilot, the mission always holds home as item 0.
        self._mav.mission_count_send(255, 0, max(len(self.mission), 1))

    def _on_mission_request_int(self, msg: mavlink.MAVLink_mission_request_int_message) -> None:
        self._send_item(msg.seq, as_int=True)

    def _on_mission_request(self, msg: mavlink.MAVLink_mission_request_message) -> None:
        self._send_item(msg.seq, as_int=False)

    def _send_item(self, seq: int, *, as_int: bool) -> None:
        if not 0 <= seq < max(len(self.mission), 1):
            self._mission_ack(mavlink.MAV_MISSION_INVALID_SEQUENCE)
            return
        if seq > 0:
            item = self.mission[seq]
        else:  # ArduPilot answers item 0 with its current home (zeros before it has one)
            lon, lat = self.home_lonlat if self.health.home_known else (0.0, 0.0)
            item = MissionItem(
                0,
                mavlink.MAV_FRAME_GLOBAL,
                mavlink.MAV_CMD_NAV_WAYPOINT,
                0,
                1,
                0,
                0,
                0,
                0,
                round(lat * 1e7),
                round(lon * 1e7),
                self.ground_elevation_m,
            )
        fields = (
            255,
            0,
            item.seq,
            item.frame,
            item.command,
            int(seq == self._state.current_seq),
            item.autocontinue,
            item.param1,
            item.param2,
            item.param3,
            item.param4,
        )
        if as_int:
            self._mav.mission_item_int_send(*fields, item.x, item.y, item.z)
        else:
            scale = 1.0 if item.command in _RAW_XY else 1e-7
            self._mav.mission_item_send(*fields, item.x * scale, item.y * scale, item.z)

    def _on_mission_set_current(self, msg: mavlink.MAVLink_mission_set_current_message) -> None:
        if 0 <= msg.seq < len(self.mission):
            self._state.current_seq = msg.seq
            self._state.item_running = False
            self._state.legs = []
            self._send_mission_current()

    def _on_set_mode(self, msg: mavlink.MAVLink_set_mode_message) -> None:
        self._set_mode(msg.custom_mode)

    def _on_command_long(self, msg: mavlink.MAVLink_command_long_message) -> None:
        result = self._command(msg.command, msg.param1, msg.param2, msg.param7)
        self._mav.command_ack_send(msg.command, result)

    def _command(self, command: int, param1: float, param2: float, param7: float) -> int:
        state = self._state
        if command == mavlink.MAV_CMD_COMPONENT_ARM_DISARM:
            return self._arm() if param1 == 1 else self._disarm(force=param2 == FORCE_DISARM)
        if command == mavlink.MAV_CMD_DO_SET_MODE:
            return self._set_mode(int(param2))
        if command == mavlink.MAV_CMD_NAV_TAKEOFF:
            if not state.armed or state.mode != "GUIDED" or param7 <= 0:
                return mavlink.MAV_RESULT_FAILED
            state.legs = [_Leg(state.easting_m, state.northing_m, param7, 0.0, self._speed_up)]
            return mavlink.MAV_RESULT_ACCEPTED
        if command == mavlink.MAV_CMD_MISSION_START:
            if not state.armed or not self.mission:
                return mavlink.MAV_RESULT_FAILED
            state.current_seq = max(int(param1), 1)
            state.item_running = False
            self._set_mode(COPTER_MODES["AUTO"])
            return mavlink.MAV_RESULT_ACCEPTED
        if command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            return self._set_mode(COPTER_MODES["RTL"])
        if command == mavlink.MAV_CMD_GET_HOME_POSITION:
            if not self.health.home_known:
                return mavlink.MAV_RESULT_FAILED
            self._send_home()
            return mavlink.MAV_RESULT_ACCEPTED
        if command == mavlink.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            self._send_autopilot_version()
            return mavlink.MAV_RESULT_ACCEPTED
        return mavlink.MAV_RESULT_UNSUPPORTED

    def _arm(self) -> int:
        state = self._state
        if state.mode not in ARMABLE_MODES:
            self._status(mavlink.MAV_SEVERITY_CRITICAL, f"Arm: Mode not armable ({state.mode})")
            return mavlink.MAV_RESULT_DENIED
        if failure := self._prearm_failure():
            self._status(mavlink.MAV_SEVERITY_CRITICAL, f"PreArm: {failure}")
            return mavlink.MAV_RESULT_DENIED
        state.armed = True
        self._send_heartbeat()
        return mavlink.MAV_RESULT_ACCEPTED

    def _prearm_failure(self) -> str:
        """ArduCopter's pre-arm checks on what the simulated sensors report ("" when fine)."""
        health = self.health
        if health.gps_fix_type < mavlink.GPS_FIX_TYPE_3D_FIX:
            return "GPS 1: Bad fix"
        if not health.ekf_healthy:
            return "EKF3 waiting for GPS config data"
        if not health.home_known:
            return "Need Position Estimate"
        if self.battery_fraction * 100 < 20:
            return "Battery 1 low capacity"
        return ""

    def _disarm(self, *, force: bool) -> int:
        if self._state.altitude_m > 0.1 and not force:
            return mavlink.MAV_RESULT_DENIED
        self._state.armed = False
        self._state.legs = []
        self._send_heartbeat()
        return mavlink.MAV_RESULT_ACCEPTED

    def _set_mode(self, custom_mode: int) -> int:
        names = {number: name for name, number in COPTER_MODES.items()}
        if custom_mode not in names:
            return mavlink.MAV_RESULT_DENIED
        state = self._state
        state.mode = names[custom_mode]
        state.legs = []
        state.hold_s = 0.0
        if state.mode == "AUTO":
            state.current_seq = max(state.current_seq, 1)
            state.item_running = False
        elif state.mode == "RTL" and state.armed:
            state.legs = self._return_legs()
        elif state.mode == "LAND" and state.armed:
            state.legs = self._landing_legs(state.easting_m, state.northing_m, state.altitude_m)
        self._send_heartbeat()
        return mavlink.MAV_RESULT_ACCEPTED

    # -- flight ------------------------------------------------------------------------

    @property
    def battery_fraction(self) -> float:
        """Charge left (0-1): the take-off charge less what the flight so far has used."""
        health = self.health
        used = self._state.flight_time_s / health.battery_endurance_s
        return max(0.0, health.battery_pct / 100.0 - used)

    @property
    def _speed_m_s(self) -> float:
        return self._state.speed_m_s or self.parameters["WPNAV_SPEED"] / 100.0

    @property
    def _speed_up(self) -> float:
        return self.parameters["WPNAV_SPEED_UP"] / 100.0

    def _landing_legs(self, easting_m: float, northing_m: float, from_m: float) -> list[_Leg]:
        """Descend at WPNAV_SPEED_DN to 10 m, then at LAND_SPEED to touchdown."""
        down_m_s = self.parameters["WPNAV_SPEED_DN"] / 100.0
        land_m_s = self.parameters["LAND_SPEED"] / 100.0
        legs = []
        if from_m > LAND_ALT_LOW_M:
            legs.append(_Leg(easting_m, northing_m, LAND_ALT_LOW_M, 0.0, down_m_s))
        legs.append(_Leg(easting_m, northing_m, 0.0, 0.0, land_m_s, lands=True))
        return legs

    def _return_legs(self) -> list[_Leg]:
        """ArduCopter RTL: climb to RTL_ALT if lower, fly home, descend and land."""
        state = self._state
        altitude_m = max(state.altitude_m, self.parameters["RTL_ALT"] / 100.0)
        speed_m_s = self.parameters["RTL_SPEED"] / 100.0 or self._speed_m_s
        return [
            _Leg(state.easting_m, state.northing_m, altitude_m, 0.0, self._speed_up),
            _Leg(self.home_easting_m, self.home_northing_m, altitude_m, speed_m_s, self._speed_up),
            *self._landing_legs(self.home_easting_m, self.home_northing_m, altitude_m),
        ]

    def _step(self, budget_s: float) -> None:
        """Advance simulated time by ``budget_s`` seconds."""
        state = self._state
        state.velocity_m_s = (0.0, 0.0, 0.0)
        while budget_s > 1e-9:
            if state.legs:
                budget_s = self._fly(state.legs[0], budget_s)
            elif state.hold_s > 0:
                used_s = min(state.hold_s, budget_s)
                state.hold_s -= used_s
                budget_s = self._pass_time(budget_s, used_s)
            elif not (state.armed and state.mode == "AUTO" and self._advance_mission()):
                budget_s = self._pass_time(budget_s, budget_s)

    def _pass_time(self, budget_s: float, used_s: float) -> float:
        self._state.time_s += used_s
        if self._state.armed:
            self._state.flight_time_s += used_s
        return budget_s - used_s

    def _fly(self, leg: _Leg, budget_s: float) -> float:
        """Move along ``leg`` for at most ``budget_s``; returns the unused time."""
        state = self._state
        d_east, d_north = leg.easting_m - state.easting_m, leg.northing_m - state.northing_m
        d_up = leg.altitude_m - state.altitude_m
        horizontal_m = math.hypot(d_east, d_north)
        duration_s = max(
            horizontal_m / leg.horizontal_speed_m_s if horizontal_m > 1e-6 else 0.0,
            abs(d_up) / leg.vertical_speed_m_s if abs(d_up) > 1e-6 else 0.0,
        )
        if horizontal_m > 0.5:
            state.heading_deg = math.degrees(math.atan2(d_east, d_north)) % 360.0
        used_s = min(duration_s, budget_s)
        fraction = used_s / duration_s if duration_s > 0 else 1.0
        if used_s > 0:
            state.velocity_m_s = (d_east / duration_s, d_north / duration_s, d_up / duration_s)
        self._advance_triggers(horizontal_m * fraction, d_east, d_north, d_up, horizontal_m)
        state.easting_m += d_east * fraction
        state.northing_m += d_north * fraction
        state.altitude_m += d_up * fraction
        budget_s = self._pass_time(budget_s, used_s)
        if fraction >= 1.0:
            state.legs.pop(0)
            if leg.lands:
                state.altitude_m = 0.0
                state.armed = False
                state.legs = []
                self._status(mavlink.MAV_SEVERITY_INFO, "Land complete, disarming")
                self._send_heartbeat()
                return 0.0
        return budget_s

    def _advance_triggers(
        self, travel_m: float, d_east: float, d_north: float, d_up: float, horizontal_m: float
    ) -> None:
        """Fire the camera at every trigger distance crossed by this move."""
        state = self._state
        if state.trigger_distance_m <= 0 or travel_m <= 0:
            return
        start = (state.easting_m, state.northing_m, state.altitude_m, state.time_s)
        speed_m_s = math.hypot(*state.velocity_m_s[:2]) or 1.0
        travelled_m = 0.0
        while state.since_trigger_m + (travel_m - travelled_m) >= state.trigger_distance_m:
            travelled_m += state.trigger_distance_m - state.since_trigger_m
            share = travelled_m / horizontal_m
            state.easting_m = start[0] + d_east * share
            state.northing_m = start[1] + d_north * share
            state.altitude_m = start[2] + d_up * share
            state.time_s = start[3] + travelled_m / speed_m_s
            self._shoot()
        state.since_trigger_m += travel_m - travelled_m
        state.easting_m, state.northing_m, state.altitude_m, state.time_s = start

    def _shoot(self) -> None:
        """Record a photo: true pose for the pixels, GNSS pose for the metadata."""
        state = self._state
        self._state.since_trigger_m = 0.0
        gnss = self._gnss
        gnss.advance(state.time_s)
        true_pose = Pose(
            state.easting_m - float(gnss.bias_m[0]),
            state.northing_m - float(gnss.bias_m[1]),
            state.altitude_m - gnss.altitude_bias_m,
            state.heading_deg,
        )
        noise_east_m, noise_north_m = gnss.noise_m(0.35)
        lon, lat = self._to_lonlat.transform(
            state.easting_m + noise_east_m, state.northing_m + noise_north_m
        )
        relative_m = state.altitude_m + float(gnss.noise_m(0.1, 1)[0])
        true_heading_deg = (state.heading_deg - self._true_north_grid_deg) % 360.0
        exif = FrameExif(
            lon_deg=lon,
            lat_deg=lat,
            altitude_msl_m=self.ground_elevation_m + relative_m + float(gnss.noise_m(0.3, 1)[0]),
            relative_altitude_m=relative_m,
            gimbal_yaw_deg=true_heading_deg + float(gnss.noise_m(1.5, 1)[0]),
            flight_yaw_deg=true_heading_deg,
            captured_at=self.start_time + timedelta(seconds=state.time_s),
        )
        trigger = Trigger(len(self.triggers) + 1, state.time_s, true_pose, exif)
        self.triggers.append(trigger)
        self._send_camera_feedback(trigger)
        if self._on_trigger is None:
            self._handled += 1
        else:
            self._pending.put(trigger)

    def _advance_mission(self) -> bool:
        """Finish the running item and start the next; False when the mission is over."""
        state = self._state
        if state.item_running:
            item = self.mission[state.current_seq]
            if item.command < mavlink.MAV_CMD_NAV_LAST:
                self._mav.mission_item_reached_send(item.seq)
            state.current_seq += 1
            state.item_running = False
            self._send_mission_current()
        if state.current_seq >= len(self.mission):
            return False
        state.item_running = True
        self._start_item(self.mission[state.current_seq])
        return True

    def _start_item(self, item: MissionItem) -> None:
        state = self._state
        altitude_m = item.z
        if item.frame in (mavlink.MAV_FRAME_GLOBAL, mavlink.MAV_FRAME_GLOBAL_INT):
            altitude_m = item.z - self.ground_elevation_m
        command = item.command
        if command == mavlink.MAV_CMD_NAV_TAKEOFF:
            target_m = max(altitude_m, state.altitude_m)
            state.legs = [_Leg(state.easting_m, state.northing_m, target_m, 0.0, self._speed_up)]
        elif command == mavlink.MAV_CMD_NAV_WAYPOINT:
            easting_m, northing_m = self._to_crs.transform(item.y / 1e7, item.x / 1e7)
            state.legs = [_Leg(easting_m, northing_m, altitude_m, self._speed_m_s, self._speed_up)]
            state.hold_s = item.param1 if item.param1 > 0 else 0.0  # NaN: no hold
        elif command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            state.legs = self._return_legs()
        elif command == mavlink.MAV_CMD_NAV_LAND:
            easting_m, northing_m = state.easting_m, state.northing_m
            if item.x or item.y:
                easting_m, northing_m = self._to_crs.transform(item.y / 1e7, item.x / 1e7)
            state.legs = [
                _Leg(easting_m, northing_m, state.altitude_m, self._speed_m_s, self._speed_up),
                *self._landing_legs(easting_m, northing_m, state.altitude_m),
            ]
        elif command == mavlink.MAV_CMD_DO_CHANGE_SPEED and item.param2 > 0:
            state.speed_m_s = item.param2
        elif command == mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            state.trigger_distance_m = item.param1 if item.param1 > 0 else 0.0
            state.since_trigger_m = 0.0
            if item.param3 == 1:  # ArduPilot shoots on p3 = 1 whatever the distance
                self._shoot()
        self._status(mavlink.MAV_SEVERITY_INFO, f"Mission: {item.seq} cmd {item.command}")

    # -- MAVLink out -------------------------------------------------------------------

    def _send_param(self, index: int) -> None:
        name = list(self.parameters)[index]
        self._mav.param_value_send(
            name.encode(),
            float(self.parameters[name]),
            DEFAULT_PARAMETERS[name][1],
            len(self.parameters),
            index,
        )

    def _mission_ack(self, result: int) -> None:
        self._mav.mission_ack_send(255, 0, result)

    def _status(self, severity: int, text: str) -> None:
        self._mav.statustext_send(severity, text.encode()[:50])

    def _send_heartbeat(self) -> None:
        state = self._state
        base_mode = (
            mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | mavlink.MAV_MODE_FLAG_STABILIZE_ENABLED
        )
        if state.mode in ("AUTO", "GUIDED", "RTL", "LAND"):
            base_mode |= mavlink.MAV_MODE_FLAG_GUIDED_ENABLED
        if state.armed:
            base_mode |= mavlink.MAV_MODE_FLAG_SAFETY_ARMED
        self._mav.heartbeat_send(
            mavlink.MAV_TYPE_QUADROTOR,
            mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA,
            base_mode,
            COPTER_MODES[state.mode],
            mavlink.MAV_STATE_ACTIVE if state.armed else mavlink.MAV_STATE_STANDBY,
        )
        self._send_home()

    def _send_home(self) -> None:
        if not self.health.home_known:
            return
        lon, lat = self.home_lonlat
        self._mav.home_position_send(
            round(lat * 1e7),
            round(lon * 1e7),
            round(self.ground_elevation_m * 1000),
            0.0,
            0.0,
            0.0,
            [1.0, 0.0, 0.0, 0.0],
            0.0,
            0.0,
            0.0,
        )

    def _send_mission_current(self) -> None:
        self._mav.mission_current_send(self._state.current_seq, len(self.mission))

    def _send_telemetry(self) -> None:
        state = self._state
        lon, lat = self._to_lonlat.transform(state.easting_m, state.northing_m)
        lat_e7, lon_e7 = round(lat * 1e7), round(lon * 1e7)
        msl_mm = round((self.ground_elevation_m + state.altitude_m) * 1000)
        v_east, v_north, v_up = state.velocity_m_s
        speed_m_s = math.hypot(v_east, v_north)
        boot_ms = round(state.time_s * 1000) & 0xFFFFFFFF
        heading_cdeg = round(state.heading_deg * 100) % 36000
        mav = self._mav
        mav.global_position_int_send(
            boot_ms,
            lat_e7,
            lon_e7,
            msl_mm,
            round(state.altitude_m * 1000),
            round(v_north * 100),
            round(v_east * 100),
            round(-v_up * 100),
            heading_cdeg,
        )
        health = self.health
        mav.gps_raw_int_send(
            boot_ms * 1000,
            health.gps_fix_type,
            lat_e7,
            lon_e7,
            msl_mm,
            round(health.hdop * 100),
            round(health.hdop * 160),
            round(speed_m_s * 100),
            heading_cdeg,
            health.satellites,
        )
        yaw_rad = math.radians((state.heading_deg + 180.0) % 360.0 - 180.0)
        mav.attitude_send(boot_ms, 0.0, 0.0, yaw_rad, 0.0, 0.0, 0.0)
        mav.vfr_hud_send(
            speed_m_s,
            speed_m_s,
            round(state.heading_deg) % 360,
            45 if state.armed else 0,
            self.ground_elevation_m + state.altitude_m,
            v_up,
        )
        remaining = self.battery_fraction
        sensors = (
            mavlink.MAV_SYS_STATUS_SENSOR_3D_GYRO
            | mavlink.MAV_SYS_STATUS_SENSOR_3D_ACCEL
            | mavlink.MAV_SYS_STATUS_SENSOR_GPS
            | mavlink.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE
        )
        mav.sys_status_send(
            sensors,
            sensors,
            sensors,
            250,
            round((13.8 + 3.0 * remaining) * 1000),
            1500 if state.armed else 50,
            round(remaining * 100),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        good = mavlink.EKF_ATTITUDE | (
            mavlink.EKF_VELOCITY_HORIZ
            | mavlink.EKF_VELOCITY_HORIZ
            | mavlink.EKF_VELOCITY_VERT
            | mavlink.EKF_POS_HORIZ_REL
            | mavlink.EKF_POS_HORIZ_ABS
            | mavlink.EKF_POS_VERT_ABS
            | mavlink.EKF_PRED_POS_HORIZ_REL
            | mavlink.EKF_PRED_POS_HORIZ_ABS
            if health.ekf_healthy
            else 0
        )
        mav.ekf_status_report_send(good, 0.02, 0.03, 0.02, 0.01, 0.0)
        self._send_mission_current()

    def _send_camera_feedback(self, trigger: Trigger) -> None:
        exif = trigger.exif
        self._mav.camera_feedback_send(
            round(trigger.time_s * 1e6),
            0,
            0,
            trigger.index,
            round(exif.lat_deg * 1e7),
            round(exif.lon_deg * 1e7),
            exif.altitude_msl_m,
            exif.relative_altitude_m,
            0.0,
            0.0,
            exif.flight_yaw_deg,
            self._camera.focal_length_mm if self._camera else 0.0,
            mavlink.CAMERA_FEEDBACK_PHOTO,
            trigger.index,
        )

    def _send_autopilot_version(self) -> None:
        capabilities = (
            mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT
            | mavlink.MAV_PROTOCOL_CAPABILITY_PARAM_FLOAT
            | mavlink.MAV_PROTOCOL_CAPABILITY_MISSION_INT
            | mavlink.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
            | mavlink.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT
        )
        version = (4 << 24) | (5 << 16) | (7 << 8) | mavlink.FIRMWARE_VERSION_TYPE_OFFICIAL
        self._mav.autopilot_version_send(
            capabilities, version, 0, 0, 0, [0] * 8, [0] * 8, [0] * 8, 0, 0, 0
        )


def main(
    world: Annotated[Path, typer.Option(help="Folder of a generated world (world.json).")],
    epoch: Annotated[str, typer.Option(help="Ortho epoch the camera sees (default: first).")] = "",
    port: Annotated[int, typer.Option(help="UDP port the ground station listens on.")] = 14550,
    out_dir: Annotated[Path, typer.Option(help="Where photos and poses.csv go.")] = Path("frames"),
    camera: Annotated[str, typer.Option(help="Camera key in flights/cameras.toml.")] = (
        "dji_mavic_3e"
    ),
    preview_factor: Annotated[int, typer.Option(help="Read the sensor out at 1/N.")] = 4,
    start: Annotated[str, typer.Option(help="Local (UTC+1) take-off time, HH:MM.")] = "09:30",
    speedup: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the GNSS error and image noise.")] = 0,
) -> None:
    """Run a simulated ArduCopter over a generated world until Ctrl-C."""
    from sim.world import load_world

    scene = load_world(world)
    epochs = dict(scene.epochs)
    epoch_name = epoch or scene.epochs[0][0]
    if epoch_name not in epochs:
        raise typer.BadParameter(f"unknown epoch {epoch_name!r}; known: {', '.join(epochs)}")
    take_off = datetime.combine(
        epochs[epoch_name], dt_time.fromisoformat(start), tzinfo=MOROCCO_TIME
    )
    with SimVehicle(
        port,
        home_lonlat=scene.home_lonlat,
        ground_elevation_m=scene.ground_elevation_m,
        ortho_path=scene.paths.ortho(epoch_name),
        camera=preview(get_camera(camera), preview_factor),
        out_dir=out_dir,
        captured_at=take_off,
        speedup=speedup,
        seed=seed,
        crs=scene.crs,
    ) as sim:
        typer.echo(f"Simulated ArduCopter at {sim.address} (x{speedup:g}); Ctrl-C stops it.")
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            typer.echo(f"Stopped; {len(sim.frames)} photos in {out_dir}")


if __name__ == "__main__":
    typer.run(main)
