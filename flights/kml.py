"""KML: the flight path and the surveyed area, for Google Earth and QGIS.

The path is home (at 0 m), every positioned navigation item at its altitude above home, and
home again when the mission returns to launch. KML keeps no commands: a path read back is
home, one waypoint per vertex and a return to launch, equal to the written path to the
written precision (1e-8 degree, about 1 mm; altitudes to the centimetre).
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
    FRAME_GLOBAL,
    FRAME_MISSION,
    FRAME_RELATIVE,
    MissionItem,
    MissionSource,
    PlanDocument,
    as_document,
)

KML_NS = "http://www.opengis.net/kml/2.2"
FLIGHT_PATH_NAME = "flight path"
AOI_NAME = "AOI"
MAV = mavutil.mavlink
LonLatAlt = tuple[float, float, float]


def flight_path(items: tuple[MissionItem, ...] | list[MissionItem]) -> list[LonLatAlt]:
    """(lon, lat, alt above home) of home, each positioned nav item, and home on return."""
    if not items:
        return []
    home = items[0]
    start = (home.lon or 0.0, home.lat or 0.0, 0.0)
    path = [start]
    for item in items[1:]:
        if _on_path(item):
            path.append((item.lon, item.lat, item.alt or 0.0))  # type: ignore[arg-type]
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


def write_kml(source: MissionSource, path: str | Path) -> Path:
    """The flight path (if any items) and the AOI polygon (if known) as a KML document."""
    document = as_document(source)
    path = Path(path)
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{{{KML_NS}}}kml")
    folder = _sub(root, "Document")
    _sub(folder, "name", path.stem)

    if document.items:
        flight = _sub(folder, "Placemark")
        _sub(flight, "name", FLIGHT_PATH_NAME)
        line = _sub(flight, "LineString")
        _sub(line, "altitudeMode", "relativeToGround")
        coordinates = " ".join(
            f"{lon:.8f},{lat:.8f},{alt:.2f}" for lon, lat, alt in flight_path(document.items)
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


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{KML_NS}}}{tag}")
    element.text = text
    return element


def read_kml(path: str | Path) -> PlanDocument:
    """The flight path (as waypoints) and the AOI polygon of a KML file.

    The path is the LineString placemark named ``flight path`` (else the first LineString);
    the AOI is the first Polygon (as in QGroundControl's polygon KML files). A file with
    neither is refused.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(path, f"not a readable KML file: {exc}") from exc
    placemarks = [e for e in root.iter() if _local(e.tag) == "Placemark"]
    lines = [(_name(p), g) for p in placemarks for g in p.iter() if _local(g.tag) == "LineString"]
    polygons = [g for p in placemarks for g in p.iter() if _local(g.tag) == "Polygon"]
    if not lines and not polygons:
        raise InputError(path, "KML has no LineString (flight path) and no Polygon (AOI)")
    items: tuple[MissionItem, ...] = ()
    if lines:
        named = [g for name, g in lines if name == FLIGHT_PATH_NAME]
        line = (named or [g for _, g in lines])[0]
        items = _path_items(path, _coordinates(path, line, "LineString"))
    aoi = _polygon(path, polygons[0]).wkt if polygons else ""
    return PlanDocument(items=items, aoi_wkt_lonlat=aoi)


def _path_items(path: Path, vertices: list[tuple[float, ...]]) -> tuple[MissionItem, ...]:
    (home_lon, home_lat, home_alt), *rest = (_lon_lat_alt(v) for v in vertices)
    returns = len(rest) > 0 and rest[-1][:2] == (home_lon, home_lat)
    home = MissionItem(
        0,
        MAV.MAV_CMD_NAV_WAYPOINT,
        FRAME_GLOBAL,
        lat=home_lat,
        lon=home_lon,
        alt=home_alt,
        current=True,
    )
    items = [home]
    for lon, lat, alt in rest[:-1] if returns else rest:
        items.append(
            MissionItem(
                len(items),
                MAV.MAV_CMD_NAV_WAYPOINT,
                FRAME_RELATIVE,
                p4=None,
                lat=lat,
                lon=lon,
                alt=alt,
            )
        )
    if returns:
        items.append(MissionItem(len(items), MAV.MAV_CMD_NAV_RETURN_TO_LAUNCH, FRAME_MISSION))
    return tuple(items)


def _lon_lat_alt(vertex: tuple[float, ...]) -> LonLatAlt:
    return (vertex[0], vertex[1], vertex[2] if len(vertex) > 2 else 0.0)


def _polygon(path: Path, polygon: ET.Element) -> Polygon:
    rings: dict[str, list[list[tuple[float, ...]]]] = {"outerBoundaryIs": [], "innerBoundaryIs": []}
    for boundary in polygon:
        if _local(boundary.tag) in rings:
            coords = _coordinates(path, boundary, _local(boundary.tag))
            rings[_local(boundary.tag)].append([v[:2] for v in coords])
    if len(rings["outerBoundaryIs"]) != 1 or len(rings["outerBoundaryIs"][0]) < 4:
        raise InputError(path, "KML Polygon needs one outerBoundaryIs ring of at least 3 vertices")
    return Polygon(rings["outerBoundaryIs"][0], rings["innerBoundaryIs"])


def _coordinates(path: Path, element: ET.Element, where: str) -> list[tuple[float, ...]]:
    texts = [e.text or "" for e in element.iter() if _local(e.tag) == "coordinates"]
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


def _name(placemark: ET.Element) -> str:
    names = [e.text or "" for e in placemark if _local(e.tag) == "name"]
    return names[0].strip() if names else ""


def _local(tag: str) -> str:
    """An XML tag without its namespace (KML 2.2, Google's 2.1 or none)."""
    return tag.rsplit("}", 1)[-1]
