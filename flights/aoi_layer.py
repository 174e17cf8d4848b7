"""AOI layers for campaigns: the polygons of a commune or province layer, checked and filtered.

Every problem raises :class:`InputError` naming the file (or ``<GeoDataFrame>``), the column
or the AOI id, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from core.errors import InputError
from flights.aoi import LONLAT, check_not_swapped, check_units


@dataclass(frozen=True)
class SurveyArea:
    """One polygon to survey: an AOI of the layer, or a part of it, in the working CRS."""

    aoi_id: str
    commune: str
    polygon_m: Polygon
    part: int = 1

    @property
    def name(self) -> str:
        return self.aoi_id if self.part == 1 else f"{self.aoi_id}.{self.part}"


def _read_layer(source: gpd.GeoDataFrame | str | Path, layer: str | None) -> gpd.GeoDataFrame:
    if isinstance(source, gpd.GeoDataFrame):
        return source
    try:
        return pyogrio.read_dataframe(source, layer=layer)
    except Exception as exc:  # pyogrio raises several DataSource/Field errors
        raise InputError(source, f"cannot read the layer: {exc}") from exc


def _require(frame: pd.DataFrame, source: str, column: str, role: str) -> None:
    if column not in frame.columns:
        known = ", ".join(c for c in frame.columns if c != "geometry")
        raise InputError(source, f"no {role} column {column!r}; columns are: {known}")


def _polygons(aoi_id: str, geom: object, source: str) -> list[Polygon]:
    if geom is None or shapely.is_empty(geom):
        raise InputError(source, f"AOI {aoi_id!r} has no geometry")
    if not geom.is_valid:  # type: ignore[attr-defined]
        raise InputError(
            source,
            f"AOI {aoi_id!r} has an invalid geometry ({explain_validity(geom)}); "
            "repair it (QGIS 'Fix geometries', shapely make_valid) and plan again",
        )
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area > 0.0]
    if not parts:
        raise InputError(source, f"AOI {aoi_id!r} is a {geom.geom_type}, not a polygon")  # type: ignore[attr-defined]
    return parts


def load_aois(
    source: gpd.GeoDataFrame | str | Path,
    *,
    layer: str | None = None,
    id_column: str = "id",
    commune_column: str = "commune",
    category_column: str | None = None,
    categories: Collection[str] | None = None,
    crs: str = "EPSG:32630",
) -> list[SurveyArea]:
    """The polygons of an AOI layer (GeoDataFrame, GeoPackage or GeoJSON) in ``crs``.

    Keeps the features whose ``category_column`` is one of ``categories`` (e.g. only the
    agricultural ones); multi-part AOIs give one area per part. The commune column is
    optional. Every problem raises :class:`InputError` naming the source and the AOI id.
    """
    name = "<GeoDataFrame>" if isinstance(source, gpd.GeoDataFrame) else str(source)
    frame = _read_layer(source, layer)
    if frame.empty:
        raise InputError(name, "the AOI layer has no features")
    if frame.crs is None:
        raise InputError(name, "the AOI layer has no CRS; set one (e.g. EPSG:4326)")
    check_units(name, frame.crs, frame.geometry.total_bounds)
    check_not_swapped(name, frame.geometry.to_crs(LONLAT).total_bounds, crs)
    _require(frame, name, id_column, "id")
    if frame[id_column].duplicated().any():
        twice = sorted(map(str, frame.loc[frame[id_column].duplicated(), id_column].unique()))
        raise InputError(name, f"AOI ids repeat in {id_column!r}: {', '.join(twice[:5])}")
    if categories is not None:
        if category_column is None:
            raise InputError(name, "categories given without a category_column to filter on")
        _require(frame, name, category_column, "category")
        kept = frame[frame[category_column].isin(list(categories))]
        if kept.empty:
            found = sorted(map(str, frame[category_column].dropna().unique()))[:10]
            raise InputError(
                name,
                f"no AOI has {category_column} in {sorted(categories)}; values found: "
                f"{', '.join(found)}",
            )
        frame = kept
    frame = frame.to_crs(crs)
    communes = frame[commune_column] if commune_column in frame.columns else [""] * len(frame)
    areas = []
    for aoi_id, commune, geom in zip(frame[id_column], communes, frame.geometry, strict=True):
        for k, part in enumerate(_polygons(str(aoi_id), geom, name), start=1):
            commune_name = "" if pd.isna(commune) else str(commune)
            areas.append(SurveyArea(str(aoi_id), commune_name, shapely.force_2d(part), k))
    return areas


def load_launch_sites(
    source: gpd.GeoDataFrame | str | Path,
    *,
    layer: str | None = None,
    id_column: str = "id",
    crs: str = "EPSG:32630",
) -> gpd.GeoDataFrame:
    """Launch-site points (``site_id``, geometry in ``crs``) of a layer."""
    name = "<GeoDataFrame>" if isinstance(source, gpd.GeoDataFrame) else str(source)
    frame = _read_layer(source, layer)
    if frame.empty:
        raise InputError(name, "the launch-site layer has no features")
    if frame.crs is None:
        raise InputError(name, "the launch-site layer has no CRS; set one (e.g. EPSG:4326)")
    _require(frame, name, id_column, "id")
    kinds = set(frame.geometry.geom_type.dropna())
    if kinds != {"Point"}:
        raise InputError(name, f"launch sites must be points, found {', '.join(sorted(kinds))}")
    sites = gpd.GeoDataFrame({"site_id": frame[id_column].astype(str)}, geometry=frame.geometry)
    return sites.to_crs(crs).reset_index(drop=True)
