"""Areas of interest: load a survey polygon from a file, check it, move it between CRSs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from core.errors import InputError, PlanError

LONLAT = "EPSG:4326"


def check_aoi(aoi: BaseGeometry) -> Polygon:
    """``aoi`` as a single valid Polygon with an area, else :class:`PlanError` saying why."""
    if not isinstance(aoi, BaseGeometry):
        raise PlanError(f"AOI must be a shapely Polygon, got {type(aoi).__name__}")
    if aoi.is_empty:
        raise PlanError("AOI is empty")
    if isinstance(aoi, MultiPolygon) and len(aoi.geoms) == 1:
        aoi = aoi.geoms[0]
    if isinstance(aoi, MultiPolygon):
        raise PlanError(f"AOI has {len(aoi.geoms)} separate parts; plan one mission per part")
    if not isinstance(aoi, Polygon):
        raise PlanError(f"AOI must be a Polygon, got a {aoi.geom_type}")
    if not aoi.is_valid:
        raise PlanError(
            f"AOI polygon is invalid: {explain_validity(aoi)}; edges must not cross or touch "
            "(QGIS: Vector > Geometry Tools > Fix Geometries)"
        )
    if aoi.area <= 0.0:
        raise PlanError("AOI polygon has zero area")
    return aoi


def reproject(geom: BaseGeometry, src_crs: str, dst_crs: str) -> BaseGeometry:
    """``geom`` with its coordinates transformed from ``src_crs`` to ``dst_crs`` (x/y order)."""
    transformer = Transformer.from_crs(src_crs, dst_crs, always_xy=True)

    def _transform(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(geom, _transform)


def check_units(path: str | Path, crs: pyproj.CRS, bounds: np.ndarray) -> None:
    """Refuse metres labelled as degrees and degrees labelled as metres (a common mix-up)."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    looks_like_degrees = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if crs.is_geographic and not looks_like_degrees:
        raise InputError(
            path,
            f"coordinates up to ({maxx:.0f}, {maxy:.0f}) are not degrees, yet the layer's CRS "
            f"is {crs.to_string()} (lon/lat); they look like metres: save the layer with its "
            "real projected CRS (e.g. EPSG:32630)",
        )
    if crs.is_projected and looks_like_degrees:
        raise InputError(
            path,
            f"coordinates ({minx:.4f}, {miny:.4f}) look like lon/lat degrees, yet the layer's "
            f"CRS is {crs.to_string()} (metres): save the layer as EPSG:4326",
        )


def load_aoi(
    path: str | Path, *, layer: str | None = None, min_part_share: float = 0.01
) -> Polygon:
    """The survey polygon of a GeoJSON, GeoPackage or KML file, in lon/lat (EPSG:4326).

    All features of the layer are merged. Parts smaller than ``min_part_share`` of the total
    area (slivers left by quantised boundaries) are dropped; any other multi-part result is
    refused, since one mission flies one polygon.
    """
    path = Path(path)
    try:
        frame = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises several DataSource/Field errors
        raise InputError(path, f"cannot read AOI: {exc}") from exc
    if frame.crs is None:
        raise InputError(path, "AOI layer has no CRS")
    geoms = frame.geometry.dropna()
    geoms = geoms[~geoms.is_empty]
    if geoms.empty:
        raise InputError(path, "AOI layer has no geometry")
    check_units(path, frame.crs, geoms.total_bounds)
    merged = shapely.force_2d(geoms.to_crs(LONLAT).union_all())
    parts = [g for g in getattr(merged, "geoms", [merged]) if isinstance(g, Polygon)]
    if not parts:
        raise InputError(path, f"AOI geometry is a {merged.geom_type}, not a polygon")
    total_area = sum(p.area for p in parts)
    kept = [p for p in parts if p.area >= min_part_share * total_area]
    try:
        return check_aoi(MultiPolygon(kept) if len(kept) > 1 else kept[0])
    except PlanError as exc:
        raise InputError(path, str(exc)) from exc
