"""A user's parcels for the per-parcel summaries: read, checked, placed over an image.

Unlike the cadastre the flows read (``gis.parcels``: ``parcel_id`` and ``commune`` required),
a field sketch or an export may carry any id column or none: without ``id_column`` the parcels
are numbered by their row. Invalid rings are repaired (GEOS ``make_valid``); anything else
wrong is an :class:`InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from shapely.geometry import box

from core.errors import InputError


def read_user_parcels(
    path: str | Path, image_bounds: tuple[float, float, float, float], image_crs: CRS,
    *, id_column: str = "parcel_id", layer: str | None = None,
) -> gpd.GeoDataFrame:  # fmt: skip
    """Parcels of a vector file with a ``parcel_id`` column (from ``id_column``, else the row
    number), in their own CRS; InputError when the file is missing or unreadable, has no CRS,
    holds no polygon or none overlaps ``image_bounds`` (in ``image_crs``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "parcel file not found")
    try:
        parcels = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    if parcels.crs is None:
        raise InputError(path, "has no CRS; parcels must say where they are")
    present = parcels.geometry.notna() & ~parcels.geometry.is_empty
    parcels = parcels[present.to_numpy()]
    polygonal = parcels.geom_type.isin(("Polygon", "MultiPolygon"))
    if not polygonal.all():
        kinds = sorted(set(parcels.geom_type[~polygonal]))
        raise InputError(path, f"parcels must be polygons, not {kinds}")
    if parcels.empty:
        raise InputError(path, "contains no parcel polygon")
    ids = parcels[id_column] if id_column in parcels else parcels.index.to_series()
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ids.astype(str).to_numpy()},
        geometry=shapely.make_valid(parcels.geometry.to_numpy()),
        crs=parcels.crs,
    )
    footprint = box(*transform_bounds(image_crs, parcels.crs, *image_bounds, densify_pts=21))
    if not parcels.intersects(footprint).any():
        raise InputError(path, "no parcel overlaps the image")
    return parcels.reset_index(drop=True)
