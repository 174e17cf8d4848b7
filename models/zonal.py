"""Per-parcel statistics of a raster, equal to exactextract's coverage-fraction method.

Every pixel counts with the fraction of its area the parcel covers, computed exactly (up to
rounding) by :func:`coverage_fractions`. The statistics are exactextract's: ``count`` is the
sum of the coverage fractions of the valid (not nodata, not nan) pixels, ``mean`` the
coverage-weighted mean, ``median``/``p10``/``p90`` its weighted quantiles (see
:func:`weighted_quantiles`), ``area_m2`` the covered valid area. Parcels are read one window
at a time, in row chunks of at most ``CHUNK_CELLS`` pixels, so memory grows with the largest
parcel (as exactextract's value histogram does), never with the raster.

Like exactextract's, the quantiles count every pixel the parcel touches as one more value,
however small its coverage: a parcel edge lying on a pixel grid line to within a nanometre
(a grid-aligned box after a trip through lon/lat) touches a row of pixels by ~1e-9 of their
area, where floating-point rounding decides, and can move p10/p90 by about 1/n of the value
spread (n pixels). Count, area and mean are continuous and unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.io import DatasetReader
from rasterio.windows import Window

from core.errors import InputError
from core.io import bounded_gdal_cache
from core.types import Raster
from models.windows import open_georaster

QUANTILES: dict[str, float] = {"median": 0.5, "p10": 0.1, "p90": 0.9}
STATISTICS: tuple[str, ...] = ("count", "area_m2", "mean", *QUANTILES)
CHUNK_CELLS = 1 << 22
"""Pixels of a parcel's window handled at once (32 MiB of float64 coverage)."""
COVERAGE_NOISE = 1e-12
"""Coverage below this is rounding left over where edge contributions cancel, not area."""


@dataclass(frozen=True)
class RepairedParcel:
    """A parcel whose invalid geometry was repaired before its statistics were computed."""

    parcel_id: str
    reason: str
    """What GEOS found wrong, e.g. ``Self-intersection[600010 3870005]``."""


@dataclass(frozen=True)
class ParcelStatistics:
    """One row per parcel (``id_column``, then ``<band>_<statistic>`` for every band and
    ``STATISTICS``), in the parcels' order, and the parcels whose geometry was repaired."""

    table: pd.DataFrame
    repaired: tuple[RepairedParcel, ...]


@bounded_gdal_cache()
def parcel_statistics(
    raster: Raster | str | Path,
    parcels: gpd.GeoDataFrame,
    *,
    id_column: str = "parcel_id",
    bands: Sequence[int] | None = None,
) -> ParcelStatistics:
    """``STATISTICS`` of each band (all by default) of ``raster`` over every parcel.

    Parcels may be in any CRS (they are reprojected to the raster's); invalid geometries are
    repaired (GEOS ``make_valid``, structure method) and reported. A band is named by its
    description (an index raster's is the index name), else ``band<n>``.
    """
    path = raster.path if isinstance(raster, Raster) else Path(raster)
    if id_column not in parcels.columns:
        raise InputError("parcels", f"no column {id_column!r}")
    with open_georaster(path, north_up=True) as src:
        numbers = list(bands) if bands is not None else list(src.indexes)
        names = [src.descriptions[n - 1] or f"band{n}" for n in numbers]
        ids = parcels[id_column].astype(str).tolist()
        geometries, repaired = _parcels_in_crs(parcels, src.crs, ids)
        rows = [_statistics(src, numbers, geometry) for geometry in geometries]
    columns = [f"{name}_{stat}" for name in names for stat in STATISTICS]
    table = pd.DataFrame(rows, columns=columns, dtype=float)
    table.insert(0, id_column, parcels[id_column].to_numpy())
    return ParcelStatistics(table, repaired)


def coverage_fractions(geometry: shapely.Geometry, transform: Affine, window: Window) -> np.ndarray:
    """Fraction of each pixel of ``window`` covered by a (multi)polygon in the raster's CRS,
    as float64 (rows, cols).

    Exact area, not sampling: every edge is cut at the pixel grid lines; a piece inside pixel
    (r, c) adds its signed height ``dy`` times the part of the pixel right of it, and ``dy``
    to every pixel further right (a prefix sum), so a pixel's value is the area of the
    polygon inside it (Green's theorem, as in anti-aliased font rasterisers).
    """
    edges = _pixel_edges(geometry, transform)
    return _coverage(edges, window)


@dataclass(frozen=True)
class _Edges:
    """Polygon edges in pixel coordinates of the raster, each with the sign that makes the
    exterior count positive and holes negative."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    sign: np.ndarray


def _pixel_edges(geometry: shapely.Geometry, transform: Affine) -> _Edges:
    polygons = shapely.get_parts(geometry)
    rings = shapely.get_rings(polygons)
    rings_per_polygon = shapely.get_num_interior_rings(polygons) + 1
    exterior = np.zeros(len(rings), bool)
    exterior[np.cumsum(rings_per_polygon) - rings_per_polygon] = True
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    cols = (coords[:, 0] - transform.c) / transform.a
    rows = (coords[:, 1] - transform.f) / transform.e
    same = ring[:-1] == ring[1:]
    x0, y0, x1, y1 = cols[:-1][same], rows[:-1][same], cols[1:][same], rows[1:][same]
    edge_ring = ring[:-1][same]
    # The prefix sum in _coverage adds up -(contour integral of x dy): exteriors must run the
    # way that makes their shoelace area negative, holes the other way.
    doubled_area = np.bincount(edge_ring, (x0 - x1) * (y0 + y1), minlength=len(rings))
    ring_sign = np.sign(doubled_area) * np.where(exterior, -1.0, 1.0)
    return _Edges(x0, y0, x1, y1, ring_sign[edge_ring])


def _coverage(edges: _Edges, window: Window) -> np.ndarray:
    width, height = int(window.width), int(window.height)
    x0, x1 = edges.x0 - window.col_off, edges.x1 - window.col_off
    y0, y1 = edges.y0 - window.row_off, edges.y1 - window.row_off
    keep = (
        (np.maximum(y0, y1) > 0)
        & (np.minimum(y0, y1) < height)
        & (y0 != y1)
        & (np.minimum(x0, x1) < width)
    )
    x0, y0, x1, y1, sign = x0[keep], y0[keep], x1[keep], y1[keep], edges.sign[keep]
    n = len(x0)
    # Points where edges cross grid lines inside the window, plus the edges' own ends.
    xe, xk = _crossings(x0, x1, width)
    ye, yk = _crossings(y0, y1, height)
    tx = (xk - x0[xe]) / (x1[xe] - x0[xe])
    ty = (yk - y0[ye]) / (y1[ye] - y0[ye])
    index = np.arange(n)
    edge = np.concatenate([index, index, xe, ye])
    t = np.concatenate([np.zeros(n), np.ones(n), tx, ty])
    px = np.concatenate([x0, x1, xk, x0[ye] + ty * (x1[ye] - x0[ye])])
    py = np.concatenate([y0, y1, y0[xe] + tx * (y1[xe] - y0[xe]), yk])
    order = np.lexsort((t, edge))
    start, end = order[:-1], order[1:]
    piece = edge[start] == edge[end]
    start, end = start[piece], end[piece]
    dy = (py[end] - py[start]) * sign[edge[start]]
    xm = 0.5 * (px[start] + px[end])
    row = np.floor(0.5 * (py[start] + py[end]))
    inside = (row >= 0) & (row < height) & (xm < width) & (dy != 0)
    dy, xm, row = dy[inside], xm[inside], row[inside].astype(np.int64)
    xm = np.maximum(xm, 0.0)  # pieces left of the window cover all of its row
    col = np.floor(xm)
    across = xm - col  # where the piece sits across its pixel, 0 (left side) to 1
    cell = row * (width + 1) + col.astype(np.int64)
    size = height * (width + 1)
    acc = np.bincount(cell, dy * (1.0 - across), minlength=size)
    acc += np.bincount(cell + 1, dy * across, minlength=size)
    coverage = np.cumsum(acc.reshape(height, width + 1)[:, :width], axis=1)
    return np.where(coverage > COVERAGE_NOISE, np.minimum(coverage, 1.0), 0.0)


def _crossings(a0: np.ndarray, a1: np.ndarray, upper: int) -> tuple[np.ndarray, np.ndarray]:
    """(edge, line) of every integer grid line in [0, upper] strictly between a0 and a1."""
    low = np.maximum(np.floor(np.minimum(a0, a1)) + 1, 0)
    high = np.minimum(np.ceil(np.maximum(a0, a1)) - 1, upper)
    count = np.maximum(high - low + 1, 0).astype(np.int64)
    edge = np.repeat(np.arange(len(a0)), count)
    first = np.repeat(np.cumsum(count) - count, count)
    return edge, low[edge] + (np.arange(len(edge)) - first)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles ``qs`` of ``values`` weighted by ``weights`` (> 0), as exactextract defines them.

    Equal values are merged (their weights summed); with the n distinct values x_i sorted and
    C_i the cumulative weight, x_i sits at s_i = i w_i + (n - 1) C_(i-1) on a scale of
    W (n - 1), and quantile q interpolates linearly between the two values around
    q W (n - 1) (exactextract's WeightedQuantiles; Hyndman & Fan type 7 when weights are 1).
    """
    order = np.argsort(values)
    ordered = values[order]
    first = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    x = ordered[first].astype(np.float64)
    w = np.add.reduceat(weights[order], first)
    n = len(x)
    cumulative = np.cumsum(w)
    s = np.arange(n) * w
    s[1:] += (n - 1) * cumulative[:-1]
    results = []
    for q in qs:
        target = q * cumulative[-1] * (n - 1)
        right = int(np.searchsorted(s, target, side="right"))
        left = max(right - 1, 0)
        if right in (0, n):
            results.append(float(x[left]))
        else:
            step = (target - s[left]) / (s[right] - s[left])
            results.append(float(x[left] + step * (x[right] - x[left])))
    return results


def _parcels_in_crs(
    parcels: gpd.GeoDataFrame, crs: rasterio.crs.CRS, ids: list[str]
) -> tuple[np.ndarray, tuple[RepairedParcel, ...]]:
    """Parcel geometries in ``crs``, invalid ones repaired; InputError for non-polygons."""
    if parcels.crs is None:
        raise InputError("parcels", "no CRS: cannot place them on the raster")
    geometries = np.asarray(parcels.geometry.to_crs(crs).array, dtype=object)
    present = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    polygonal = np.isin(shapely.get_type_id(geometries), (3, 6))  # Polygon, MultiPolygon
    not_polygons = np.flatnonzero(present & ~polygonal)
    if len(not_polygons):
        k = not_polygons[0]
        raise InputError(
            "parcels", f"parcel {ids[k]} is a {geometries[k].geom_type}, not a polygon"
        )
    invalid = np.flatnonzero(present & ~shapely.is_valid(geometries))
    reasons = shapely.is_valid_reason(geometries[invalid])
    geometries[invalid] = shapely.make_valid(
        geometries[invalid], method="structure", keep_collapsed=False
    )
    repaired = tuple(
        RepairedParcel(ids[k], str(reason)) for k, reason in zip(invalid, reasons, strict=True)
    )
    return geometries, repaired


def _statistics(src: DatasetReader, bands: list[int], geometry: shapely.Geometry) -> list[float]:
    """``STATISTICS`` of each band over one parcel, band after band."""
    values: list[list[np.ndarray]] = [[] for _ in bands]
    weights: list[list[np.ndarray]] = [[] for _ in bands]
    if geometry is not None and not geometry.is_empty:
        edges = _pixel_edges(geometry, src.transform)
        for window in _windows(edges, src.width, src.height):
            coverage = _coverage(edges, window)
            covered = coverage > 0
            for k, band in enumerate(bands):
                pixels = src.read(band, window=window)
                kept = covered & _valid(src, band, pixels, window)
                values[k].append(pixels[kept])
                weights[k].append(coverage[kept])
    pixel_area_m2 = abs(src.transform.a * src.transform.e)
    row: list[float] = []
    for band_values, band_weights in zip(values, weights, strict=True):
        row += _summary(band_values, band_weights, pixel_area_m2)
    return row


def _summary(
    values: list[np.ndarray], weights: list[np.ndarray], pixel_area_m2: float
) -> list[float]:
    v = np.concatenate(values) if values else np.empty(0)
    w = np.concatenate(weights) if weights else np.empty(0)
    count = float(w.sum())
    if count == 0:
        return [0.0, 0.0] + [math.nan] * (1 + len(QUANTILES))
    mean = float(np.sum(w * v) / count)
    quantiles = weighted_quantiles(v, w, list(QUANTILES.values()))
    return [count, count * pixel_area_m2, mean, *quantiles]


def _windows(edges: _Edges, width: int, height: int) -> Iterator[Window]:
    """The raster window under the edges' bounds, in chunks of whole rows."""
    col0, col1 = max(math.floor(edges.x0.min()), 0), min(math.ceil(edges.x0.max()), width)
    row0, row1 = max(math.floor(edges.y0.min()), 0), min(math.ceil(edges.y0.max()), height)
    if col0 >= col1 or row0 >= row1:
        return
    step = max(1, CHUNK_CELLS // (col1 - col0))
    for row in range(row0, row1, step):
        yield Window(col0, row, col1 - col0, min(step, row1 - row))


def _valid(src: DatasetReader, band: int, pixels: np.ndarray, window: Window) -> np.ndarray:
    """Pixels that are data: not nodata, not masked, not nan."""
    flags = src.mask_flag_enums[band - 1]
    if MaskFlags.all_valid in flags:
        valid = np.ones(pixels.shape, bool)
    elif MaskFlags.nodata in flags:
        valid = pixels != src.nodatavals[band - 1]
    else:
        valid = src.read_masks(band, window=window) > 0
    if pixels.dtype.kind == "f":
        valid &= ~np.isnan(pixels)
    return valid
