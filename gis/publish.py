"""The GeoPackage publisher: every layer in one GeoPackage 1.3, styled for QGIS, atomically."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from core.errors import ProcessingError
from core.io import GPKG_VERSION, atomic_path
from gis.layer_styles import LAYER_STYLES, layer_qml

log = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geom"
STYLES_TABLE = "layer_styles"


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


def write_layer(path: Path, name: str, frame: pd.DataFrame, first: bool) -> None:
    """Write ``frame`` as layer ``name`` of the GeoPackage at ``path`` (``first``: create it,
    GeoPackage 1.3)."""
    frame = _gpkg_ready(frame)
    options: dict[str, object] = {"driver": "GPKG", "layer": name}
    if first:
        options["dataset_options"] = {"VERSION": GPKG_VERSION}
    if isinstance(frame, gpd.GeoDataFrame) and frame.crs is None:
        raise ProcessingError(f"{path.name}: layer {name!r} has no CRS")
    if isinstance(frame, gpd.GeoDataFrame):
        options["layer_options"] = {"GEOMETRY_NAME": GEOMETRY_COLUMN}
        if frame.empty:  # QGIS applies a style only to a layer of the style's geometry
            style = LAYER_STYLES.get(name)
            options["geometry_type"] = style.geometry if style else "Unknown"
    else:
        frame = pd.DataFrame(frame)
    pyogrio.write_dataframe(frame, path, **options)


def style_rows(layers: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ``layer_styles`` rows (QGIS default styles) of the styled ``layers``."""
    rows = []
    now = pd.Timestamp(datetime.now(UTC)).floor("ms")
    for name, style in LAYER_STYLES.items():
        frame = layers.get(name)
        if not isinstance(frame, gpd.GeoDataFrame):
            continue
        if style.attribute is not None and style.attribute not in frame.columns:
            log.warning(
                "layer %s has no %r column: published without a style", name, style.attribute
            )
            continue
        rows.append(
            {
                "f_table_catalog": "",
                "f_table_schema": "",
                "f_table_name": name,
                "f_geometry_column": GEOMETRY_COLUMN,
                "styleName": name,
                "styleQML": layer_qml(name),
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
            write_layer(partial, name, frame, first=i == 0)
        styles = style_rows(layers)
        if not styles.empty:
            pyogrio.write_dataframe(
                styles, partial, driver="GPKG", layer=STYLES_TABLE, layer_options={"FID": "id"}
            )
    return path


def list_layers(path: Path) -> list[str]:
    """Names of the layers and tables of a GeoPackage."""
    return [str(name) for name in pyogrio.list_layers(path)[:, 0]]
