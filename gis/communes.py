"""Communes as survey areas: the communes a cadastre names, their parcels and the area a
survey of one of them flies."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import Polygon

from core.errors import InputError


def commune_names(parcels: gpd.GeoDataFrame) -> list[str]:
    """The communes the parcels name (``commune`` column), sorted; blanks left out."""
    names = parcels["commune"].fillna("").astype(str).str.strip()
    return sorted(set(names[names != ""]))


def commune_parcels(
    parcels: gpd.GeoDataFrame, commune: str, source: str | Path
) -> gpd.GeoDataFrame:
    """The parcels of ``commune``; InputError naming ``source`` and its communes if none."""
    names = parcels["commune"].fillna("").astype(str).str.strip()
    chosen = parcels[names == commune.strip()]
    if chosen.empty:
        known = ", ".join(commune_names(parcels)) or "none"
        raise InputError(source, f"no parcel in commune {commune!r}; communes: {known}")
    return chosen


def commune_area(parcels: gpd.GeoDataFrame, commune: str, source: str | Path) -> Polygon:
    """The convex hull of the commune's parcels, in their CRS: one flyable polygon even
    where roads or another commune's lots separate them."""
    return commune_parcels(parcels, commune, source).geometry.union_all().convex_hull
