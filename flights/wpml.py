"""DJI WPML routes (``.kmz`` for DJI Pilot 2 and FlightHub 2): waypoints and distance photos.

A WPML route is a zip holding ``wpmz/template.kml`` (what Pilot 2 shows and edits) and
``wpmz/waylines.wpml`` (what the aircraft flies), in the ``http://www.dji.com/wpmz/1.0.2``
namespace. Heights are relative to the take-off point; each run of photo legs is an action
group from its first to its last waypoint that takes a photo every trigger distance
(``multipleDistance`` + ``takePhoto``), after a nadir gimbal rotation at the first waypoint.

Of the MAVLink items, WPML holds home (as the reference take-off point), the take-off
height, waypoints relative to home, distance triggers and a final return to launch; any
other command is refused with a :class:`~core.errors.PlanError` rather than dropped.

The reference take-off point (``wpml:takeOffRefPoint``, optional, for display in Pilot 2:
the aircraft flies heights above where it actually takes off) is written only when the
ground height at home is known. DJI defines its height as WGS 84 ellipsoidal; Raqib writes
the height above mean sea level, having no geoid model, so Pilot 2 shows it off by the
geoid undulation (tens of metres in Morocco).

A route names its aircraft and camera (:class:`DjiAircraft`). Raqib writes routes only for
the aircraft DJI Pilot 2 flies with cameras of our database (Mavic 3E, Mavic 3M, Matrice
350 RTK + Zenmuse P1) and refuses others with :class:`UnsupportedAircraftError`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pymavlink import mavutil

from core.errors import InputError, PlanError
from core.io import atomic_path
from core.types import Camera
from flights.items import (
    FRAME_RELATIVE,
    MissionItem,
    MissionSource,
    PlanDocument,
    as_document,
    camera_distance_item,
    home_item,
    numbered,
    return_item,
    takeoff_item,
    waypoint_item,
)
from flights.kml import KML_NS, local_name

WPML_NS = "http://www.dji.com/wpmz/1.0.2"
TEMPLATE = "wpmz/template.kml"
WAYLINES = "wpmz/waylines.wpml"
HEIGHT_MODE = "relativeToStartPoint"
TURN_MODE = "toPointAndStopWithDiscontinuityCurvature"
NADIR_PITCH_DEG = -90.0
TAKEOFF_HEIGHT_RANGE_M = (2.0, 1500.0)
"""``wpml:takeOffSecurityHeight`` limits."""
DEFAULT_SPEED_M_S = 5.0
MAV = mavutil.mavlink


class UnsupportedAircraftError(PlanError):
    """No DJI WPML route can be written: DJI Pilot 2 does not fly this aircraft or camera."""


@dataclass(frozen=True)
class DjiAircraft:
    """The drone and camera a WPML route declares (DJI Cloud API, DJI WPML common elements).

    ``image_format`` lists the lenses whose photos are stored; DJI spells visible light
    ``visable``. ``None`` leaves it out, as Pilot 2 does for the Zenmuse P1.
    """

    name: str
    drone_enum: int
    drone_sub_enum: int
    payload_enum: int
    image_format: str | None


MAVIC_3E = DjiAircraft("DJI Mavic 3E", 77, 0, payload_enum=66, image_format="wide")
MAVIC_3M = DjiAircraft("DJI Mavic 3M", 77, 2, payload_enum=68, image_format="visable")
MAVIC_3M_MULTISPECTRAL = replace(MAVIC_3M, image_format="visable,narrow_band")
M350_P1 = DjiAircraft("DJI Matrice 350 RTK + Zenmuse P1", 89, 0, payload_enum=50, image_format=None)
DJI_AIRCRAFT = {"M3E": MAVIC_3E, "M3M": MAVIC_3M, "ZenmuseP1": M350_P1}
"""WPML aircraft by the camera database's DJI ``model``."""
RGB_BANDS = frozenset({"red", "green", "blue"})


def aircraft_for(camera: Camera) -> DjiAircraft | None:
    """The WPML aircraft that carries ``camera``; ``None`` if DJI Pilot 2 does not fly it.

    A Mavic 3M camera with bands beyond RGB stores its narrow-band photos too.
    """
    aircraft = DJI_AIRCRAFT.get(camera.model) if camera.make == "DJI" else None
    if aircraft is MAVIC_3M and not set(camera.bands) <= RGB_BANDS:
        return MAVIC_3M_MULTISPECTRAL
    return aircraft


def _aircraft(source: MissionSource, aircraft: DjiAircraft | None) -> DjiAircraft:
    """``aircraft`` if given, else the one of a Mission's camera; refused when unknown."""
    if aircraft is not None:
        return aircraft
    if isinstance(source, PlanDocument):
        raise UnsupportedAircraftError(
            "no DJI route (.kmz): the plan names no camera, hence no DJI aircraft to declare"
        )
    camera = source.spec.camera
    found = aircraft_for(camera)
    if found is None:
        supported = ", ".join(a.name for a in (MAVIC_3E, MAVIC_3M, M350_P1))
        raise UnsupportedAircraftError(
            f"no DJI route (.kmz) for {camera.name}: Raqib writes DJI Pilot 2 routes for "
            f"the {supported} only; fly the .plan or .waypoints"
        )
    return found


@dataclass(frozen=True)
class _PhotoRun:
    """Photos every ``distance_m`` from waypoint ``start`` to waypoint ``end`` (indexes)."""

    start: int
    end: int
    distance_m: float


@dataclass
class _Route:
    """What a WPML route holds, in its own terms (``takeoff_ref``: lat, lon, height AMSL)."""

    takeoff_ref: tuple[float, float, float] | None
    takeoff_height_m: float
    speed_m_s: float
    waypoints: list[tuple[float, float, float]] = field(default_factory=list)  # lon, lat, h
    photo_runs: list[_PhotoRun] = field(default_factory=list)
    go_home: bool = False


# --- MAVLink items <-> route -------------------------------------------------------------


def _route(document: PlanDocument) -> _Route:
    """The route of ``document``'s items; a command WPML cannot hold raises PlanError."""
    if len(document.items) < 2:
        raise PlanError("a DJI route needs home and at least one waypoint")
    home, *body = document.items
    route = _Route(
        takeoff_ref=(
            (home.lat or 0.0, home.lon or 0.0, home.alt or 0.0) if document.home_alt_known else None
        ),
        takeoff_height_m=0.0,
        speed_m_s=document.cruise_speed_m_s or DEFAULT_SPEED_M_S,
    )
    run_start: tuple[int, float] | None = None
    for k, item in enumerate(body, start=1):
        if route.go_home:
            raise PlanError(f"item {k} follows return-to-launch; DJI routes end at go-home")
        if item.command == MAV.MAV_CMD_NAV_TAKEOFF and not route.waypoints:
            route.takeoff_height_m = item.alt or 0.0
        elif item.command == MAV.MAV_CMD_NAV_WAYPOINT and item.frame == FRAME_RELATIVE:
            if item.p1:
                raise PlanError(f"item {k}: hold time {item.p1} s has no WPML equivalent here")
            route.waypoints.append((item.lon, item.lat, item.alt))  # type: ignore[arg-type]
        elif item.command == MAV.MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            here = max(len(route.waypoints) - 1, 0)
            if run_start is not None:
                route.photo_runs.append(_PhotoRun(run_start[0], here, run_start[1]))
            run_start = (here, item.p1) if item.p1 else None
        elif item.command == MAV.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            route.go_home = True
        else:
            raise PlanError(
                f"item {k} (MAVLink command {item.command}, frame {item.frame}) cannot be "
                "written as DJI WPML: routes hold take-off, waypoints relative to home, "
                "distance photo triggers and return to launch"
            )
    if not route.waypoints:
        raise PlanError("a DJI route needs at least one waypoint")
    if run_start is not None:
        route.photo_runs.append(_PhotoRun(run_start[0], len(route.waypoints) - 1, run_start[1]))
    low, high = TAKEOFF_HEIGHT_RANGE_M
    if not low <= route.takeoff_height_m <= high:
        raise PlanError(
            f"DJI take-off height must be within [{low}, {high}] m, got "
            f"{route.takeoff_height_m} m; start the mission with a NAV_TAKEOFF item"
        )
    return route


def _route_items(route: _Route) -> tuple[MissionItem, ...]:
    """The MAVLink items of ``route``, in the order :func:`flights.items.mission_items` uses.

    Without a reference take-off point, home is under the first waypoint at 0 m.
    """
    first_lon, first_lat, _ = route.waypoints[0]
    lat, lon, alt = route.takeoff_ref or (first_lat, first_lon, 0.0)
    items = [home_item(lat, lon, alt), takeoff_item(lat, lon, route.takeoff_height_m)]
    starting = _runs_by(route.photo_runs, "start")
    ending = _runs_by(route.photo_runs, "end")
    for k, (w_lon, w_lat, height_m) in enumerate(route.waypoints):
        items.append(waypoint_item(w_lat, w_lon, height_m))
        switches = [0.0 for run in ending.get(k, []) if run.start != k]
        switches += [run.distance_m for run in starting.get(k, [])]
        switches += [0.0 for run in ending.get(k, []) if run.start == k]
        items += [camera_distance_item(d) for d in switches]
    if route.go_home:
        items.append(return_item())
    return numbered(items)


def _runs_by(runs: list[_PhotoRun], end: str) -> dict[int, list[_PhotoRun]]:
    """``runs`` by their ``start`` or ``end`` waypoint index."""
    by_index: dict[int, list[_PhotoRun]] = {}
    for run in runs:
        by_index.setdefault(getattr(run, end), []).append(run)
    return by_index


# --- writing ----------------------------------------------------------------------------


def write_dji_kmz(
    source: MissionSource,
    path: str | Path,
    *,
    aircraft: DjiAircraft | None = None,
    home_alt_amsl_m: float | None = None,
) -> Path:
    """A DJI WPML route (``.kmz``) of the mission for ``aircraft``.

    ``aircraft`` defaults to the one carrying a Mission's camera (:func:`aircraft_for`);
    :class:`UnsupportedAircraftError` when there is none, before anything is written.
    """
    aircraft = _aircraft(source, aircraft)
    route = _route(as_document(source, home_alt_amsl_m))
    ET.register_namespace("", KML_NS)
    ET.register_namespace("wpml", WPML_NS)
    files = {
        TEMPLATE: _xml(_template(route, aircraft)),
        WAYLINES: _xml(_waylines(route, aircraft)),
    }
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
            archive.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return Path(path)


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _kml(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{KML_NS}}}{tag}")


def _wpml(parent: ET.Element, tag: str, value: str | float | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{WPML_NS}}}{tag}")
    if value is not None:
        element.text = value if isinstance(value, str) else _number(value)
    return element


def _number(value: float) -> str:
    """The shortest decimal that reads back as the same double, never in exponent form."""
    return np.format_float_positional(value, trim="-")


def _mission_config(parent: ET.Element, route: _Route, aircraft: DjiAircraft) -> ET.Element:
    config = _wpml(parent, "missionConfig")
    _wpml(config, "flyToWaylineMode", "safely")
    _wpml(config, "finishAction", "goHome" if route.go_home else "noAction")
    _wpml(config, "exitOnRCLost", "executeLostAction")
    _wpml(config, "executeRCLostAction", "goBack")
    _wpml(config, "takeOffSecurityHeight", route.takeoff_height_m)
    _wpml(config, "globalTransitionalSpeed", route.speed_m_s)
    _wpml(config, "globalRTHHeight", route.takeoff_height_m)
    drone = _wpml(config, "droneInfo")
    _wpml(drone, "droneEnumValue", aircraft.drone_enum)
    _wpml(drone, "droneSubEnumValue", aircraft.drone_sub_enum)
    payload = _wpml(config, "payloadInfo")
    _wpml(payload, "payloadEnumValue", aircraft.payload_enum)
    _wpml(payload, "payloadSubEnumValue", 0)
    _wpml(payload, "payloadPositionIndex", 0)
    return config


def _template(route: _Route, aircraft: DjiAircraft) -> ET.Element:
    root = ET.Element(f"{{{KML_NS}}}kml")
    document = _kml(root, "Document")
    _wpml(document, "author", "raqib")
    config = _mission_config(document, route, aircraft)
    if route.takeoff_ref is not None:
        _wpml(config, "takeOffRefPoint", ",".join(map(_number, route.takeoff_ref)))
    folder = _kml(document, "Folder")
    _wpml(folder, "templateType", "waypoint")
    _wpml(folder, "templateId", 0)
    system = _wpml(folder, "waylineCoordinateSysParam")
    _wpml(system, "coordinateMode", "WGS84")
    _wpml(system, "heightMode", HEIGHT_MODE)
    _wpml(folder, "autoFlightSpeed", route.speed_m_s)
    _wpml(folder, "globalHeight", route.takeoff_height_m)
    _wpml(folder, "gimbalPitchMode", "manual")
    heading = _wpml(folder, "globalWaypointHeadingParam")
    _wpml(heading, "waypointHeadingMode", "followWayline")
    _wpml(folder, "globalWaypointTurnMode", TURN_MODE)
    _wpml(folder, "globalUseStraightLine", 1)
    payload = _wpml(folder, "payloadParam")
    _wpml(payload, "payloadPositionIndex", 0)
    if aircraft.image_format is not None:
        _wpml(payload, "imageFormat", aircraft.image_format)
    photo_groups = _photo_groups(route)
    for k, (lon, lat, height_m) in enumerate(route.waypoints):
        placemark = _point(folder, k, lon, lat)
        _wpml(placemark, "height", height_m)
        _wpml(placemark, "useGlobalHeight", 0)
        _wpml(placemark, "useGlobalSpeed", 1)
        _wpml(placemark, "useGlobalHeadingParam", 1)
        _wpml(placemark, "useGlobalTurnParam", 1)
        _action_groups(placemark, k, photo_groups.get(k, []))
    return root


def _waylines(route: _Route, aircraft: DjiAircraft) -> ET.Element:
    root = ET.Element(f"{{{KML_NS}}}kml")
    document = _kml(root, "Document")
    _mission_config(document, route, aircraft)
    folder = _kml(document, "Folder")
    _wpml(folder, "templateId", 0)
    _wpml(folder, "executeHeightMode", HEIGHT_MODE)
    _wpml(folder, "waylineId", 0)
    _wpml(folder, "autoFlightSpeed", route.speed_m_s)
    photo_groups = _photo_groups(route)
    for k, (lon, lat, height_m) in enumerate(route.waypoints):
        placemark = _point(folder, k, lon, lat)
        _wpml(placemark, "executeHeight", height_m)
        _wpml(placemark, "waypointSpeed", route.speed_m_s)
        heading = _wpml(placemark, "waypointHeadingParam")
        _wpml(heading, "waypointHeadingMode", "followWayline")
        turn = _wpml(placemark, "waypointTurnParam")
        _wpml(turn, "waypointTurnMode", TURN_MODE)
        _wpml(turn, "waypointTurnDampingDist", 0)
        _action_groups(placemark, k, photo_groups.get(k, []))
    return root


def _point(folder: ET.Element, index: int, lon: float, lat: float) -> ET.Element:
    placemark = _kml(folder, "Placemark")
    point = _kml(placemark, "Point")
    _kml(point, "coordinates").text = f"{_number(lon)},{_number(lat)}"
    _wpml(placemark, "index", index)
    return placemark


def _photo_groups(route: _Route) -> dict[int, list[tuple[int, _PhotoRun]]]:
    """(action group id, run) of the photo runs by start waypoint; group 0 is the gimbal's."""
    groups: dict[int, list[tuple[int, _PhotoRun]]] = {}
    for group_id, run in enumerate(route.photo_runs, start=1):
        groups.setdefault(run.start, []).append((group_id, run))
    return groups


def _action_groups(
    placemark: ET.Element, index: int, photo_groups: list[tuple[int, _PhotoRun]]
) -> None:
    """The gimbal to nadir at waypoint 0, then the photo runs that start at ``index``."""
    if index == 0:
        group = _action_group(placemark, 0, 0, 0, "reachPoint", None)
        action = _action(group, 0, "gimbalRotate")
        for name, value in [
            ("gimbalRotateMode", "absoluteAngle"),
            ("gimbalPitchRotateEnable", 1),
            ("gimbalPitchRotateAngle", NADIR_PITCH_DEG),
            ("gimbalRollRotateEnable", 0),
            ("gimbalRollRotateAngle", 0),
            ("gimbalYawRotateEnable", 0),
            ("gimbalYawRotateAngle", 0),
            ("gimbalRotateTimeEnable", 0),
            ("gimbalRotateTime", 0),
            ("payloadPositionIndex", 0),
        ]:
            _wpml(action, name, value)
    for group_id, run in photo_groups:
        group = _action_group(
            placemark, group_id, run.start, run.end, "multipleDistance", run.distance_m
        )
        action = _action(group, 0, "takePhoto")
        _wpml(action, "payloadPositionIndex", 0)
        _wpml(action, "useGlobalPayloadLensIndex", 1)


def _action_group(
    placemark: ET.Element, group_id: int, start: int, end: int, trigger: str, param: float | None
) -> ET.Element:
    group = _wpml(placemark, "actionGroup")
    _wpml(group, "actionGroupId", group_id)
    _wpml(group, "actionGroupStartIndex", start)
    _wpml(group, "actionGroupEndIndex", end)
    _wpml(group, "actionGroupMode", "sequence")
    trigger_element = _wpml(group, "actionTrigger")
    _wpml(trigger_element, "actionTriggerType", trigger)
    if param is not None:
        _wpml(trigger_element, "actionTriggerParam", param)
    return group


def _action(group: ET.Element, action_id: int, function: str) -> ET.Element:
    action = _wpml(group, "action")
    _wpml(action, "actionId", action_id)
    _wpml(action, "actionActuatorFunc", function)
    return _wpml(action, "actionActuatorFuncParam")


# --- reading ----------------------------------------------------------------------------


def read_dji_kmz(path: str | Path) -> PlanDocument:
    """The mission items of a DJI WPML route written relative to the take-off point.

    Home is the template's reference take-off point (else the first waypoint at 0 m, and
    the document's home height is unknown).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if WAYLINES not in names:
                raise InputError(
                    path,
                    f"no {WAYLINES} inside: not a DJI WPML route (a Google Earth KMZ holds a "
                    "doc.kml; unzip it and read that KML instead)",
                )
            waylines = _parse(path, WAYLINES, archive.read(WAYLINES))
            template = _parse(path, TEMPLATE, archive.read(TEMPLATE)) if TEMPLATE in names else None
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a KMZ (zip) archive: {exc}") from exc
    route = _read_route(_Wpml(path, WAYLINES), waylines, template)
    return PlanDocument(
        items=_route_items(route),
        cruise_speed_m_s=route.speed_m_s,
        home_alt_known=route.takeoff_ref is not None,
    )


def _parse(path: Path, name: str, data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(path, f"{name} is not well-formed XML: {exc}") from exc


class _Wpml:
    """Namespace-agnostic access to WPML elements; failures name the file and element."""

    def __init__(self, path: Path, part: str) -> None:
        self.path = path
        self.part = part

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(self.path, f"{self.part} {where}: {problem}")

    def children(self, parent: ET.Element, name: str) -> list[ET.Element]:
        return [e for e in parent if local_name(e.tag) == name]

    def child(self, parent: ET.Element, name: str, where: str) -> ET.Element:
        found = self.children(parent, name)
        if not found:
            raise self.fail(where, f"missing <{name}>")
        return found[0]

    def text(self, parent: ET.Element, name: str, where: str) -> str:
        return (self.child(parent, name, where).text or "").strip()

    def number(self, parent: ET.Element, name: str, where: str) -> float:
        text = self.text(parent, name, where)
        try:
            return float(text)
        except ValueError:
            raise self.fail(f"{where}/{name}", f"not a number: {text!r}") from None


def _read_route(wpml: _Wpml, waylines: ET.Element, template: ET.Element | None) -> _Route:
    document = wpml.child(waylines, "Document", "kml")
    config = wpml.child(document, "missionConfig", "Document")
    folders = wpml.children(document, "Folder")
    if len(folders) != 1:
        raise wpml.fail("Document", f"holds {len(folders)} waylines (Folder); expected one")
    folder = folders[0]
    mode = wpml.text(folder, "executeHeightMode", "Folder")
    if mode != HEIGHT_MODE:
        raise wpml.fail("Folder/executeHeightMode", f"{mode!r} is not supported; use {HEIGHT_MODE}")
    placemarks = wpml.children(folder, "Placemark")
    waypoints = [_waypoint(wpml, p, k) for k, p in enumerate(placemarks)]
    if not waypoints:
        raise wpml.fail("Folder", "has no waypoint (Placemark)")
    route = _Route(
        takeoff_ref=_takeoff_ref(wpml, template),
        takeoff_height_m=wpml.number(config, "takeOffSecurityHeight", "missionConfig"),
        speed_m_s=wpml.number(folder, "autoFlightSpeed", "Folder"),
        waypoints=waypoints,
        go_home=wpml.text(config, "finishAction", "missionConfig") == "goHome",
    )
    for k, placemark in enumerate(placemarks):
        for group in wpml.children(placemark, "actionGroup"):
            run = _photo_run(wpml, group, f"Placemark[{k}]/actionGroup", len(waypoints))
            if run is not None:
                route.photo_runs.append(run)
    return route


def _waypoint(wpml: _Wpml, placemark: ET.Element, k: int) -> tuple[float, float, float]:
    where = f"Placemark[{k}]"
    index = wpml.text(placemark, "index", where)
    if index != str(k):
        raise wpml.fail(f"{where}/index", f"is {index!r}; waypoints must be numbered 0, 1, 2...")
    point = wpml.child(placemark, "Point", where)
    text = wpml.text(point, "coordinates", f"{where}/Point")
    try:
        lon, lat = (float(v) for v in text.split(",")[:2])
    except ValueError:
        raise wpml.fail(f"{where}/Point/coordinates", f"expected lon,lat, got {text!r}") from None
    return lon, lat, wpml.number(placemark, "executeHeight", where)


def _takeoff_ref(wpml: _Wpml, template: ET.Element | None) -> tuple[float, float, float] | None:
    if template is None:
        return None
    reader = _Wpml(wpml.path, TEMPLATE)
    config = reader.child(reader.child(template, "Document", "kml"), "missionConfig", "Document")
    if not reader.children(config, "takeOffRefPoint"):
        return None
    text = reader.text(config, "takeOffRefPoint", "missionConfig")
    try:
        lat, lon, alt = (float(v) for v in text.split(","))
    except ValueError:
        where = "missionConfig/takeOffRefPoint"
        raise reader.fail(where, f"expected lat,lon,alt, got {text!r}") from None
    return lat, lon, alt


def _photo_run(wpml: _Wpml, group: ET.Element, where: str, count: int) -> _PhotoRun | None:
    """The photo run of an action group; None for the nadir gimbal rotation we write."""
    trigger = wpml.child(group, "actionTrigger", where)
    kind = wpml.text(trigger, "actionTriggerType", f"{where}/actionTrigger")
    functions = [
        wpml.text(action, "actionActuatorFunc", f"{where}/action")
        for action in wpml.children(group, "action")
    ]
    if kind == "reachPoint" and set(functions) <= {"gimbalRotate"}:
        return None
    if kind != "multipleDistance" or functions != ["takePhoto"]:
        raise wpml.fail(
            where,
            f"{kind} trigger with actions {functions} is not supported; Raqib reads "
            "multipleDistance takePhoto groups (and gimbal rotations at a waypoint)",
        )
    start = int(wpml.number(group, "actionGroupStartIndex", where))
    end = int(wpml.number(group, "actionGroupEndIndex", where))
    if not 0 <= start <= end < count:
        raise wpml.fail(where, f"waypoint range {start}..{end} is outside 0..{count - 1}")
    distance_m = wpml.number(trigger, "actionTriggerParam", f"{where}/actionTrigger")
    if distance_m <= 0.0:
        raise wpml.fail(f"{where}/actionTrigger", f"photo distance must be > 0 m: {distance_m}")
    return _PhotoRun(start, end, distance_m)
