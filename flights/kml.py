"""KML: the flight path and the surveyed area, for Google Earth and QGIS.

The path is home, every positioned navigation item, and home again when the mission
returns to launch. When the ground height at home is known the path is ``absolute``
(heights above mean sea level: home's plus each item's height above home), so it is drawn
right over slopes; when it is not, the path is ``relativeToGround`` with the heights above
home, which is right only over flat ground, and the placemark's description says so.

KML keeps no commands: a path read back is home, one waypoint per vertex and a return to
launch, equal to the written path to the written precision (1e-8 degree, about 1 mm;
altitudes to the centimetre). It cannot be flown (see :func:`flights.export.read_flyable_mission`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pymavlink import mavutil
from shapely import wkt
from shapely.geometry import Polygon

from core.errors import InputError
from core.io import atomic_path
from flights.items import (
    FRAME_MISSION,
    MissionItem,
    MissionSource,
    PlanDocument,
    as_document,
    home_item,
    numbered,
    return_item,
    waypoint_item,
)

KML_NS = "http://www.opengis.net/kml/2.2"
FLIGHT_PATH_NAME = "flight path"
AOI_NAME = "AOI"
ABSOLUTE = "absolute"
RELATIVE_TO_GROUND = "relativeToGround"
MAV = mavutil.mavlink
ABSOLUTE_FRAMES = (MAV.MAV_FRAME_GLOBAL, MAV.MAV_FRAME_GLOBAL_INT)
LonLatAlt = tuple[float, float, float]


def flight_path(items: tuple[MissionItem, ...] | list[MissionItem]) -> list[LonLatAlt]:
    """(lon, lat, height above home) of home, each positioned nav item, and home on return.

    Items in an absolute frame are taken relative to home's altitude; terrain frames are
    drawn as if the ground were as high as home.
    """
    if not items:
        return []
    home = items[0]
    start = (home.lon or 0.0, home.lat or 0.0, 0.0)
    path = [start]
    for item in items[1:]:
        if _on_path(item):
            height_m = (item.alt or 0.0) - (
                (home.alt or 0.0) if item.frame in ABSOLUTE_FRAMES else 0.0
            )
            path.append((item.lon, item.lat, height_m))  # type: ignore[arg-type]
        elif item.command == MAV.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            path.append(start)
    return path


def _on_path(item: MissionItem) -> bool:
    """A navigation command with a real position (ArduPilot's 0, 0 means "here")."""
    return (
        item.command < MAV.MAV_CMD_NAV_LAST
        and item.frame != FRAME_MISSION
        and item.lat is not None
        and item.lon is not None
        and (item.lat, item.lon) != (0.0, 0.0)
    )


def write_kml(
    source: MissionSource, path: str | Path, *, home_alt_amsl_m: float | None = None
) -> Path:
    """The flight path (if any items) and the AOI polygon (if known) as a KML document."""
    document = as_document(source, home_alt_amsl_m)
    path = Path(path)
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{{{KML_NS}}}kml")
    folder = _sub(root, "Document")
    _sub(folder, "name", path.stem)

    if document.items:
        flight = _sub(folder, "Placemark")
        _sub(flight, "name", FLIGHT_PATH_NAME)
        home_alt_m = (document.items[0].alt or 0.0) if document.home_alt_known else 0.0
        _sub(flight, "description", _heights_note(document.home_alt_known, home_alt_m))
        line = _sub(flight, "LineString")
        _sub(line, "altitudeMode", ABSOLUTE if document.home_alt_known else RELATIVE_TO_GROUND)
        coordinates = " ".join(
            f"{lon:.8f},{lat:.8f},{home_alt_m + alt:.2f}"
            for lon, lat, alt in flight_path(document.items)
        )
        _sub(line, "coordinates", coordinates)

    if document.aoi_wkt_lonlat:
        aoi = wkt.loads(document.aoi_wkt_lonlat)
        area = _sub(folder, "Placemark")
        _sub(area, "name", AOI_NAME)
        polygon = _sub(area, "Polygon")
        boundaries = [("outerBoundaryIs", aoi.exterior)]
        boundaries += [("innerBoundaryIs", hole) for hole in aoi.interiors]
        for tag, ring in boundaries:
            coordinates = " ".join(f"{x:.8f},{y:.8f}" for x, y in ring.coords)
            _sub(_sub(_sub(polygon, tag), "LinearRing"), "coordinates", coordinates)

    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    return path


def _heights_note(home_alt_known: bool, home_alt_m: float) -> str:
    if home_alt_known:
        return f"Heights above mean sea level; home (take-off) ground at {home_alt_m:.2f} m."
    return (
        "Heights are above the take-off point, drawn above the ground under each point: "
        "right only where the ground is as high as at take-off. The ground height at home "
        "was unknown; plan with a DEM for a path drawn true over slopes."
    )


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{KML_NS}}}{tag}")
    element.text = text
    return element


def read_kml(path: str | Path) -> PlanDocument:
    """The flight path (as waypoints) and the AOI polygon of a KML file.

    The path is the LineString placemark named ``flight path`` (else the first LineString);
    the AOI is the first Polygon (as in QGroundControl's polygon KML files). A file with
    neither is refused. An ``absolute`` path starts at home's ground height above sea level;
    any other altitude mode gives heights above home and an unknown home height.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(path, f"not a readable KML file: {exc}") from exc
    placemarks = _descendants(root, "Placemark")
    lines = [(_name(p), g) for p in placemarks for g in _descendants(p, "LineString")]
    polygons = [g for p in placemarks for g in _descendants(p, "Polygon")]
    if not lines and not polygons:
        raise InputError(path, "KML has no LineString (flight path) and no Polygon (AOI)")
    items: tuple[MissionItem, ...] = ()
    absolute = False
    if lines:
        named = [g for name, g in lines if name == FLIGHT_PATH_NAME]
        line = (named or [g for _, g in lines])[0]
        modes = [(e.text or "").strip() for e in _descendants(line, "altitudeMode")]
        absolute = modes[:1] == [ABSOLUTE]
        items = _path_items(_coordinates(path, line, "LineString"), absolute)
    aoi = _polygon(path, polygons[0]).wkt if polygons else ""
    return PlanDocument(items=items, aoi_wkt_lonlat=aoi, home_alt_known=absolute)


def _path_items(vertices: list[tuple[float, ...]], absolute: bool) -> tuple[MissionItem, ...]:
    """Home, a waypoint per vertex, and a return to launch if the path ends at home."""
    (home_lon, home_lat, home_alt), *rest = (_lon_lat_alt(v) for v in vertices)
    home_alt_m = home_alt if absolute else 0.0
    returns = len(rest) > 0 and rest[-1][:2] == (home_lon, home_lat)
    items = [home_item(home_lat, home_lon, home_alt_m)]
    for lon, lat, alt in rest[:-1] if returns else rest:
        items.append(waypoint_item(lat, lon, alt - home_alt_m))
    if returns:
        items.append(return_item())
    return numbered(items)


def _lon_lat_alt(vertex: tuple[float, ...]) -> LonLatAlt:
    return (vertex[0], vertex[1], vertex[2] if len(vertex) > 2 else 0.0)


def _polygon(path: Path, polygon: ET.Element) -> Polygon:
    rings: dict[str, list[list[tuple[float, ...]]]] = {"outerBoundaryIs": [], "innerBoundaryIs": []}
    for boundary in polygon:
        if local_name(boundary.tag) in rings:
            coords = _coordinates(path, boundary, local_name(boundary.tag))
            rings[local_name(boundary.tag)].append([v[:2] for v in coords])
    if len(rings["outerBoundaryIs"]) != 1 or len(rings["outerBoundaryIs"][0]) < 4:
        raise InputError(path, "KML Polygon needs one outerBoundaryIs ring of at least 3 vertices")
    return Polygon(rings["outerBoundaryIs"][0], rings["innerBoundaryIs"])


def _coordinates(path: Path, element: ET.Element, where: str) -> list[tuple[float, ...]]:
    texts = [e.text or "" for e in _descendants(element, "coordinates")]
    if not texts:
        raise InputError(path, f"KML {where} has no <coordinates>")
    vertices = []
    for token in texts[0].split():
        try:
            vertex = tuple(float(v) for v in token.split(","))
        except ValueError:
            vertex = ()
        if len(vertex) not in (2, 3):
            raise InputError(path, f"KML {where}: bad coordinate {token!r}, expected lon,lat[,alt]")
        vertices.append(vertex)
    if not vertices:
        raise InputError(path, f"KML {where} has empty <coordinates>")
    return vertices


def _descendants(element: ET.Element, name: str) -> list[ET.Element]:
    """``element`` and everything under it called ``name`` (in any namespace)."""
    return [e for e in element.iter() if local_name(e.tag) == name]


def _name(placemark: ET.Element) -> str:
    names = [e.text or "" for e in placemark if local_name(e.tag) == "name"]
    return names[0].strip() if names else ""


def local_name(tag: str) -> str:
    """An XML tag without its namespace (KML 2.2, Google's 2.1, DJI WPML or none)."""
    return tag.rsplit("}", 1)[-1]
