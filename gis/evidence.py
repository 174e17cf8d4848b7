"""Evidence chips: small north-up PNGs of a mosaic around a polygon, with its outline drawn.

A chip is read by one window at the coarsest overview that still has the chip's resolution
(never the whole mosaic), on a grid snapped to the mosaic's pixels, so the outline lands on
the pixels it covers. Chips of two epochs on one grid sit side by side with their dates.
Inspectors and the project archive see these.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from core.io import atomic_path
from core.types import Grid

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
OFF_CADASTRE = "off-cadastre"
"""The evidence name of flags on no parcel."""


def evidence_file_name(parcel_id: str | None, reason: str) -> str:
    """The PNG name of one flag's evidence: its parcel id made file-safe, then its reason.
    Ids that needed changing get a checksum of the original, so ``A/1`` and ``A_1`` (both
    real cadastral spellings) never share a file, and no id can name a path elsewhere."""
    if not parcel_id:
        return f"{OFF_CADASTRE}_{reason}.png"
    safe = _UNSAFE.sub("_", parcel_id).lstrip(".") or "_"
    if safe == parcel_id != OFF_CADASTRE:
        return f"{safe}_{reason}.png"
    return f"{safe}-{zlib.crc32(parcel_id.encode('utf-8')):08x}_{reason}.png"


MARGIN_M = 10.0
"""Ground shown around the polygon's bounding box, each side."""
MAX_PX = 512
"""Largest side of a chip, in pixels; a larger area is read at a coarser overview."""
MIN_PX = 256
"""Smallest side a chip is enlarged to (by whole pixels) when the mosaic has fewer."""
OUTLINE_RGB = (255, 221, 0)
"""The polygon of interest (parcel, project): yellow."""
SECOND_OUTLINE_RGB = (255, 0, 255)
"""A second set of shapes (the structures found): magenta."""
OUTLINE_PX = 2
CAPTION_PX = 28
GAP_PX = 8
BACKGROUND_RGB = (40, 40, 40)
_SHIFT = 4  # cv2 fixed-point bits: outlines are placed to 1/16 of a pixel


@dataclass(frozen=True)
class Chip:
    """RGB pixels of a mosaic on a chip grid, which pixels had data, and the overview read
    (``None``: full resolution)."""

    rgb: np.ndarray
    valid: np.ndarray
    grid: Grid
    overview_level: int | None = None


def chip_grid(
    mosaic: str | Path,
    outline: gpd.GeoSeries | gpd.GeoDataFrame,
    *,
    margin_m: float = MARGIN_M,
    max_px: int = MAX_PX,
    min_px: int = MIN_PX,
) -> Grid:
    """The grid of a chip of ``mosaic`` around ``outline`` (any CRS) plus ``margin_m``: in
    the mosaic's CRS, snapped to its pixels, at a whole multiple of its pixel size so that
    neither side exceeds ``max_px`` (or a whole fraction of it, so that the longer side
    reaches ``min_px`` when the mosaic has fewer pixels there)."""
    if max_px < 16:
        raise InputError("max_px", f"a chip needs at least 16 pixels a side, got {max_px}")
    with _open(mosaic) as src:
        crs, transform = CRS.from_user_input(src.crs), src.transform
    if not crs.is_projected:
        raise InputError(mosaic, f"is in {crs.name}: chips need a projected CRS (metres)")
    minx, miny, maxx, maxy = _in_crs(outline, crs, "outline").total_bounds
    pixel_m, x0, y0 = transform.a, transform.c, transform.f
    left = x0 + math.floor((minx - margin_m - x0) / pixel_m) * pixel_m
    right = x0 + math.ceil((maxx + margin_m - x0) / pixel_m) * pixel_m
    top = y0 - math.floor((y0 - maxy - margin_m) / pixel_m) * pixel_m
    bottom = y0 - math.ceil((y0 - miny + margin_m) / pixel_m) * pixel_m
    extent_px = round(max(right - left, top - bottom) / pixel_m)
    if extent_px > max_px:
        resolution_m = math.ceil(extent_px / max_px) * pixel_m
    else:
        resolution_m = pixel_m / max(1, min(math.ceil(min_px / extent_px), max_px // extent_px))
    width = max(1, math.ceil((right - left) / resolution_m - 1e-9))
    height = max(1, math.ceil((top - bottom) / resolution_m - 1e-9))
    chip_transform = Affine(resolution_m, 0.0, left, 0.0, -resolution_m, top)
    return Grid(crs=crs.to_string(), transform=chip_transform, width=width, height=height)


def read_chip(mosaic: str | Path, grid: Grid) -> Chip:
    """The RGB pixels of ``mosaic`` on ``grid`` (reprojected if its CRS differs), read at the
    coarsest overview no coarser than the grid; pixels off the mosaic are not ``valid``."""
    with ExitStack() as stack:
        src = stack.enter_context(_open(mosaic))
        if src.count < 3 or src.dtypes[0] != "uint8":
            raise InputError(mosaic, f"needs 3 uint8 bands (RGB), has {src.count} {src.dtypes[0]}")
        level = _overview_level(src, grid)
        if level is not None:
            src = stack.enter_context(rasterio.open(mosaic, overview_level=level))
        if CRS.from_user_input(src.crs) != CRS.from_user_input(grid.crs):
            src = stack.enter_context(WarpedVRT(src, crs=grid.crs, resampling=Resampling.bilinear))
        rgb, valid = _read_window(src, grid)
    return Chip(rgb=rgb, valid=valid, grid=grid, overview_level=level)


def draw_outline(
    chip: Chip,
    shapes: gpd.GeoSeries | gpd.GeoDataFrame,
    *,
    rgb: tuple[int, int, int] = OUTLINE_RGB,
    thickness_px: int = OUTLINE_PX,
) -> Chip:
    """A copy of ``chip`` with the rings (or lines, points) of ``shapes`` (any CRS) drawn."""
    image = np.ascontiguousarray(chip.rgb.copy())
    to_px = ~chip.grid.transform
    for geometry in _in_crs(shapes, chip.grid.crs, "shapes").geometry:
        for coords in _rings(geometry):
            cols, rows = to_px @ np.asarray(coords, dtype=float)[:, :2].T
            # cv2 puts integer coordinates at pixel centres; the grid at pixel corners.
            points = np.round(np.column_stack([cols - 0.5, rows - 0.5]) * (1 << _SHIFT))
            points = points.astype(np.int32).reshape(-1, 1, 2)
            if len(points) == 1:
                radius = max(1, thickness_px) << _SHIFT
                cv2.circle(image, tuple(points[0, 0]), radius, rgb, -1, cv2.LINE_8, _SHIFT)
            else:
                cv2.polylines(image, [points], False, rgb, thickness_px, cv2.LINE_8, _SHIFT)
    return Chip(rgb=image, valid=chip.valid, grid=chip.grid, overview_level=chip.overview_level)


def outlined_chip(
    mosaic: str | Path,
    outline: gpd.GeoSeries | gpd.GeoDataFrame,
    *,
    second: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    grid: Grid | None = None,
    margin_m: float = MARGIN_M,
    max_px: int = MAX_PX,
    min_px: int = MIN_PX,
) -> Chip:
    """A chip of ``mosaic`` around ``outline`` (on ``grid`` if given) with ``outline`` drawn
    in yellow and ``second`` (e.g. the structures found) in magenta."""
    if grid is None:
        grid = chip_grid(mosaic, outline, margin_m=margin_m, max_px=max_px, min_px=min_px)
    chip = read_chip(mosaic, grid)
    if second is not None and len(second):
        chip = draw_outline(chip, second, rgb=SECOND_OUTLINE_RGB)
    return draw_outline(chip, outline)


def write_chip(
    mosaic: str | Path,
    outline: gpd.GeoSeries | gpd.GeoDataFrame,
    out_path: str | Path,
    *,
    second: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    caption: str | None = None,
    margin_m: float = MARGIN_M,
    max_px: int = MAX_PX,
    min_px: int = MIN_PX,
) -> Path:
    """Write the outlined chip of ``mosaic`` around ``outline`` as a PNG (with ``caption``
    above it if given), atomically; returns ``out_path``."""
    chip = outlined_chip(
        mosaic, outline, second=second, margin_m=margin_m, max_px=max_px, min_px=min_px
    )
    image = side_by_side([chip.rgb], [caption]) if caption is not None else chip.rgb
    return write_png(image, out_path)


def write_before_after(
    before_mosaic: str | Path,
    after_mosaic: str | Path,
    outline: gpd.GeoSeries | gpd.GeoDataFrame,
    out_path: str | Path,
    *,
    captions: tuple[str, str],
    second: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    margin_m: float = MARGIN_M,
    max_px: int = MAX_PX,
    min_px: int = MIN_PX,
) -> Path:
    """Write the chips of two epochs around ``outline``, on one grid (the later mosaic's),
    side by side with ``captions`` (e.g. their dates) above them, as one PNG."""
    grid = chip_grid(after_mosaic, outline, margin_m=margin_m, max_px=max_px, min_px=min_px)
    chips = [
        outlined_chip(mosaic, outline, second=second, grid=grid)
        for mosaic in (before_mosaic, after_mosaic)
    ]
    return write_png(side_by_side([c.rgb for c in chips], list(captions)), out_path)


def side_by_side(images: Sequence[np.ndarray], captions: Sequence[str | None]) -> np.ndarray:
    """RGB ``images`` left to right on a dark background, each under its caption."""
    if len(images) != len(captions) or not images:
        raise ValueError("give one caption (or None) per image, and at least one image")
    band_px = CAPTION_PX if any(c for c in captions) else 0
    height = band_px + max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + GAP_PX * (len(images) - 1)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND_RGB
    col = 0
    for image, caption in zip(images, captions, strict=True):
        h, w = image.shape[:2]
        canvas[band_px : band_px + h, col : col + w] = image
        if caption:
            _put_caption(canvas, caption, col, w)
        col += w + GAP_PX
    return canvas


def read_png(path: str | Path) -> np.ndarray:
    """The RGB pixels of a PNG written by :func:`write_png`."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(path, "not a readable PNG image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_png(rgb: np.ndarray, out_path: str | Path) -> Path:
    """Write an RGB ``(rows, cols, 3)`` uint8 image as a PNG, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as PNG")
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data.tobytes())
    return out_path


# -- helpers ---------------------------------------------------------------------------------


def _open(mosaic: str | Path) -> DatasetReader:
    try:
        src = rasterio.open(mosaic)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(mosaic, f"cannot open the mosaic ({exc})") from exc
    problem = None
    if src.crs is None:
        problem = "the mosaic has no CRS"
    elif src.transform.b != 0 or src.transform.d != 0:
        problem = "rotated mosaics are not supported (chips are north up)"
    if problem:
        src.close()
        raise InputError(mosaic, problem)
    return src


def _in_crs(
    shapes: gpd.GeoSeries | gpd.GeoDataFrame, crs: CRS | str, name: str
) -> gpd.GeoSeries | gpd.GeoDataFrame:
    if shapes.crs is None:
        raise InputError(name, "has no CRS: say where its coordinates are (set_crs)")
    present = shapes[~(shapes.geometry.isna() | shapes.geometry.is_empty)]
    if present.empty:
        raise InputError(name, "has no geometry to show (all empty or missing)")
    return present.to_crs(crs)


def _rings(geometry: BaseGeometry) -> list[np.ndarray]:
    """Coordinate sequences to draw: polygon rings, lines, points."""
    if hasattr(geometry, "geoms"):
        return [ring for part in geometry.geoms for ring in _rings(part)]
    if geometry.geom_type == "Polygon":
        return [np.asarray(geometry.exterior.coords)] + [
            np.asarray(ring.coords) for ring in geometry.interiors
        ]
    return [np.asarray(geometry.coords)]


def _overview_level(src: DatasetReader, grid: Grid) -> int | None:
    """Index of the coarsest overview whose pixels are no larger than the grid's."""
    left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds)
    pixel_in_grid_units = min((right - left) / src.width, (top - bottom) / src.height)
    ratio = grid.resolution_m / pixel_in_grid_units
    usable = [i for i, f in enumerate(src.overviews(1)) if f <= ratio * (1 + 1e-6)]
    return usable[-1] if usable else None


def _read_window(src: DatasetReader | WarpedVRT, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Read the chip pixels that fall wholly on ``src``; the rest stay black and invalid."""
    rgb = np.zeros((grid.height, grid.width, 3), dtype=np.uint8)
    valid = np.zeros((grid.height, grid.width), dtype=bool)
    bounds = src.bounds
    c_a, r_a = ~grid.transform @ (bounds.left, bounds.top)
    c_b, r_b = ~grid.transform @ (bounds.right, bounds.bottom)
    eps = 1e-6
    col0, row0 = max(0, math.ceil(min(c_a, c_b) - eps)), max(0, math.ceil(min(r_a, r_b) - eps))
    col1 = min(grid.width, math.floor(max(c_a, c_b) + eps))
    row1 = min(grid.height, math.floor(max(r_a, r_b) + eps))
    if col0 >= col1 or row0 >= row1:
        return rgb, valid
    x0, y0 = grid.transform @ (col0, row0)
    x1, y1 = grid.transform @ (col1, row1)
    window = from_bounds(x0, y1, x1, y0, transform=src.transform)
    shape = (row1 - row0, col1 - col0)
    pixels = src.read(
        (1, 2, 3), window=window, out_shape=(3, *shape), resampling=Resampling.average
    )
    mask = src.read_masks(1, window=window, out_shape=shape, resampling=Resampling.nearest)
    rgb[row0:row1, col0:col1] = np.moveaxis(pixels, 0, -1)
    valid[row0:row1, col0:col1] = mask > 0
    return rgb, valid


def _put_caption(canvas: np.ndarray, caption: str, col: int, width_px: int) -> None:
    """Write ``caption`` (ASCII) in the band above the image starting at ``col``."""
    font, scale, weight = cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1
    text = caption.encode("ascii", "replace").decode("ascii")
    while len(text) > 1 and cv2.getTextSize(text, font, scale, weight)[0][0] > width_px - 8:
        text = text[:-2] + "~"
    baseline_px = CAPTION_PX - 9
    cv2.putText(canvas, text, (col + 4, baseline_px), font, scale, (255, 255, 255), weight,
                cv2.LINE_AA)  # fmt: skip
