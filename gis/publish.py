"""The GeoPackage publisher: every layer in one GeoPackage 1.3, styled for QGIS, atomically."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio

from core.errors import ProcessingError
from core.io import GPKG_VERSION, atomic_path

log = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geom"
STYLES_TABLE = "layer_styles"
STRESSED_PCT = "stressed_pct"

# reason -> (label, RGB outline): reds for missing permits, oranges for permit problems.
FLAG_COLOURS = {
    "no_permit": ("No building permit", "227,26,28"),
    "off_cadastre": ("Outside every parcel", "153,0,13"),
    "permit_expired": ("Permit not valid on the date", "253,141,60"),
    "over_footprint": ("Built beyond the permit", "241,105,19"),
    "outside_buildable_zone": ("Outside the buildable zone", "106,61,154"),
}
# (lower %, upper %, RGB fill) classes of the share of a parcel's crop that is stressed.
STRESS_CLASSES = (
    (0.0, 10.0, "26,150,65"),
    (10.0, 25.0, "166,217,106"),
    (25.0, 50.0, "253,174,97"),
    (50.0, 100.0, "215,25,28"),
)


def _fill_symbol(name: str, fill_rgba: str, outline_rgb: str, width_mm: float) -> ET.Element:
    symbol = ET.Element(
        "symbol",
        type="fill",
        name=name,
        alpha="1",
        clip_to_extent="1",
        force_rhr="0",
    )
    layer = ET.SubElement(
        symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"}
    )
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in (
        ("color", fill_rgba),
        ("style", "solid"),
        ("outline_color", f"{outline_rgb},255"),
        ("outline_style", "solid"),
        ("outline_width", f"{width_mm}"),
        ("outline_width_unit", "MM"),
        ("joinstyle", "miter"),
    ):
        ET.SubElement(options, "Option", type="QString", name=key, value=value)
    return symbol


def _qml(renderer: ET.Element) -> str:
    root = ET.Element("qgis", version="3.34.0", styleCategories="Symbology")
    root.append(renderer)
    ET.SubElement(root, "layerGeometryType").text = "2"
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def flagged_parcels_qml() -> str:
    """Categorised by ``reason``: light fill, thick red or orange outlines."""
    renderer = ET.Element(
        "renderer-v2", type="categorizedSymbol", attr="reason", symbollevels="0",
        forceraster="0", enableorderby="0",
    )  # fmt: skip
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (reason, (label, rgb)) in enumerate(FLAG_COLOURS.items()):
        ET.SubElement(
            categories, "category", symbol=str(i), value=reason, label=label, render="true"
        )
        symbols.append(_fill_symbol(str(i), f"{rgb},40", rgb, 0.8))
    return _qml(renderer)


def crop_health_parcels_qml() -> str:
    """Graduated by ``stressed_pct`` (0–100): green to red."""
    renderer = ET.Element(
        "renderer-v2", type="graduatedSymbol", attr=STRESSED_PCT,
        graduatedMethod="GraduatedColor", symbollevels="0", forceraster="0", enableorderby="0",
    )  # fmt: skip
    ranges = ET.SubElement(renderer, "ranges")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (lower, upper, rgb) in enumerate(STRESS_CLASSES):
        ET.SubElement(
            ranges, "range", symbol=str(i), lower=f"{lower:.6f}", upper=f"{upper:.6f}",
            label=f"{lower:.0f} – {upper:.0f} % stressed", render="true",
        )  # fmt: skip
        symbols.append(_fill_symbol(str(i), f"{rgb},180", "60,60,60", 0.26))
    ET.SubElement(renderer, "classificationMethod", id="Fixed")
    return _qml(renderer)


# layer name -> (attribute the style needs, QML builder)
LAYER_STYLES: dict[str, tuple[str, Callable[[], str]]] = {
    "flagged_parcels": ("reason", flagged_parcels_qml),
    "crop_health_parcels": (STRESSED_PCT, crop_health_parcels_qml),
}


def _cell(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list | set | frozenset):
        return ",".join(str(v) for v in value)
    return value


def _gpkg_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO strings, paths as text, sequences comma-joined (GPKG has no lists)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(_cell)
    return frame


def _write_layer(path: Path, name: str, frame: pd.DataFrame, first: bool) -> None:
    frame = _gpkg_ready(frame)
    options: dict[str, object] = {"driver": "GPKG", "layer": name}
    if first:
        options["dataset_options"] = {"VERSION": GPKG_VERSION}
    if isinstance(frame, gpd.GeoDataFrame) and frame.crs is None:
        raise ProcessingError(f"{path.name}: layer {name!r} has no CRS")
    if isinstance(frame, gpd.GeoDataFrame):
        options["layer_options"] = {"GEOMETRY_NAME": GEOMETRY_COLUMN}
        if frame.empty:
            options["geometry_type"] = "Unknown"
    else:
        frame = pd.DataFrame(frame)
    pyogrio.write_dataframe(frame, path, **options)


def _styles(layers: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    now = pd.Timestamp(datetime.now(UTC)).floor("ms")
    for name, (attribute, build) in LAYER_STYLES.items():
        frame = layers.get(name)
        if frame is None:
            continue
        if attribute not in frame.columns:
            log.warning("layer %s has no %r column: published without a style", name, attribute)
            continue
        rows.append(
            {
                "f_table_catalog": "",
                "f_table_schema": "",
                "f_table_name": name,
                "f_geometry_column": GEOMETRY_COLUMN,
                "styleName": name,
                "styleQML": build(),
                "styleSLD": "",
                "useAsDefault": True,
                "description": f"Raqib default style for {name}",
                "owner": "raqib",
                "ui": None,
                "update_time": now,
            }
        )
    return pd.DataFrame(rows)


def publish_geopackage(path: Path, layers: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``layers`` (GeoDataFrames as feature tables, DataFrames as attribute tables)
    into one GeoPackage 1.3 at ``path``, with QGIS default styles in ``layer_styles``.

    The file is built beside the target and renamed over it: readers see the old file or
    the new one, never half of one.
    """
    path = Path(path)
    if not layers:
        raise ProcessingError(f"{path}: no layers to publish")
    with atomic_path(path) as partial:
        for i, (name, frame) in enumerate(layers.items()):
            _write_layer(partial, name, frame, first=i == 0)
        styles = _styles(layers)
        if not styles.empty:
            pyogrio.write_dataframe(
                styles, partial, driver="GPKG", layer=STYLES_TABLE, layer_options={"FID": "id"}
            )
    return path


def list_layers(path: Path) -> list[str]:
    """Names of the layers and tables of a GeoPackage."""
    return [str(name) for name in pyogrio.list_layers(path)[:, 0]]
