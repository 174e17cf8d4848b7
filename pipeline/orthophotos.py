"""Merge orthophoto GeoTIFFs (ODM, Pix4D, DJI Terra) onto a fixed output grid, tile by tile.

Each source may have any CRS, RGB or RGBA bands, an alpha band, a nodata value or an
internal mask, uint8 or uint16 pixels. Every output tile is warped from only the sources
whose footprints meet it, through GDAL's warper (``WarpedVRT``), which reads just the source
blocks under the tile: memory is bounded by the tile, whatever the size of the sources.
Overlaps are resolved per pixel by a method from :data:`MERGE_METHODS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from rasterio import windows
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetWriter
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely import STRtree, box, unary_union
from shapely.geometry import Polygon

from core.errors import InputError
from core.types import Grid, Raster, SkippedInput
from pipeline.mosaic import staged_cog, tile_windows

EDGE_MAP_PX = 128
"""Long side (px) of the coarse map of distance to a source's data edge used to feather."""
EDGE_MAP_CACHE_SIZE = 64
_EDGE_SAMPLES = 16
MAX_GRID_SIDE_PX = 200_000
"""A merged grid wider than this (10 km at 5 cm) is taken for a mistake, not a province."""


@dataclass(frozen=True)
class Orthophoto:
    """A source GeoTIFF checked against the output grid: its bands and footprint there."""

    path: Path
    colour_bands: tuple[int, ...]
    dtype: str
    footprint: Polygon
    """The source's outline in the grid's CRS."""


@dataclass(frozen=True)
class OrthophotoMosaic:
    """The merged COG and the sources left out of it, with their reasons."""

    raster: Raster
    skipped: tuple[SkippedInput, ...] = ()


@dataclass(frozen=True)
class TilePart:
    """One source warped onto one output tile."""

    source: Orthophoto
    data: np.ndarray
    """(bands, rows, cols) in the source's dtype."""
    valid: np.ndarray
    """(rows, cols) bool: where the source has data."""


def merge_first(parts: Sequence[TilePart], grid: Grid, window: Window) -> np.ndarray:
    """Each pixel from the first source (in input order) that has data there."""
    out = np.zeros_like(parts[0].data)
    filled = np.zeros(parts[0].valid.shape, bool)
    for part in parts:
        take = part.valid & ~filled
        out[:, take] = part.data[:, take]
        filled |= take
    return out


def merge_feather(parts: Sequence[TilePart], grid: Grid, window: Window) -> np.ndarray:
    """Each pixel a mean of the sources there, weighted by distance to each one's data edge,
    so seams between overlapping orthophotos fade instead of cutting."""
    total = np.zeros(parts[0].data.shape, np.float64)
    weight_sum = np.zeros(parts[0].valid.shape, np.float64)
    for part in parts:
        weight = edge_distance_px(part.source.path, grid, window) * part.valid
        total += part.data * weight
        weight_sum += weight
    covered = weight_sum > 0
    out = np.zeros_like(parts[0].data)
    info = np.iinfo(out.dtype)
    out[:, covered] = np.clip(total[:, covered] / weight_sum[covered] + 0.5, 0, info.max)
    return out


MERGE_METHODS: dict[str, Callable[[Sequence[TilePart], Grid, Window], np.ndarray]] = {
    "first": merge_first,
    "feather": merge_feather,
}


def merge_orthophotos(
    paths: Sequence[Path],
    grid: Grid,
    out_path: Path,
    *,
    method: str = "first",
    resampling: str = "bilinear",
    tile_px: int = 1024,
    cog_profile: str = "deflate",
) -> OrthophotoMosaic:
    """Merge orthophoto GeoTIFFs onto ``grid`` as a Cloud-Optimised GeoTIFF at ``out_path``.

    Output: the sources' colour bands (alpha dropped) in their dtype with an internal mask
    (0 where no source has data), exactly on ``grid``, written atomically. ``method`` is a
    key of :data:`MERGE_METHODS`, ``resampling`` a rasterio ``Resampling`` name. A source
    that cannot be used (unreadable, no CRS, outside the grid, bands or dtype unlike the
    first usable one) is skipped and reported; InputError if none is usable.
    """
    if method not in MERGE_METHODS:
        raise InputError(method, f"unknown merge method; use one of {sorted(MERGE_METHODS)}")
    if resampling not in Resampling.__members__:
        raise InputError(resampling, "unknown resampling; use e.g. nearest, bilinear, cubic")
    sources, skipped = _usable_sources(paths, grid)
    merge = MERGE_METHODS[method]
    first = sources[0]
    out_path = Path(out_path)
    with staged_cog(
        out_path, grid, count=len(first.colour_bands), dtype=first.dtype, cog_profile=cog_profile
    ) as dst:
        _write_tiles(dst, sources, grid, tile_px, merge, Resampling[resampling])
    raster = Raster(
        path=out_path,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        count=len(first.colour_bands),
    )
    return OrthophotoMosaic(raster=raster, skipped=tuple(skipped))


def _write_tiles(
    dst: DatasetWriter,
    sources: Sequence[Orthophoto],
    grid: Grid,
    tile_px: int,
    merge: Callable[[Sequence[TilePart], Grid, Window], np.ndarray],
    resampling: Resampling,
) -> None:
    """Warp and merge the sources tile by tile into ``dst`` (pixels and mask)."""
    tree = STRtree([source.footprint for source in sources])
    for window in tile_windows(grid, tile_px):
        tile_box = box(*windows.bounds(window, grid.transform))
        hits = sorted(int(i) for i in tree.query(tile_box, predicate="intersects"))
        parts = [warp_to_tile(sources[i], grid, window, resampling) for i in hits]
        parts = [part for part in parts if part.valid.any()]
        if not parts:
            continue
        valid = np.logical_or.reduce([part.valid for part in parts])
        dst.write(merge(parts, grid, window), window=window)
        dst.write_mask(valid.astype(np.uint8) * 255, window=window)


def grid_of_orthophotos(paths: Sequence[Path], crs: str, resolution_m: float | None = None) -> Grid:
    """The output grid in ``crs`` over every readable source, at ``resolution_m`` or the
    finest source's pixel size there; snapped, so that epochs merged alike align pixel to
    pixel. Unreadable sources are left to :func:`merge_orthophotos` to report; InputError
    naming them if none can be read."""
    outlines, pixel_sizes, problems = [], [], []
    for path in paths:
        try:
            with rasterio.open(path) as src:
                if src.crs is None or src.transform.is_identity:
                    problems.append(f"{path}: not georeferenced")
                    continue
                outline = _outline(src.transform, src.width, src.height, src.crs.to_wkt(), crs)
                if not math.isfinite(outline.area) or outline.area <= 0:
                    problems.append(f"{path}: cannot be placed in {crs} (far outside it?)")
                    continue
                outlines.append(outline)
                pixel_sizes.append(math.sqrt(outline.area / (src.width * src.height)))
        except RasterioError as error:
            problems.append(f"{path}: cannot be read as a raster ({error})")
    if not outlines:
        raise InputError("orthophotos", "; ".join(problems) or "no files given to merge")
    resolution = resolution_m or _round_resolution(min(pixel_sizes))
    grid = Grid.from_bounds(unary_union(outlines).bounds, resolution, crs)
    if max(grid.width, grid.height) > MAX_GRID_SIDE_PX:
        raise InputError(
            "orthophotos",
            f"together they span {grid.width} x {grid.height} px at {resolution} "
            f"(over {MAX_GRID_SIDE_PX} a side): are some far away or in a wrong CRS?",
        )
    return grid


def _round_resolution(size_m: float) -> float:
    """A source pixel size rounded to two significant digits (0.0497 -> 0.05)."""
    digits = 1 - math.floor(math.log10(size_m))
    return round(size_m, digits)


def open_orthophoto(path: Path, grid: Grid) -> Orthophoto:
    """Check a source GeoTIFF against ``grid``; InputError naming it if it cannot be used."""
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(path, "has no CRS; export the orthophoto as a GeoTIFF")
            if src.transform.is_identity:
                raise InputError(path, "has no geotransform; it is not georeferenced")
            colour = tuple(
                index
                for index, interp in zip(src.indexes, src.colorinterp, strict=True)
                if interp != ColorInterp.alpha
            )
            dtype = src.dtypes[0]
            outline = _outline(src.transform, src.width, src.height, src.crs.to_wkt(), grid.crs)
    except RasterioError as error:
        raise InputError(path, f"cannot be read as a raster ({error})") from error
    if dtype not in ("uint8", "uint16"):
        raise InputError(path, f"has {dtype} pixels; only uint8 and uint16 are merged")
    if not outline.intersects(box(*grid.bounds)):
        raise InputError(path, f"does not overlap the output grid (bounds {grid.bounds})")
    return Orthophoto(path=path, colour_bands=colour, dtype=dtype, footprint=outline)


def warp_to_tile(
    source: Orthophoto, grid: Grid, window: Window, resampling: Resampling
) -> TilePart:
    """``source`` warped onto one tile of ``grid``, with where it has data.

    Only the part of the tile under the source's footprint is warped (GDAL would otherwise
    walk every pixel of the tile for every source that touches it).
    """
    height, width = int(window.height), int(window.width)
    data = np.zeros((len(source.colour_bands), height, width), source.dtype)
    valid = np.zeros((height, width), bool)
    tile_transform = windows.transform(window, grid.transform)
    part = _covered_part(source.footprint, tile_transform, width, height)
    if part is None:
        return TilePart(source=source, data=data, valid=valid)
    try:
        with rasterio.open(source.path) as src:
            # Alpha sources are detected by GDAL; others get an alpha band from their
            # nodata value or mask, so the warped edges are exact either way.
            has_alpha = len(source.colour_bands) < src.count
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=windows.transform(part, tile_transform),
                width=int(part.width),
                height=int(part.height),
                resampling=resampling,
                add_alpha=not has_alpha,
            ) as vrt:
                rows, cols = part.toslices()
                data[:, rows, cols] = vrt.read(source.colour_bands)
                valid[rows, cols] = vrt.read(vrt.count) > 0
    except RasterioError as error:
        raise InputError(source.path, f"cannot read its pixels ({error})") from error
    return TilePart(source=source, data=data, valid=valid)


def _covered_part(
    footprint: Polygon, tile_transform: Affine, width: int, height: int
) -> Window | None:
    """The window of a tile inside a footprint's bounding box (plus a pixel), if any."""
    left, bottom, right, top = footprint.bounds
    col0, row0 = ~tile_transform @ (left, top)
    col1, row1 = ~tile_transform @ (right, bottom)
    col0, col1 = sorted((col0, col1))
    row0, row1 = sorted((row0, row1))
    col0, row0 = max(math.floor(col0) - 1, 0), max(math.floor(row0) - 1, 0)
    col1, row1 = min(math.ceil(col1) + 1, width), min(math.ceil(row1) + 1, height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


@lru_cache(maxsize=EDGE_MAP_CACHE_SIZE)
def _edge_map(path: Path) -> tuple[np.ndarray, Affine, str]:
    """A coarse map of each source pixel's distance (in source px) to the nearest pixel
    without data or the raster edge, with its transform and CRS."""
    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / EDGE_MAP_PX
        rows, cols = max(1, round(src.height / scale)), max(1, round(src.width / scale))
        mask = src.dataset_mask(out_shape=(rows, cols)) > 0
        transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
        crs = src.crs.to_wkt()
    padded = np.pad(mask.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    return (distance * np.float32(scale)).astype(np.float32), transform, crs


def edge_distance_px(path: Path, grid: Grid, window: Window) -> np.ndarray:
    """Feather weight on one tile: distance (source px) to the source's data edge, from a
    coarse map (so it is continuous across tiles), at least a small positive value."""
    distance, transform, crs = _edge_map(path)
    out = np.zeros((int(window.height), int(window.width)), np.float32)
    reproject(
        distance,
        out,
        src_transform=transform,
        src_crs=crs,
        dst_transform=windows.transform(window, grid.transform),
        dst_crs=grid.crs,
        resampling=Resampling.bilinear,
    )
    return np.maximum(out, np.float32(1e-3))


def _usable_sources(
    paths: Sequence[Path], grid: Grid
) -> tuple[list[Orthophoto], list[SkippedInput]]:
    """The sources that can be merged, in input order, and those skipped with reasons."""
    sources: list[Orthophoto] = []
    skipped: list[SkippedInput] = []
    for path in paths:
        try:
            source = open_orthophoto(path, grid)
        except InputError as error:
            skipped.append(SkippedInput(path=Path(path), reason=error.problem))
            continue
        if sources and (source.dtype, len(source.colour_bands)) != (
            sources[0].dtype,
            len(sources[0].colour_bands),
        ):
            skipped.append(
                SkippedInput(
                    path=source.path,
                    reason=f"{len(source.colour_bands)} {source.dtype} bands, unlike the "
                    f"{len(sources[0].colour_bands)} {sources[0].dtype} bands of "
                    f"{sources[0].path.name}; merge them separately",
                )
            )
            continue
        sources.append(source)
    if not sources:
        if not skipped:
            raise InputError("orthophotos", "no files given to merge")
        if len(skipped) == 1:
            raise InputError(skipped[0].path, skipped[0].reason)
        reasons = "; ".join(f"{item.path}: {item.reason}" for item in skipped)
        raise InputError("orthophotos", f"none can be merged: {reasons}")
    return sources, skipped


def _outline(transform: Affine, width: int, height: int, src_crs: str, dst_crs: str) -> Polygon:
    """A raster's edges, densified, in ``dst_crs`` (its convex hull: curved edges stay in)."""
    up = np.linspace(0.0, 1.0, _EDGE_SAMPLES, endpoint=False)
    ones, zeros, down = np.ones_like(up), np.zeros_like(up), 1.0 - up
    cols = width * np.concatenate([up, ones, down, zeros])
    rows = height * np.concatenate([zeros, up, ones, down])
    xs, ys = transform @ (cols, rows)
    if CRS.from_user_input(src_crs) != CRS.from_user_input(dst_crs):
        xs, ys = Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform(xs, ys)
    return Polygon(zip(xs, ys, strict=True)).convex_hull
