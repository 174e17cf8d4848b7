"""Republishing a GeoPackage in place: its derived layers replaced and its QGIS default styles
rewritten from today's ``gis.layer_styles``, every other layer kept byte for byte.

The GeoPackage is copied beside itself, changed, and renamed over the original, so readers
see the old file or the new one, never half of one; inspectors' edits in other layers stay.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from core.errors import InputError
from core.io import atomic_path
from gis.publish import STYLES_TABLE, style_rows, write_layer


def republish_geopackage(path: Path, replaced: Mapping[str, pd.DataFrame] | None = None) -> Path:
    """Write the ``replaced`` layers into the GeoPackage at ``path`` (over those of the same
    name) and rebuild its ``layer_styles`` for the layers it then holds."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no published GeoPackage to republish: process the epoch first")
    with atomic_path(path) as partial:
        shutil.copyfile(path, partial)
        for name, frame in (replaced or {}).items():
            write_layer(partial, name, frame, first=False)
        styles = style_rows(layer_shapes(partial))
        if not styles.empty:
            pyogrio.write_dataframe(
                styles, partial, driver="GPKG", layer=STYLES_TABLE, layer_options={"FID": "id"}
            )
    return path


def layer_shapes(path: Path) -> dict[str, pd.DataFrame]:
    """Each layer of a GeoPackage (but its styles) as an empty frame of its columns: a
    GeoDataFrame for a feature table, a DataFrame for an attribute table."""
    shapes: dict[str, pd.DataFrame] = {}
    for name, geometry_type in pyogrio.list_layers(path):
        if name == STYLES_TABLE:
            continue
        info = pyogrio.read_info(path, layer=name)
        columns = [str(field) for field in info["fields"]]
        shapes[str(name)] = (
            pd.DataFrame(columns=columns)
            if geometry_type is None
            else gpd.GeoDataFrame(columns=columns, geometry=gpd.GeoSeries([], crs=info["crs"]))
        )
    return shapes
