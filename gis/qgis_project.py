"""A QGIS project (``.qgz``) beside a published GeoPackage: its layers in a sensible order
with their default styles, the rasters with renderers, record links and relations.

The project refers to every file by a path relative to itself, so an epoch folder can be
moved or copied whole. Styles come from the GeoPackage's own ``layer_styles`` table: the
project shows each layer exactly as QGIS shows it when the GeoPackage is opened alone.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pyogrio
import rasterio
from pyproj import CRS
from rasterio.warp import transform_bounds

from core.errors import InputError
from core.io import atomic_path
from gis.publish import STYLES_TABLE

QGIS_VERSION = "3.22.0"
VECTOR_ORDER = (
    ("flagged_parcels", True),
    ("work_list", False),
    ("projects", True),
    ("new_buildings", True),
    ("buildings", True),
    ("missing_trees", True),
    ("tree_crowns", True),
    ("parcel_trend", False),
    ("management_zones", False),
    ("crop_health_parcels", True),
    ("parcels", True),
    ("mission", False),
    ("images", False),
)
"""Vector layers from top to bottom, and whether each is shown when the project opens;
layers not named here follow, hidden. Rasters lie under every vector layer."""
GEOMETRY_NAMES = {"Point": "Point", "LineString": "Line", "Polygon": "Polygon"}
RASTER_DISPLAY = {"crop_health": (0.6, False), "vegetation_index": (1.0, False)}
"""Raster (file stem) → (opacity, shown when the project opens); others: opaque, shown."""


@dataclass(frozen=True)
class Relation:
    """A QGIS relation: each ``referenced`` feature lists the ``referencing`` rows that
    share its ``field`` (e.g. a parcel's flags)."""

    id: str
    name: str
    referenced: str
    referencing: str
    field: str


RELATIONS = (
    Relation("parcel_flags", "Flags on the parcel", "parcels", "flagged_parcels", "parcel_id"),
    Relation("project_progress", "Progress history", "projects", "project_history", "project_id"),
    Relation(
        "parcel_zones",
        "Management zones",
        "crop_health_parcels",
        "management_zones",
        "parcel_id",
    ),  # fmt: skip
    Relation(
        "parcel_index_history",
        "Index history",
        "crop_health_parcels",
        "parcel_history",
        "parcel_id",
    ),  # fmt: skip
)
"""Written when both layers are in the project."""


@dataclass(frozen=True)
class _Layer:
    id: str
    name: str
    source: str
    provider: str
    element: ET.Element
    visible: bool


def write_qgis_project(
    geopackage: Path,
    rasters: Sequence[Path] = (),
    tables: Sequence[tuple[Path, str]] = (),
    *,
    title: str = "Raqib",
) -> Path:
    """Write ``raqib.qgz`` beside ``geopackage`` (same stem) showing its layers, ``tables``
    from other GeoPackages (``(path, table)``, e.g. the workspace's project history) and
    ``rasters`` (missing files are left out); returns its path.

    A raster with a colour table and a ``classes`` tag (``"healthy,stressed,bare"`` for
    codes 1, 2, 3) is drawn with those colours and names, one with three or more bands as
    RGB, any other as grey between its minimum and maximum.
    """
    geopackage = Path(geopackage)
    if not geopackage.is_file():
        raise InputError(geopackage, "no such GeoPackage to make a QGIS project of")
    target = geopackage.with_suffix(".qgz")
    folder = target.parent
    styles = _default_styles(geopackage)
    names = [str(n) for n in pyogrio.list_layers(geopackage)[:, 0] if n != STYLES_TABLE]
    visible = dict(VECTOR_ORDER)
    ordered = [n for n, _ in VECTOR_ORDER if n in names] + [n for n in names if n not in visible]
    layers = [
        _vector(folder, geopackage, name, visible.get(name, False), styles.get(name))
        for name in ordered
    ]
    layers += [
        _vector(folder, path, table, False, None) for path, table in tables if path.is_file()
    ]
    rasters = [Path(r) for r in rasters if Path(r).is_file()]
    layers += [_raster(folder, path) for path in rasters]
    crs = _project_crs(geopackage, names, rasters)
    root = _project(title, crs, layers, _extent(geopackage, names, rasters, crs))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    with atomic_path(target) as partial:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(
                f"{target.stem}.qgs",
                f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n",
            )
    return target


# -- layers ------------------------------------------------------------------------------


def _default_styles(geopackage: Path) -> dict[str, ET.Element]:
    """Layer name → the root of its default QML in the GeoPackage's ``layer_styles``."""
    if STYLES_TABLE not in pyogrio.list_layers(geopackage)[:, 0]:
        return {}
    rows = pyogrio.read_dataframe(geopackage, layer=STYLES_TABLE, read_geometry=False)
    rows = rows[rows["useAsDefault"].astype(bool)]
    return {row.f_table_name: ET.fromstring(row.styleQML) for row in rows.itertuples()}


def _relative(folder: Path, path: Path) -> str:
    relative = Path(os.path.relpath(path, folder)).as_posix()
    return relative if relative.startswith("..") else f"./{relative}"


def _vector(
    folder: Path, geopackage: Path, name: str, visible: bool, style: ET.Element | None
) -> _Layer:
    info = pyogrio.read_info(geopackage, layer=name)
    geometry = info["geometry_type"]
    layer_id = f"{geopackage.stem}_{name}"
    source = f"{_relative(folder, geopackage)}|layername={name}"
    element = ET.Element(
        "maplayer",
        type="vector",
        geometry=_geometry_name(geometry),
        wkbType=geometry or "NoGeometry",
    )
    ET.SubElement(element, "id").text = layer_id
    ET.SubElement(element, "datasource").text = source
    ET.SubElement(element, "layername").text = name
    if info["crs"]:
        element.append(_srs("srs", CRS.from_user_input(info["crs"])))
    ET.SubElement(element, "provider", encoding="UTF-8").text = "ogr"
    if style is not None:
        element.extend(child for child in style if child.tag != "layerGeometryType")
    return _Layer(layer_id, name, source, "ogr", element, visible)


def _geometry_name(ogr_type: str | None) -> str:
    if not ogr_type:
        return "No geometry"
    base = ogr_type.removeprefix("Multi").split(" ")[0]
    return GEOMETRY_NAMES.get(base, "Unknown geometry")


def _raster(folder: Path, path: Path) -> _Layer:
    name = path.stem
    source = _relative(folder, path)
    element = ET.Element("maplayer", type="raster")
    ET.SubElement(element, "id").text = f"raster_{name}"
    ET.SubElement(element, "datasource").text = source
    ET.SubElement(element, "layername").text = name
    with rasterio.open(path) as src:
        if src.crs:
            element.append(_srs("srs", CRS.from_user_input(src.crs.to_wkt())))
        ET.SubElement(element, "provider").text = "gdal"
        pipe = ET.SubElement(element, "pipe")
        opacity, shown = RASTER_DISPLAY.get(name, (1.0, True))
        pipe.append(_raster_renderer(src, opacity))
    return _Layer(f"raster_{name}", name, source, "gdal", element, shown)


def _raster_renderer(src: rasterio.io.DatasetReader, opacity: float) -> ET.Element:
    common = {"opacity": f"{opacity}", "alphaBand": "-1", "nodataColor": ""}
    classes = src.tags().get("classes")
    if src.count == 1 and classes and src.colorinterp[0].name == "palette":
        colours = src.colormap(1)
        renderer = ET.Element("rasterrenderer", type="paletted", band="1", **common)
        palette = ET.SubElement(renderer, "colorPalette")
        for code, label in enumerate(classes.split(","), start=1):
            r, g, b, a = colours.get(code, (128, 128, 128, 255))
            ET.SubElement(
                palette, "paletteEntry", value=str(code), color=f"#{r:02x}{g:02x}{b:02x}",
                alpha=str(a), label=label,
            )  # fmt: skip
        return renderer
    if src.count >= 3:
        red, green, blue = _rgb_bands(src)
        renderer = ET.Element(
            "rasterrenderer", type="multibandcolor", redBand=str(red), greenBand=str(green),
            blueBand=str(blue), **common,
        )  # fmt: skip
        for colour, band in zip(("red", "green", "blue"), (red, green, blue), strict=True):
            low, high = (0.0, 255.0) if src.dtypes[band - 1] == "uint8" else _band_range(src, band)
            renderer.append(_stretch(f"{colour}ContrastEnhancement", low, high))
        return renderer
    low, high = _band_range(src, 1)
    renderer = ET.Element(
        "rasterrenderer", type="singlebandgray", grayBand="1", gradient="BlackToWhite", **common
    )
    renderer.append(_stretch("contrastEnhancement", low, high))
    return renderer


def _rgb_bands(src: rasterio.io.DatasetReader) -> tuple[int, int, int]:
    """Band numbers of red, green and blue: by band description (a multispectral mosaic's
    ``blue, green, red, nir, red_edge``), else the first three."""
    names = [(d or "").lower() for d in src.descriptions]
    if all(colour in names for colour in ("red", "green", "blue")):
        red, green, blue = (names.index(colour) + 1 for colour in ("red", "green", "blue"))
        return red, green, blue
    return 1, 2, 3


def _band_range(src: rasterio.io.DatasetReader, band: int) -> tuple[float, float]:
    """Minimum and maximum of ``band`` (reflectance, an index), read on its smallest
    overview."""
    factors = src.overviews(band)
    shape = (src.height // factors[-1], src.width // factors[-1]) if factors else src.shape
    data = src.read(band, out_shape=shape, masked=True)
    if data.count() == 0:
        return 0.0, 1.0
    return float(data.min()), float(data.max())


def _stretch(tag: str, low: float, high: float) -> ET.Element:
    element = ET.Element(tag)
    ET.SubElement(element, "minValue").text = f"{low}"
    ET.SubElement(element, "maxValue").text = f"{high}"
    ET.SubElement(element, "algorithm").text = "StretchToMinimumMaximum"
    return element


# -- the project -------------------------------------------------------------------------


def _srs(tag: str, crs: CRS) -> ET.Element:
    element = ET.Element(tag)
    srs = ET.SubElement(element, "spatialrefsys")
    authority = crs.to_authority()
    ET.SubElement(srs, "wkt").text = crs.to_wkt()
    ET.SubElement(srs, "srid").text = authority[1] if authority else "0"
    ET.SubElement(srs, "authid").text = ":".join(authority) if authority else ""
    ET.SubElement(srs, "description").text = crs.name
    ET.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"
    return element


def _project_crs(geopackage: Path, names: Sequence[str], rasters: Sequence[Path]) -> CRS:
    for name in names:
        crs = pyogrio.read_info(geopackage, layer=name)["crs"]
        if crs:
            return CRS.from_user_input(crs)
    for path in rasters:
        with rasterio.open(path) as src:
            if src.crs:
                return CRS.from_user_input(src.crs.to_wkt())
    raise InputError(geopackage, "no layer with a CRS: nothing to place on a map")


def _extent(
    geopackage: Path, names: Sequence[str], rasters: Sequence[Path], crs: CRS
) -> tuple[float, float, float, float]:
    """The rasters' bounds (the flown area), else those of the non-empty vector layers."""
    boxes = []
    for path in rasters:
        with rasterio.open(path) as src:
            boxes.append(transform_bounds(src.crs, crs, *src.bounds))
    if not boxes:
        for name in names:
            info = pyogrio.read_info(geopackage, layer=name, force_total_bounds=True)
            if info["features"] and info.get("total_bounds") is not None:
                boxes.append(tuple(info["total_bounds"]))
    if not boxes:
        raise InputError(geopackage, "every layer is empty: no extent for the map")
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _project(
    title: str, crs: CRS, layers: Sequence[_Layer], extent: tuple[float, float, float, float]
) -> ET.Element:
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION)
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    root.append(_srs("projectCrs", crs))
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    for layer in layers:
        node = ET.SubElement(
            tree, "layer-tree-layer", id=layer.id, name=layer.name, source=layer.source,
            providerKey=layer.provider, expanded="0",
            checked="Qt::Checked" if layer.visible else "Qt::Unchecked",
        )  # fmt: skip
        ET.SubElement(node, "customproperties")
    ET.SubElement(tree, "custom-order", enabled="0")
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    ET.SubElement(canvas, "units").text = "degrees" if crs.is_geographic else "meters"
    box = ET.SubElement(canvas, "extent")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), extent, strict=True):
        ET.SubElement(box, tag).text = f"{value}"
    ET.SubElement(canvas, "rotation").text = "0"
    canvas.append(_srs("destinationsrs", crs))
    view = ET.SubElement(root, "ProjectViewSettings", UseProjectScales="0")
    default_view = ET.SubElement(view, "DefaultViewExtent", dict(zip(
        ("xmin", "ymin", "xmax", "ymax"), (f"{v}" for v in extent), strict=True
    )))  # fmt: skip
    default_view.append(_srs("srs", crs)[0])
    root.append(_relations(layers))
    projectlayers = ET.SubElement(root, "projectlayers")
    projectlayers.extend(layer.element for layer in layers)
    order = ET.SubElement(root, "layerorder")
    for layer in layers:
        ET.SubElement(order, "layer", id=layer.id)
    properties = ET.SubElement(root, "properties")
    paths = ET.SubElement(properties, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    projections = ET.SubElement(properties, "SpatialRefSys")  # else QGIS ignores projectCrs
    ET.SubElement(projections, "ProjectionsEnabled", type="int").text = "1"
    return root


def _relations(layers: Sequence[_Layer]) -> ET.Element:
    ids = {layer.name: layer.id for layer in layers}
    element = ET.Element("relations")
    for relation in RELATIONS:
        if relation.referenced in ids and relation.referencing in ids:
            node = ET.SubElement(
                element, "relation", id=relation.id, name=relation.name,
                referencedLayer=ids[relation.referenced],
                referencingLayer=ids[relation.referencing], strength="Association",
            )  # fmt: skip
            ET.SubElement(
                node, "fieldRef", referencedField=relation.field, referencingField=relation.field
            )
    return element
