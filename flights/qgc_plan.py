"""QGroundControl ``.plan`` files: mission, geofence (polygons and circles) and rally points.

Written for ArduPilot multirotors; read from any QGroundControl 4+ plan, with survey and
corridor items expanded into the waypoints QGroundControl stored for them. A malformed plan
is refused with an :class:`~core.errors.InputError` naming the JSON location
(``geoFence.polygons[1].polygon``) and what is wrong there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pymavlink import mavutil

from core.errors import InputError, PlanError
from core.io import atomic_path
from core.types import FenceZone, Waypoint
from flights.items import (
    FRAME_GLOBAL,
    MissionItem,
    MissionSource,
    PlanDocument,
    as_document,
    home_item,
)

QGC_FIRMWARE_ARDUPILOT = 3
QGC_VEHICLE_MULTIROTOR = 2
QGC_ALTITUDE_RELATIVE = 1
DEFAULT_SPEED_M_S = 5.0
"""Written when a document does not say its speed (QGroundControl's own default)."""

_ALTITUDE_MODES = {FRAME_GLOBAL: 2, 3: QGC_ALTITUDE_RELATIVE, 10: 4}
"""QGroundControl's AltitudeMode for a MAVLink frame: absolute, relative, terrain frame."""


# --- writing ----------------------------------------------------------------------------


def write_qgc_plan(
    source: MissionSource, path: str | Path, *, home_alt_amsl_m: float | None = None
) -> Path:
    """A QGroundControl Plan (ArduPilot multirotor) with the geofence and rally points.

    ``plannedHomePosition`` is the home item: its altitude is 0 when the ground height at
    home is unknown (QGroundControl shows the vehicle's home instead once connected).
    """
    document = as_document(source, home_alt_amsl_m)
    if not document.items:
        raise PlanError(f"{path}: the plan has no mission items (not even home) to write")
    home, *body = document.items
    if home.command != mavutil.mavlink.MAV_CMD_NAV_WAYPOINT or not home.has_position:
        raise PlanError(
            f"{path}: item 0 must be the home position (a positioned NAV_WAYPOINT), got "
            f"command {home.command} in frame {home.frame}; add a home item first"
        )
    speed_m_s = document.cruise_speed_m_s or DEFAULT_SPEED_M_S
    plan = {
        "fileType": "Plan",
        "geoFence": {
            "circles": [_circle(z) for z in document.fence if z.centre_lonlat is not None],
            "polygons": [_polygon(z) for z in document.fence if z.centre_lonlat is None],
            "version": 2,
        },
        "groundStation": "QGroundControl",
        "mission": {
            "cruiseSpeed": speed_m_s,
            "firmwareType": QGC_FIRMWARE_ARDUPILOT,
            "globalPlanAltitudeMode": QGC_ALTITUDE_RELATIVE,
            "hoverSpeed": speed_m_s,
            "items": [_qgc_item(item) for item in body],
            "plannedHomePosition": [home.lat, home.lon, home.alt],
            "vehicleType": QGC_VEHICLE_MULTIROTOR,
            "version": 2,
        },
        "rallyPoints": {
            "points": [[p.lat_deg, p.lon_deg, p.altitude_m] for p in document.rally_points],
            "version": 2,
        },
        "version": 1,
    }
    text = json.dumps(plan, indent=4, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _qgc_item(item: MissionItem) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "autoContinue": item.autocontinue,
        "command": item.command,
        "doJumpId": item.seq,
        "frame": item.frame,
        "params": list(item.params),
        "type": "SimpleItem",
    }
    if item.has_position and item.frame in _ALTITUDE_MODES:
        entry |= {
            "AMSLAltAboveTerrain": None,
            "Altitude": item.alt,
            "AltitudeMode": _ALTITUDE_MODES[item.frame],
        }
    return entry


def _polygon(zone: FenceZone) -> dict[str, Any]:
    ring = list(zone.polygon_lonlat)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()  # QGroundControl closes rings itself
    if len(ring) < 3:
        raise PlanError(f"a fence polygon needs at least 3 vertices, got {len(ring)}")
    return {"inclusion": zone.inclusion, "polygon": [[lat, lon] for lon, lat in ring], "version": 1}


def _circle(zone: FenceZone) -> dict[str, Any]:
    if zone.radius_m <= 0.0 or zone.centre_lonlat is None:
        raise PlanError(f"a fence circle needs a radius > 0 m, got {zone.radius_m}")
    lon, lat = zone.centre_lonlat
    circle = {"center": [lat, lon], "radius": zone.radius_m}
    return {"circle": circle, "inclusion": zone.inclusion, "version": 1}


# --- reading ----------------------------------------------------------------------------


class _Plan:
    """Typed access to a parsed plan; every failure names the file and the JSON location."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(self.path, f"{where}: {problem}")

    def get(self, mapping: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(mapping, dict):
            raise self.fail(where, f"expected a JSON object, got {_json_type(mapping)}")
        if key not in mapping:
            raise self.fail(where, f"missing key {key!r}")
        return self.check(mapping[key], f"{where}.{key}", kind)

    def check(self, value: Any, where: str, kind: type | tuple[type, ...]) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(where, f"expected {_kind_name(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(where, f"expected {_kind_name(kinds)}, got {_json_type(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        number = float(self.check(value, where, (int, float)))
        if not math.isfinite(number):
            raise self.fail(where, f"not a finite number: {value!r}")
        return number

    def lat_lon(self, value: Any, where: str, size: int = 2) -> tuple[float, ...]:
        """``[lat, lon]`` (``size`` 2) or ``[lat, lon, alt]`` (``size`` 3), range-checked."""
        values = self.check(value, where, list)
        if len(values) != size:
            shape = "[lat, lon]" if size == 2 else "[lat, lon, alt]"
            raise self.fail(where, f"expected {shape}, got {len(values)} values")
        numbers = tuple(self.number(v, f"{where}[{k}]") for k, v in enumerate(values))
        if not (-90.0 <= numbers[0] <= 90.0 and -180.0 <= numbers[1] <= 180.0):
            raise self.fail(where, f"latitude/longitude out of range: {numbers[:2]}")
        return numbers


def read_qgc_plan(path: str | Path) -> PlanDocument:
    """The mission items (home first), geofence and rally points of a QGroundControl plan."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"not a readable QGroundControl plan: {exc}") from exc
    reader = _Plan(path)
    file_type = reader.get(plan, "fileType", "plan", str)
    if file_type != "Plan":
        raise InputError(path, f"fileType is {file_type!r}, expected 'Plan'")
    mission = reader.get(plan, "mission", "plan", dict)
    home = _home(reader, mission)
    entries = _simple_items(reader, reader.get(mission, "items", "mission", list), "mission.items")
    items = [home] + [
        _plan_item(reader, seq, entry, where) for seq, (where, entry) in enumerate(entries, 1)
    ]
    speed = mission.get("cruiseSpeed")
    return PlanDocument(
        items=tuple(items),
        fence=_fence(reader, plan.get("geoFence", {})),
        rally_points=_rally_points(reader, plan.get("rallyPoints", {})),
        cruise_speed_m_s=None if speed is None else reader.number(speed, "mission.cruiseSpeed"),
    )


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _home(reader: _Plan, mission: dict[str, Any]) -> MissionItem:
    where = "mission.plannedHomePosition"
    position = reader.get(mission, "plannedHomePosition", "mission", list)
    lat, lon, alt = reader.lat_lon(position, where, size=3)
    return home_item(lat, lon, alt)


def _simple_items(reader: _Plan, entries: list[Any], where: str) -> list[tuple[str, Any]]:
    """(location, SimpleItem) pairs in flying order, survey-like ComplexItems expanded."""
    simple: list[tuple[str, Any]] = []
    for k, entry in enumerate(entries):
        here = f"{where}[{k}]"
        kind = reader.get(entry, "type", here, str)
        if kind == "SimpleItem":
            simple.append((here, entry))
        elif kind == "ComplexItem":
            transect = entry.get("TransectStyleComplexItem", {})
            if not isinstance(transect, dict) or "Items" not in transect:
                complex_type = entry.get("complexItemType", "?")
                raise reader.fail(
                    here,
                    f"ComplexItem {complex_type!r} has no TransectStyleComplexItem.Items; "
                    "re-save the plan with QGroundControl 4+",
                )
            inner = reader.check(transect["Items"], f"{here}.TransectStyleComplexItem.Items", list)
            simple += _simple_items(reader, inner, f"{here}.TransectStyleComplexItem.Items")
        else:
            raise reader.fail(here, f"unknown item type {kind!r}")
    return simple


def _plan_item(reader: _Plan, seq: int, entry: dict[str, Any], where: str) -> MissionItem:
    params = reader.get(entry, "params", where, list)
    if len(params) != 7:
        raise reader.fail(f"{where}.params", f"must be a list of 7 values, got {len(params)}")
    values = [
        None if v is None else reader.number(v, f"{where}.params[{k}]")
        for k, v in enumerate(params)
    ]
    return MissionItem(
        seq,
        reader.get(entry, "command", where, int),
        reader.get(entry, "frame", where, int),
        *values,
        autocontinue=reader.check(entry.get("autoContinue", True), f"{where}.autoContinue", bool),
    )


def _fence(reader: _Plan, fence: Any) -> tuple[FenceZone, ...]:
    reader.check(fence, "geoFence", dict)
    zones = []
    polygons = reader.check(fence.get("polygons", []), "geoFence.polygons", list)
    for k, entry in enumerate(polygons):
        where = f"geoFence.polygons[{k}]"
        vertices = reader.get(entry, "polygon", where, list)
        if len(vertices) < 3:
            raise reader.fail(f"{where}.polygon", f"needs at least 3 vertices, got {len(vertices)}")
        ring = [reader.lat_lon(v, f"{where}.polygon[{j}]") for j, v in enumerate(vertices)]
        zones.append(
            FenceZone(
                inclusion=reader.get(entry, "inclusion", where, bool),
                polygon_lonlat=tuple((lon, lat) for lat, lon in ring),
            )
        )
    circles = reader.check(fence.get("circles", []), "geoFence.circles", list)
    for k, entry in enumerate(circles):
        where = f"geoFence.circles[{k}]"
        circle = reader.get(entry, "circle", where, dict)
        lat, lon = reader.lat_lon(reader.get(circle, "center", f"{where}.circle", list), where)
        radius_m = reader.number(
            reader.get(circle, "radius", f"{where}.circle", (int, float)), f"{where}.circle.radius"
        )
        if radius_m <= 0.0:
            raise reader.fail(f"{where}.circle.radius", f"must be > 0 m, got {radius_m}")
        zones.append(
            FenceZone(
                inclusion=reader.get(entry, "inclusion", where, bool),
                centre_lonlat=(lon, lat),
                radius_m=radius_m,
            )
        )
    return tuple(zones)


def _rally_points(reader: _Plan, rally: Any) -> tuple[Waypoint, ...]:
    reader.check(rally, "rallyPoints", dict)
    points = reader.check(rally.get("points", []), "rallyPoints.points", list)
    return tuple(
        Waypoint(*reader.lat_lon(p, f"rallyPoints.points[{k}]", size=3))
        for k, p in enumerate(points)
    )


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = dict.fromkeys(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
    return " or ".join(names)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}
