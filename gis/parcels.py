"""Cadastral parcels: reading them safely, and finding the parcel a geometry stands on."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from core.errors import InputError

log = logging.getLogger(__name__)

PARCEL_LAYER = "parcels"
PARCEL_COLUMNS = ("parcel_id", "commune")


def _layer_name(path: Path) -> str:
    names = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    if PARCEL_LAYER in names:
        return PARCEL_LAYER
    if len(names) == 1:
        return names[0]
    raise InputError(path, f"no layer named {PARCEL_LAYER!r} among {', '.join(names)}")


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired geometry (make_valid may add lines or points)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _repair(path: Path, parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    invalid = ~parcels.geometry.is_valid
    if invalid.any():
        ids = ", ".join(parcels.loc[invalid, "parcel_id"])
        log.warning("%s: repaired invalid geometries of parcels %s", path, ids)
        repaired = [_polygonal(g) for g in shapely.make_valid(parcels.geometry[invalid].values)]
        parcels.loc[invalid, "geometry"] = gpd.GeoSeries(
            repaired, index=parcels.index[invalid], crs=parcels.crs
        )
    empty = parcels.geometry.is_empty | parcels.geometry.isna()
    if empty.any():
        ids = ", ".join(parcels.loc[empty, "parcel_id"])
        raise InputError(path, f"parcels without a usable polygon: {ids}")
    return parcels


def read_parcels(path: Path, crs: str) -> gpd.GeoDataFrame:
    """Parcels (``parcel_id``, ``commune``, polygon) of a vector file, in ``crs``.

    Reads the layer ``parcels`` (or the file's only layer), repairs invalid polygons and
    refuses files that are empty, lack a required column or repeat a parcel id.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "parcel file not found")
    try:
        parcels = gpd.read_file(path, layer=_layer_name(path), engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    missing = [c for c in PARCEL_COLUMNS if c not in parcels.columns]
    if missing:
        raise InputError(path, f"missing required column(s): {', '.join(missing)}")
    if parcels.empty:
        raise InputError(path, "contains no parcels")
    if parcels.crs is None:
        raise InputError(path, "has no CRS; parcels must say where they are")
    if parcels["parcel_id"].isna().any():
        rows = ", ".join(str(i) for i in parcels.index[parcels["parcel_id"].isna()])
        raise InputError(path, f"parcel_id is empty on feature(s) {rows}")
    parcels["parcel_id"] = parcels["parcel_id"].astype(str).str.strip()
    parcels["commune"] = parcels["commune"].fillna("").astype(str)
    dupes = parcels["parcel_id"][parcels["parcel_id"].duplicated()].unique()
    if len(dupes):
        raise InputError(path, f"duplicate parcel_id: {', '.join(sorted(dupes))}")
    return _repair(path, parcels).to_crs(crs)


def parcel_of(geometries: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``geometries`` with the parcel each overlaps most: ``parcel_id``, ``commune``,
    ``overlap_share`` (share of the geometry's area on that parcel; 0 and no id if none).
    """
    parcels = parcels[["parcel_id", "commune", "geometry"]].reset_index(drop=True)
    parcels = parcels.to_crs(geometries.crs)
    left = geometries.drop(columns=["parcel_id", "commune", "overlap_share"], errors="ignore")
    positional = left[["geometry"]].reset_index(drop=True)
    pairs = gpd.sjoin(positional, parcels, how="inner", predicate="intersects").reset_index(
        names="_row"
    )
    shared_m2 = shapely.area(
        shapely.intersection(
            pairs.geometry.values, parcels.geometry.loc[pairs["index_right"]].values
        )
    )
    area_m2 = shapely.area(pairs.geometry.values)
    pairs["overlap_share"] = np.where(area_m2 > 0, shared_m2 / np.maximum(area_m2, 1e-12), 1.0)
    pairs = pairs.sort_values("overlap_share", ascending=False).drop_duplicates("_row")
    best = pd.DataFrame(pairs[["_row", "parcel_id", "commune", "overlap_share"]]).set_index("_row")
    result = left.reset_index(drop=True).join(best).set_axis(left.index)
    result["overlap_share"] = result["overlap_share"].fillna(0.0)
    return result
