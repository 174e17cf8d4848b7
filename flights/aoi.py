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

from core.crs_area import swapped_lonlat
from core.errors import InputError, PlanError
from core.types import SurveySpec

LONLAT = "EPSG:4326"
QUICK_REFUSAL_BATTERIES = 2.0
"""An AOI whose photo lines alone would take this many full batteries is refused before
planning (planning a province-sized AOI only to refuse it takes minutes and gigabytes)."""


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


def check_not_swapped(
    path: str | Path, bounds: tuple[float, float, float, float], crs: str
) -> None:
    """InputError naming ``path`` when the AOI's lon/lat ``bounds`` lie outside the working
    ``crs`` but inside it with longitude and latitude swapped."""
    problem = swapped_lonlat(bounds, crs, "the AOI")
    if problem is not None:
        raise InputError(path, problem)


def check_one_battery(path: str | Path, aoi: Polygon, spec: SurveySpec, reserve: float) -> None:
    """InputError naming ``path`` when ``aoi`` (lon/lat) is far too large for one mission:
    its photo lines alone (area / line spacing, at the survey speed) would take
    :data:`QUICK_REFUSAL_BATTERIES` full batteries. Nearer the limit the planner's own
    flight-time check decides; an unknown battery is not checked."""
    endurance_s = spec.camera.endurance_s
    if endurance_s is None:
        return
    area_m2 = abs(pyproj.Geod(ellps="WGS84").geometry_area_perimeter(aoi)[0])
    lines_s = area_m2 / spec.line_spacing_m / spec.speed_m_s
    if lines_s <= QUICK_REFUSAL_BATTERIES * endurance_s:
        return
    usable_s = endurance_s * (1.0 - reserve)
    one_battery_ha = usable_s * spec.speed_m_s * spec.line_spacing_m / 10_000
    raise InputError(
        path,
        f"the AOI covers {area_m2 / 1e6:,.1f} km²: its photo lines alone take at least "
        f"{lines_s / 3600:,.1f} h ({spec.line_spacing_m:.0f} m apart at "
        f"{spec.speed_m_s:g} m/s), one mission flies {usable_s / 60:.0f} min; plan it as a "
        f"campaign (raqib campaign AOI --max-area-ha {max(1, int(one_battery_ha))})",
    )
