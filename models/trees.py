"""Orchard trees: crowns found in a raster, counts per parcel, and missing trees in rows.

:func:`detect_trees` reads a raster window by window (imagery finer than ``WORK_GSD_M``
averaged down to it), masks its canopy (:mod:`models.canopy`) halfway between the ground's
greenness and the canopy threshold, and segments crowns (:mod:`models.crowns`); a crown must
stand out from the ground around it by ``CONTRAST_FRACTION`` of that span. Windows overlap
by more than a crown and its neighbours reach, and a crown belongs to the window whose core
holds its peak, so a tree on a window seam is found exactly once. Canopy wider than the
largest crown (woods, lawns, merged hedges) gives no tree.

:func:`missing_trees` finds the rows of a parcel from the crowns and the gaps in them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from scipy.spatial import cKDTree
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from core.io import bounded_gdal_cache
from core.types import Accuracy
from models.canopy import (
    NODATA,
    band_numbers,
    classify_canopy,
    open_raster,
    pixel_size_m,
    read_bands,
    sample_thresholds,
)
from models.crowns import CROWN_DIAMETER_M, measure_crowns, segment_crowns
from models.windows import blocks

WORK_GSD_M = 0.1
WINDOW_PX = 2048
MIN_CROWN_PX = 2.5
"""The smallest crown must span this many pixels of the working grid."""
MASK_FRACTION = 0.5
"""Canopy for crowns: greenness above the ground's level plus this fraction of the span
from it to the canopy threshold (crowns greyed by haze or stress stay in)."""
CONTRAST_FRACTION = 0.7
"""A crown is greener than the ring of ground around it by this fraction of that span."""
GAP_FACTOR = 1.5
MIN_ROW_TREES = 3
MIN_ROW_SHARE = 0.3
ROW_GAP_FRACTION = 0.25
ROW_ANGLE_TOLERANCE_DEG = 20.0
ROW_FIT_SPACINGS = 6
CROWN_COLUMNS = ["crown_diameter_m", "roundness", "mean_index", "centre_x", "centre_y"]
"""Besides ``tree_id``, ``parcel_id`` (with parcels), ``index_name`` and the crown polygon."""


@bounded_gdal_cache()
def detect_trees(
    image: str | Path,
    *,
    parcels: gpd.GeoDataFrame | None = None,
    crown_diameter_m: tuple[float, float] = CROWN_DIAMETER_M,
    window_px: int = WINDOW_PX,
    band_names: Sequence[str] | None = None,
    parcel_id_column: str = "parcel_id",
) -> gpd.GeoDataFrame:
    """Tree crowns of a raster, in its CRS: crown polygon, centre (``centre_x``,
    ``centre_y``), ``crown_diameter_m`` (of the circle of equal area), ``roundness``,
    ``mean_index`` (mean greenness, of the index named in ``index_name``) and, with
    ``parcels``, the ``parcel_id`` holding the centre (trees outside every parcel are left
    out). ``band_names`` name the raster's bands when its descriptions do not."""
    low_m, high_m = crown_diameter_m
    if not 0 < low_m < high_m:
        raise InputError(
            "crown_diameter_m", f"needs 0 < smallest < largest, got {crown_diameter_m}"
        )
    with open_raster(image) as src:
        native_gsd_m = pixel_size_m(src, image)
        numbers = band_numbers(src, image, band_names)
        thresholds = sample_thresholds(src, numbers)
        span = thresholds.greenness - thresholds.background
        mask_threshold = thresholds.background + MASK_FRACTION * span
        min_contrast = CONTRAST_FRACTION * span
        factor = max(1, int(WORK_GSD_M / native_gsd_m + 1e-6))
        gsd_m = native_gsd_m * factor
        if low_m / 2 / gsd_m < MIN_CROWN_PX / 2:
            raise InputError(
                image,
                f"pixels of {gsd_m:.2f} m are too coarse for crowns of {low_m:g} m "
                f"(need {MIN_CROWN_PX:g} pixels across); raise crown_diameter_m",
            )
        areas = _parcels_in(parcels, src, image, parcel_id_column)
        with _working_grid(src, factor) as grid:
            rows = []
            for window, inner in _windows(grid, areas, window_px, gsd_m, crown_diameter_m):
                bands, valid = read_bands(grid, numbers, window)
                classes, green = classify_canopy(bands, valid, thresholds, gsd_m)
                canopy = (classes != NODATA) & (green > mask_threshold)
                labels, peaks = segment_crowns(canopy, gsd_m, crown_diameter_m)
                transform = window_transform(window, grid.transform)
                rows += measure_crowns(
                    labels, peaks, green, inner, transform, crown_diameter_m, min_contrast
                )
            crs = grid.crs
    crowns = gpd.GeoDataFrame(
        rows, columns=[*CROWN_COLUMNS, "geometry"], geometry="geometry", crs=crs
    )
    crowns["index_name"] = thresholds.index
    if areas is not None:
        crowns = _with_parcel(crowns, areas)
    crowns = crowns.sort_values(
        ["centre_y", "centre_x"], ascending=[False, True], ignore_index=True
    )
    crowns.insert(0, "tree_id", [f"T-{i + 1:06d}" for i in range(len(crowns))])
    return crowns


def crown_centres(crowns: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The crowns as centre points (the crown columns kept)."""
    points = gpd.points_from_xy(crowns.centre_x, crowns.centre_y, crs=crowns.crs)
    return crowns.set_geometry(points)


def trees_per_parcel(
    trees: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, *, parcel_id_column: str = "parcel_id"
) -> gpd.GeoDataFrame:
    """Per parcel: ``tree_count`` (crowns whose centre it holds), ``trees_per_ha``,
    ``mean_crown_diameter_m`` and ``canopy_cover_pct`` (crown area inside it / its area)."""
    parcels = _checked_parcels(parcels, trees.crs, "parcels", parcel_id_column)
    ids = parcels[parcel_id_column].to_numpy()
    centres = crown_centres(trees).geometry.to_numpy()
    holder, tree_at = shapely.STRtree(parcels.geometry.to_numpy()).query(
        centres, predicate="within"
    )[::-1]
    counted = pd.DataFrame(
        {"parcel": holder, "diameter": trees.crown_diameter_m.to_numpy()[tree_at]}
    )
    stats = counted.groupby("parcel").diameter.agg(["size", "mean"])
    area_m2 = parcels.geometry.area.to_numpy()
    count = stats["size"].reindex(range(len(parcels)), fill_value=0).to_numpy()
    crowns = trees.geometry.union_all() if len(trees) else shapely.Polygon()
    covered_m2 = shapely.area(shapely.intersection(parcels.geometry.to_numpy(), crowns))
    out = gpd.GeoDataFrame(
        {
            parcel_id_column: ids,
            "tree_count": count,
            "trees_per_ha": count / area_m2 * 10_000,
            "mean_crown_diameter_m": stats["mean"].reindex(range(len(parcels))).to_numpy(),
            "canopy_cover_pct": 100 * covered_m2 / area_m2,
        },
        geometry=parcels.geometry.to_numpy(),
        crs=parcels.crs,
    )
    return out


def missing_trees(
    trees: gpd.GeoDataFrame, parcel: BaseGeometry, *, gap_factor: float = GAP_FACTOR
) -> gpd.GeoDataFrame:
    """Points of a parcel where a tree is expected in its row but absent, with ``row_id``.

    Rows run along the trees' nearest-neighbour links (trees stand closer along a row than
    across rows); the spacing is the median link along them. Inside a row a gap longer than
    ``gap_factor`` spacings holds ``round(gap / spacing) - 1`` missing trees; a row that
    starts or stops more than half a spacing short of where the other rows do (see
    :func:`_row_starts`) misses trees at that end too. Rows of fewer than ``MIN_ROW_TREES``
    trees are not judged; a missing tree is always inside the parcel.
    """
    centres = crown_centres(trees).geometry
    inside = centres[centres.within(parcel)]
    xy = np.column_stack([inside.x, inside.y])
    empty = gpd.GeoDataFrame({"row_id": pd.Series(dtype=int)}, geometry=[], crs=trees.crs)
    if len(xy) < 2 * MIN_ROW_TREES:
        return empty
    direction, spacing = row_direction(xy)
    normal = np.array([-direction[1], direction[0]])
    origin = xy.mean(axis=0)
    along, across = (xy - origin) @ direction, (xy - origin) @ normal
    local = shapely.affinity.translate(parcel, -origin[0], -origin[1])
    rows = _rows(across, spacing)
    offsets = {row: float(np.median(across[members])) for row, members in rows.items()}
    spans = np.array(
        [_row_span(local, direction, normal, offsets[row], along[m]) for row, m in rows.items()]
    )
    firsts = np.array([along[members].min() for members in rows.values()])
    lasts = np.array([along[members].max() for members in rows.values()])
    starts = _row_starts(firsts, spans[:, 0], spacing)
    stops = -_row_starts(-lasts, -spans[:, 1], spacing)
    points = []
    for k, (row, members) in enumerate(rows.items()):
        u = np.sort(along[members])
        expected = _expected_in_row(u, spacing, gap_factor, starts[k], stops[k])
        points += [(row, *(origin + a * direction + offsets[row] * normal)) for a in expected]
    if not points:
        return empty
    found = pd.DataFrame(points, columns=["row_id", "x", "y"])
    gaps = gpd.GeoDataFrame(
        {"row_id": found.row_id.astype(int)},
        geometry=gpd.points_from_xy(found.x, found.y),
        crs=trees.crs,
    )
    return gaps[gaps.within(parcel)].reset_index(drop=True)


def row_direction(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit vector of the rows and the tree spacing along them, from (N, 2) tree centres.

    The nearest-neighbour links give a first direction and the spacing; links between trees
    of one row up to ``ROW_FIT_SPACINGS`` spacings apart then refine the direction (a long
    baseline averages out where each trunk stands).
    """
    distance, nearest = cKDTree(xy).query(xy, k=2)
    links = xy[nearest[:, 1]] - xy
    angle = np.arctan2(links[:, 1], links[:, 0])
    # Links point either way along a row: average the doubled angles.
    first = 0.5 * math.atan2(np.sin(2 * angle).mean(), np.cos(2 * angle).mean())
    along = np.abs(_half_turn(angle - first)) < math.radians(ROW_ANGLE_TOLERANCE_DEG)
    spacing = float(np.median(distance[along, 1] if along.any() else distance[:, 1]))
    reach = ROW_FIT_SPACINGS * spacing
    pairs = cKDTree(xy).query_pairs(reach, output_type="ndarray")
    vectors = xy[pairs[:, 1]] - xy[pairs[:, 0]]
    off = _half_turn(np.arctan2(vectors[:, 1], vectors[:, 0]) - first)
    # Trees of the next row stand at least atan(spacing / reach) off the row direction.
    same_row = np.abs(off) < 0.5 * math.atan(1 / ROW_FIT_SPACINGS)
    weight = (vectors[same_row] ** 2).sum(axis=1)
    refined = first + (float(np.average(off[same_row], weights=weight)) if same_row.any() else 0.0)
    return np.array([math.cos(refined), math.sin(refined)]), spacing


def _half_turn(angle: np.ndarray) -> np.ndarray:
    """Angles folded into [-pi/2, pi/2): a direction and its opposite are one row."""
    return (angle + np.pi / 2) % np.pi - np.pi / 2


def point_scores(
    detected: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, radius_m: float, name: str = "trees"
) -> Accuracy:
    """Precision / recall / F1 of detected points against truth points, matched one to one
    (closest pairs first) within ``radius_m``."""
    if detected.crs != truth.crs:
        detected = detected.to_crs(truth.crs)
    found = np.column_stack([detected.geometry.x, detected.geometry.y]).reshape(-1, 2)
    true = np.column_stack([truth.geometry.x, truth.geometry.y]).reshape(-1, 2)
    pairs = cKDTree(found).sparse_distance_matrix(cKDTree(true), radius_m, output_type="ndarray")
    used_found: set[int] = set()
    used_true: set[int] = set()
    for k in np.argsort(pairs["v"], kind="stable"):
        i, j = int(pairs["i"][k]), int(pairs["j"][k])
        if i not in used_found and j not in used_true:
            used_found.add(i)
            used_true.add(j)
    return Accuracy.of_matches(name, len(used_found), len(found), len(true))


# -- detection -------------------------------------------------------------------------------


def _working_grid(
    src: DatasetReader, factor: int
) -> AbstractContextManager[DatasetReader | WarpedVRT]:
    """The raster averaged down ``factor`` times (itself for ``factor`` 1), to open with
    ``with``."""
    if factor == 1:
        return nullcontext(src)
    return WarpedVRT(
        src,
        crs=src.crs,
        transform=src.transform @ Affine.scale(factor),
        width=math.ceil(src.width / factor),
        height=math.ceil(src.height / factor),
        resampling=Resampling.average,
    )


def _windows(
    grid: DatasetReader,
    areas: gpd.GeoDataFrame | None,
    window_px: int,
    gsd_m: float,
    crown_diameter_m: tuple[float, float],
) -> Iterator[tuple[Window, tuple[slice, slice]]]:
    """(padded window, inner slices) of every block worth reading. The margin covers a crown's
    reach, its neighbours' peaks and the distance surface those peaks stand on."""
    low_m, high_m = crown_diameter_m
    margin_px = math.ceil((1.6 * high_m + low_m + 1.0) / gsd_m)
    tree = None if areas is None else shapely.STRtree(areas.geometry.to_numpy())
    for block in blocks(grid.width, grid.height, size_px=window_px, margin_px=margin_px):
        if tree is not None:
            bounds = box(*window_bounds(block.window, grid.transform))
            if len(tree.query(bounds, predicate="intersects")) == 0:
                continue
        yield block.padded, block.inner


# -- parcels ---------------------------------------------------------------------------------


def _checked_parcels(
    parcels: gpd.GeoDataFrame, crs: object, source: str | Path, parcel_id_column: str
) -> gpd.GeoDataFrame:
    """Parcels in ``crs`` with valid geometries and an id column (the index when absent)."""
    if parcels.crs is None:
        raise InputError(source, "parcels have no CRS")
    parcels = parcels.to_crs(crs) if crs is not None else parcels
    parcels = parcels[~parcels.geometry.is_empty & parcels.geometry.notna()].copy()
    parcels["geometry"] = shapely.make_valid(parcels.geometry.to_numpy())
    if parcel_id_column not in parcels.columns:
        parcels[parcel_id_column] = parcels.index.astype(str)
    return parcels.reset_index(drop=True)


def _parcels_in(
    parcels: gpd.GeoDataFrame | None, src: DatasetReader, image: str | Path, column: str
) -> gpd.GeoDataFrame | None:
    if parcels is None:
        return None
    areas = _checked_parcels(parcels, src.crs, image, column)
    if not areas.geometry.intersects(box(*src.bounds)).any():
        raise InputError(image, "no parcel overlaps the raster")
    return areas[[column, "geometry"]].rename(columns={column: "parcel_id"})


def _with_parcel(crowns: gpd.GeoDataFrame, areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    centres = crown_centres(crowns)
    joined = gpd.sjoin(centres, areas, predicate="within", how="inner")
    joined = joined[~joined.index.duplicated(keep="first")]
    crowns = crowns.loc[joined.index].copy()
    crowns.insert(0, "parcel_id", joined.parcel_id.to_numpy())
    return crowns


# -- rows ------------------------------------------------------------------------------------


def _rows(across: np.ndarray, spacing: float) -> dict[int, np.ndarray]:
    """Trees grouped into rows by their offset across the rows, numbered from 0: a gap wider
    than ``ROW_GAP_FRACTION`` of the in-row spacing starts a new row. Groups of fewer than
    ``MIN_ROW_TREES`` trees, or than ``MIN_ROW_SHARE`` of the median row, are stray detections
    between rows and left out."""
    order = np.argsort(across)
    breaks = np.nonzero(np.diff(across[order]) > ROW_GAP_FRACTION * spacing)[0] + 1
    groups = np.split(order, breaks)
    smallest = max(MIN_ROW_TREES, MIN_ROW_SHARE * np.median([len(g) for g in groups]))
    return dict(enumerate(g for g in groups if len(g) >= smallest))


def _row_span(
    parcel: BaseGeometry, direction: np.ndarray, normal: np.ndarray, v: float, u: np.ndarray
) -> tuple[float, float]:
    """Along-row extent of the parcel on the row's line, around the row's trees."""
    reach = 1e6
    line = shapely.LineString([(-reach) * direction + v * normal, reach * direction + v * normal])
    cut = shapely.intersection(parcel, line)
    ends = np.array(shapely.get_coordinates(cut)) @ direction if not cut.is_empty else u
    return float(min(ends.min(), u.min())), float(max(ends.max(), u.max()))


def _row_starts(firsts: np.ndarray, edges: np.ndarray, spacing: float) -> np.ndarray:
    """Where each row should start, from the along-row position of its first tree and of the
    parcel edge on its line.

    Rows start either at a set distance from the parcel edge (a headland) or on a line across
    the rows whatever the edge does; the model whose row starts fall closer to whole spacings
    from its reference wins. The reference is the earliest start shared by two rows, so the
    rows missing their first trees, however many, do not shift it.
    """
    fits = []
    for base in (edges, np.zeros_like(edges)):
        offsets = firsts - base
        reference = _shortest_shared(offsets, spacing)
        steps = (offsets - reference) / spacing
        fits.append((float(np.abs(steps - np.round(steps)).mean()), base + reference))
    return min(fits, key=lambda fit: fit[0])[1]


def _shortest_shared(distances: np.ndarray, spacing: float) -> float:
    """The smallest value that another row's matches within a quarter spacing."""
    ordered = np.sort(distances)
    for value in ordered:
        close = ordered[np.abs(ordered - value) < spacing / 4]
        if len(close) >= min(2, len(ordered)):
            return float(np.median(close))
    return float(ordered[0])


def _expected_in_row(
    u: np.ndarray, spacing: float, gap_factor: float, start: float, stop: float
) -> list[float]:
    """Along-row positions of the trees a sorted row ``u`` misses, inside it and at its ends
    (between ``start`` and ``stop``, where the row should end)."""
    out: list[float] = []
    for a, b in zip(u[:-1], u[1:], strict=True):
        gap = b - a
        if gap > gap_factor * spacing:
            n = max(1, round(gap / spacing) - 1)
            out += [a + k * gap / (n + 1) for k in range(1, n + 1)]
    before = int((u[0] - start) / spacing + 0.5)
    after = int((stop - u[-1]) / spacing + 0.5)
    out += [u[0] - k * spacing for k in range(1, before + 1)]
    out += [u[-1] + k * spacing for k in range(1, after + 1)]
    return out
