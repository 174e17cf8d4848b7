"""Mission files: QGroundControl ``.plan``, ArduPilot ``QGC WPL 110`` and KML.

Every writer takes a :class:`~core.types.Mission` or a list of
:class:`~flights.items.MissionItem` (item 0 = home) and writes atomically (a temporary file
beside the target, then a rename). Readers return mission items.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymavlink import mavutil, mavwp
from shapely import wkt
from shapely.geometry import MultiPoint

from core.errors import InputError
from core.io import atomic_path
from core.types import Mission
from flights.aoi import LONLAT, reproject
from flights.items import FRAME_GLOBAL, MissionItem, mission_items

GEOFENCE_MARGIN_M = 50.0
"""The inclusion fence surrounds the AOI, the flight path and home by this margin."""

QGC_FIRMWARE_ARDUPILOT = 3
QGC_VEHICLE_MULTIROTOR = 2
QGC_ALTITUDE_RELATIVE = 1
KML_NS = "http://www.opengis.net/kml/2.2"

MissionOrItems = Mission | Sequence[MissionItem]


def _items(source: MissionOrItems, home_alt_amsl_m: float | None) -> list[MissionItem]:
    return mission_items(source, home_alt_amsl_m) if isinstance(source, Mission) else list(source)


# --- QGroundControl .plan -------------------------------------------------------------


def _qgc_item(item: MissionItem) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "autoContinue": item.autocontinue,
        "command": item.command,
        "doJumpId": item.seq,
        "frame": item.frame,
        "params": list(item.params),
        "type": "SimpleItem",
    }
    if item.has_position:
        entry |= {"AMSLAltAboveTerrain": None, "Altitude": item.alt, "AltitudeMode": 1}
    return entry


def _geofence(mission: Mission) -> list[dict[str, Any]]:
    if not mission.aoi_wkt_lonlat:
        return []
    home = mission.home
    lonlats = [(w.lon_deg, w.lat_deg) for w in mission.waypoints] + [(home.lon_deg, home.lat_deg)]
    hull = wkt.loads(mission.aoi_wkt_lonlat).union(MultiPoint(lonlats)).convex_hull
    centre = hull.centroid
    crs = f"+proj=aeqd +lat_0={centre.y} +lon_0={centre.x} +datum=WGS84 +units=m"
    fence = reproject(reproject(hull, LONLAT, crs).buffer(GEOFENCE_MARGIN_M), crs, LONLAT)
    ring = [[lat, lon] for lon, lat in fence.exterior.coords[:-1]]
    return [{"inclusion": True, "polygon": ring, "version": 1}]


def write_qgc_plan(
    mission: MissionOrItems, path: str | Path, *, home_alt_amsl_m: float | None = None
) -> Path:
    """A QGroundControl Plan (ArduPilot multirotor), with an inclusion geofence for a Mission."""
    items = _items(mission, home_alt_amsl_m)
    home, body = items[0], items[1:]
    speed_m_s = mission.spec.speed_m_s if isinstance(mission, Mission) else 5.0
    plan = {
        "fileType": "Plan",
        "geoFence": {
            "circles": [],
            "polygons": _geofence(mission) if isinstance(mission, Mission) else [],
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
        "rallyPoints": {"points": [], "version": 2},
        "version": 1,
    }
    text = json.dumps(plan, indent=4, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _require(source: Path, mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise InputError(source, f"{where}: missing key {key!r}")
    return mapping[key]


def _simple_items(source: Path, entries: Any, where: str) -> list[dict[str, Any]]:
    """SimpleItems of a mission item list, with survey-like ComplexItems expanded."""
    if not isinstance(entries, list):
        raise InputError(source, f"{where} is not a list")
    simple = []
    for k, entry in enumerate(entries):
        kind = _require(source, entry, "type", f"{where}[{k}]")
        if kind == "SimpleItem":
            simple.append(entry)
        elif kind == "ComplexItem":
            transect = entry.get("TransectStyleComplexItem", {})
            if "Items" not in transect:
                complex_type = entry.get("complexItemType", "?")
                raise InputError(
                    source,
                    f"{where}[{k}]: ComplexItem {complex_type!r} has no "
                    "TransectStyleComplexItem.Items; re-save the plan with QGroundControl 4+",
                )
            simple += _simple_items(source, transect["Items"], f"{where}[{k}].Items")
        else:
            raise InputError(source, f"{where}[{k}]: unknown item type {kind!r}")
    return simple


def _plan_item(source: Path, seq: int, entry: dict[str, Any], where: str) -> MissionItem:
    params = _require(source, entry, "params", where)
    if not isinstance(params, list) or len(params) != 7:
        raise InputError(source, f"{where}: 'params' must be a list of 7 values")
    try:
        values = [None if v is None else float(v) for v in params]
        return MissionItem(
            seq,
            int(_require(source, entry, "command", where)),
            int(_require(source, entry, "frame", where)),
            *values,
            autocontinue=bool(entry.get("autoContinue", True)),
        )
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"{where}: bad value ({exc})") from exc


def read_qgc_plan(path: str | Path) -> list[MissionItem]:
    """The mission items of a QGroundControl ``.plan``: home (item 0) then every command.

    Survey and corridor items are expanded into the waypoints QGroundControl stored for them.
    """
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable QGroundControl plan: {exc}") from exc
    if _require(path, plan, "fileType", "plan") != "Plan":
        raise InputError(path, f"fileType is {plan['fileType']!r}, expected 'Plan'")
    mission = _require(path, plan, "mission", "plan")
    home_position = _require(path, mission, "plannedHomePosition", "mission")
    if not isinstance(home_position, list) or len(home_position) != 3:
        raise InputError(path, "mission.plannedHomePosition must be [lat, lon, alt]")
    try:
        lat, lon, alt = (float(v) for v in home_position)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"mission.plannedHomePosition: bad value ({exc})") from exc
    home = MissionItem(
        0,
        mavutil.mavlink.MAV_CMD_NAV_WAYPOINT,
        FRAME_GLOBAL,
        lat=lat,
        lon=lon,
        alt=alt,
        current=True,
    )
    entries = _simple_items(path, _require(path, mission, "items", "mission"), "mission.items")
    return [home] + [
        _plan_item(path, seq, entry, f"item {seq}") for seq, entry in enumerate(entries, start=1)
    ]


# --- ArduPilot QGC WPL 110 ------------------------------------------------------------


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


class _WaypointFile(mavwp.MAVWPLoader):
    """pymavlink's loader, saving every value at full precision.

    Its own ``save`` rounds positions to 1e-6 degree (about 0.1 m) and so cannot round-trip
    Mission Planner's or QGroundControl's coordinates.
    """

    def save(self, filename: str) -> None:
        lines = ["QGC WPL 110"]
        for w in self.wpoints:
            values = (w.param1, w.param2, w.param3, w.param4, w.x, w.y, w.z)
            fields = [w.seq, w.current, w.frame, w.command, *map(float, values), w.autocontinue]
            lines.append("\t".join(map(str, fields)))
        Path(filename).write_text("\n".join(lines) + "\n", encoding="ascii")


def write_waypoints(
    mission: MissionOrItems, path: str | Path, *, home_alt_amsl_m: float | None = None
) -> Path:
    """An ArduPilot ``QGC WPL 110`` waypoint file (item 0 = home), written by pymavlink."""
    loader = _WaypointFile()
    for item in _items(mission, home_alt_amsl_m):
        loader.add(
            mavutil.mavlink.MAVLink_mission_item_message(
                0,
                0,
                item.seq,
                item.frame,
                item.command,
                int(item.current),
                int(item.autocontinue),
                *(_nan(v) for v in item.params),
            )
        )
    with atomic_path(path) as tmp:
        loader.save(str(tmp))
    return Path(path)


def read_waypoints(path: str | Path) -> list[MissionItem]:
    """The mission items of a ``QGC WPL 110`` file, parsed by pymavlink."""
    path = Path(path)
    loader = mavwp.MAVWPLoader()
    try:
        loader.load(str(path))
    except (OSError, UnicodeDecodeError, ValueError, mavwp.MAVWPError) as exc:
        raise InputError(path, f"not a readable QGC WPL waypoint file: {exc}") from exc
    return [
        MissionItem(
            w.seq,
            w.command,
            w.frame,
            *(_none(v) for v in (w.param1, w.param2, w.param3, w.param4, w.x, w.y, w.z)),
            current=bool(w.current),
            autocontinue=bool(w.autocontinue),
        )
        for w in loader.wpoints
    ]


# --- KML ------------------------------------------------------------------------------


def write_kml(mission: Mission, path: str | Path) -> Path:
    """The flight path (home, waypoints at altitude, home) and the AOI, for Google Earth/QGIS."""
    ET.register_namespace("", KML_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{KML_NS}}}{tag}")
        element.text = text
        return element

    root = ET.Element(f"{{{KML_NS}}}kml")
    document = sub(root, "Document")
    sub(document, "name", mission.name)

    home = mission.home
    path_lla = [(home.lon_deg, home.lat_deg, 0.0)]
    path_lla += [(w.lon_deg, w.lat_deg, w.altitude_m) for w in mission.waypoints]
    path_lla.append(path_lla[0])
    flight = sub(document, "Placemark")
    sub(flight, "name", "flight path")
    line = sub(flight, "LineString")
    sub(line, "altitudeMode", "relativeToGround")
    coordinates = " ".join(f"{lon:.8f},{lat:.8f},{alt:.2f}" for lon, lat, alt in path_lla)
    sub(line, "coordinates", coordinates)

    if mission.aoi_wkt_lonlat:
        aoi = wkt.loads(mission.aoi_wkt_lonlat)
        area = sub(document, "Placemark")
        sub(area, "name", "AOI")
        polygon = sub(area, "Polygon")
        boundaries = [("outerBoundaryIs", aoi.exterior)]
        boundaries += [("innerBoundaryIs", hole) for hole in aoi.interiors]
        for tag, ring in boundaries:
            coordinates = " ".join(f"{x:.8f},{y:.8f}" for x, y in ring.coords)
            sub(sub(sub(polygon, tag), "LinearRing"), "coordinates", coordinates)

    tree = ET.ElementTree(root)
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
    return Path(path)
