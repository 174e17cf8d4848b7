"""Orthomosaic by direct georeferencing: warp nadir frames onto a grid, feather, write a COG.

Three steps, each a plain function so tiles can run anywhere (a thread, a Dask worker):
:func:`prepare_frames` places every frame once (pose, footprint, exposure gain);
:func:`render_tile` builds one output tile from the frames meeting it, each warped with
OpenCV and weighted by its distance to the frame edge so seams fade; :func:`write_mosaic`
writes the tiles, in order, to a staging GeoTIFF and then a COG. Memory stays bounded by a
tile, a few decoded frames and the tiles a mapper keeps in flight. A tile whose rendering
fails (after a retry) is left as no-data and recorded in the COG's tags
(:func:`failed_tiles`): one unreadable frame costs the tiles it meets, not the mosaic.

On flat ground a frame is one affine (``cv2.warpAffine``). Given a DEM, each tile samples
the ground's heights and every pixel is looked up where the camera sees it over that relief
(``cv2.remap``; see :mod:`pipeline.terrain_dem`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import cv2
import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio import windows
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from shapely import STRtree, box
from shapely.geometry import Polygon

from core.capture_time import capture_tags
from core.errors import ProcessingError
from core.io import GDAL_CACHE_BYTES, atomic_path
from core.types import Grid, ImageRecord, Raster
from pipeline.exposure import exposure_gains
from pipeline.footprint import decode_factor, footprint, frame_size_px, frame_to_ground
from pipeline.frame_cache import FrameCache
from pipeline.terrain_dem import (
    HeightRule,
    camera_elevation_m,
    footprint_on_dem,
    open_dem,
    window_heights,
)

LOG = logging.getLogger(__name__)

VALID_SHARE = 0.999
"""A mosaic pixel takes a frame's value only where the frame's valid pixels make up this
share of the bilinear sample (else the edge of a band's coverage would darken it)."""
FRAME_CACHE_MIN_FRAMES = 16
FRAME_CACHE_BYTES = 256 * 2**20
"""Decoded frames kept per process while tiles are built: at least 16 (about 60 MB per
20 MP frame), more while they fit in 256 MiB (64 preview frames of 4 MB). Sixteen preview
frames decoded each one 3.4 times on a 5,000² px mosaic, 64 of them 1.7 times (10 % of the
mosaic's CPU)."""
STAGING_BLOCK_PX = 256
TILE_RETRIES = 1
"""A tile whose rendering raises is rendered again this many times before it is given up."""
FAILED_TILES_TAG = "RAQIB_FAILED_TILES"
"""COG dataset tag listing the tiles left as no-data (JSON; see :func:`failed_tiles`)."""
_DECODE_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True)
class Frame:
    """A photo placed on the ground: its record, pixel-to-ground affine and footprint."""

    record: ImageRecord
    to_ground: Affine
    footprint: Polygon
    decode_factor: int = 1
    gain: float = 1.0
    camera_elevation_m: float | None = None
    """The camera's height in the DEM's heights when placed on one (None: flat ground)."""

    def pixels(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame's (rows, cols, channels) pixels at its decode factor, and where they
        are valid ((rows, cols) bool; None: everywhere). Cached per process."""
        return _decoded_frame(self.record.path, self.record.sha256, self.decode_factor), None


Tile = tuple[np.ndarray, np.ndarray]
"""One rendered tile: (bands, rows, cols) pixels (uint8 RGB here) and a (rows, cols) uint8
mask (255 covered)."""
TileJob = tuple[tuple[Frame, ...], Grid, Window]
"""The arguments of :func:`render_tile` for one tile."""
FutureT = TypeVar("FutureT")
"""A future of one tile, of whichever executor runs it."""


@dataclass(frozen=True)
class TileFailure:
    """What a mapper yields for a tile it gave up rendering: the error, in words."""

    error: str


@dataclass(frozen=True)
class FailedTile:
    """A mosaic tile left as no-data: its pixel window, bounds (grid CRS) and error."""

    col_off: int
    row_off: int
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    error: str


TileMapper = Callable[[Callable[..., Tile], Iterable[TileJob]], Iterator[Tile | TileFailure]]
"""Runs ``render(*job)`` for every job and yields the tiles in the jobs' order, lazily (so
only a bounded number is ever held), a :class:`TileFailure` for a tile it gave up on;
:func:`render_each` runs them here, one by one (``itertools.starmap`` too, failing on the
first error)."""


def render_each(
    render: Callable[..., Tile], jobs: Iterable[TileJob], *, retries: int = TILE_RETRIES
) -> Iterator[Tile | TileFailure]:
    """The tiles rendered here, in turn; one that raises is rendered again ``retries``
    times, then yielded as a :class:`TileFailure`."""
    for job in jobs:
        yield render_or_failure(render, job, retries)


def render_threaded(
    render: Callable[..., Tile],
    jobs: Iterable[TileJob],
    *,
    threads: int,
    retries: int = TILE_RETRIES,
) -> Iterator[Tile | TileFailure]:
    """As :func:`render_each`, on ``threads`` threads of this process (decoding, warping and
    blending release the GIL), with at most two tiles per thread rendered ahead of the one
    yielded; the tiles come in the jobs' order, so the mosaic is the same."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mosaic-tile") as pool:
        submit = partial(pool.submit, render_or_failure, render, retries=retries)
        for future in submitted_in_order(submit, jobs, in_flight=2 * threads):
            yield future.result()


def submitted_in_order(
    submit: Callable[[TileJob], FutureT], jobs: Iterable[TileJob], *, in_flight: int
) -> Iterator[FutureT]:
    """``submit(job)`` for every job, yielding the futures in the jobs' order while keeping
    ``in_flight`` submitted ahead: whatever runs them stays busy, and at most that many
    finished tiles wait for the writer."""
    pending: deque[FutureT] = deque()
    for job in jobs:
        pending.append(submit(job))
        if len(pending) >= in_flight:
            yield pending.popleft()
    yield from pending


def render_or_failure(
    render: Callable[..., Tile], job: TileJob, retries: int = TILE_RETRIES
) -> Tile | TileFailure:
    """``render(*job)``, tried ``retries`` more times if it raises; else the last error."""
    error = ""
    for _ in range(retries + 1):
        try:
            return render(*job)
        except Exception as exc:  # any failure costs this tile only, and is reported
            error = failure_text(exc)
    return TileFailure(error)


def failure_text(exc: BaseException) -> str:
    """An exception as one line for the report: its type and message."""
    return f"{type(exc).__name__}: {exc}"


def mosaic_frames(
    records: Sequence[ImageRecord],
    grid: Grid,
    out_path: Path,
    *,
    tile_px: int = 1024,
    cog_profile: str = "deflate",
    balance_exposure: bool = True,
    on_tile: Callable[[int, int], None] | None = None,
    map_tiles: TileMapper = render_each,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> Raster:
    """Mosaic nadir RGB frames onto ``grid`` as a Cloud-Optimised GeoTIFF at ``out_path``.

    Output: 3 uint8 bands with an internal mask (0 where no frame covers), exactly on
    ``grid``, tagged with the middle photo's capture time (:mod:`core.capture_time`: the sun
    its shadows were cast by), written atomically. ``cog_profile`` is a rio-cogeo profile
    ("deflate", "jpeg", ...). With ``balance_exposure`` each frame is scaled by its gain from
    :func:`pipeline.exposure.exposure_gains`. ``on_tile(done, total)`` is called after each
    output tile (progress). ``map_tiles`` renders the tiles (default: here, in turn; give
    one that submits them to a cluster to run them elsewhere: the output is the same); a
    tile it gives up on is left as no-data and listed by :func:`failed_tiles`.
    With a ``dem`` (GeoTIFF, any CRS; the workers must see it at the same path) frames are
    orthorectified on its relief, the camera placed by ``dem_heights``: "absolute" needs
    the DEM in the vertical datum of the photos' GPS altitudes, "nadir" takes ``altitude_m``
    above the DEM under the camera (see :mod:`pipeline.terrain_dem`). Without one: flat ground.
    ProcessingError if there is no frame or no tile could be rendered; InputError naming
    the DEM if it is not a georeferenced raster, misses a frame or is above a camera.
    """
    if not records:
        raise ProcessingError(f"{out_path}: no frames to mosaic")
    frames = prepare_frames(
        records, grid, balance_exposure=balance_exposure, dem=dem, dem_heights=dem_heights
    )
    layout = list(tile_windows(grid, tile_px))
    render = render_tile if dem is None else partial(render_tile, dem=dem)
    try:
        return write_mosaic(
            map_tiles(render, tile_jobs(frames, grid, layout)),
            layout,
            grid,
            out_path,
            cog_profile=cog_profile,
            on_tile=on_tile,
            bands=dataclasses.replace(RGB_BANDS, tags=capture_tags(median_capture_time(records))),
        )
    finally:
        _decoded_frame.cache_clear()


def median_capture_time(records: Sequence[ImageRecord]) -> datetime:
    """The middle photo's capture time: the mosaic's, for the sun its shadows were cast by."""
    return sorted(record.captured_at for record in records)[len(records) // 2]


def prepare_frames(
    records: Sequence[ImageRecord],
    grid: Grid,
    *,
    balance_exposure: bool = True,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> tuple[Frame, ...]:
    """Every record placed on ``grid`` once, with its exposure gain (1 without balancing),
    and on the ``dem``'s relief if one is given."""
    gains = exposure_gains(records, grid.crs) if balance_exposure else (1.0,) * len(records)
    frames = [
        dataclasses.replace(place_frame(record, grid), gain=gain)
        for record, gain in zip(records, gains, strict=True)
    ]
    if dem is None:
        return tuple(frames)
    with open_dem(dem) as src:
        return tuple(place_on_dem(frame, src, grid.crs, dem_heights) for frame in frames)


def tile_jobs(frames: Sequence[Frame], grid: Grid, tiles: Iterable[Window]) -> Iterator[TileJob]:
    """For each tile window, the job of rendering it: only the frames whose footprints meet it."""
    tree = STRtree([frame.footprint for frame in frames])
    for window in tiles:
        tile_box = box(*windows.bounds(window, grid.transform))
        hits = sorted(tree.query(tile_box, predicate="intersects"))
        yield tuple(frames[i] for i in hits), grid, window


def write_mosaic(
    tiles: Iterable[Tile],
    layout: Sequence[Window],
    grid: Grid,
    out_path: Path,
    *,
    cog_profile: str = "deflate",
    on_tile: Callable[[int, int], None] | None = None,
    bands: OutputBands | None = None,
) -> Raster:
    """Write ``tiles`` (one per window of ``layout``, in order) as a COG on ``grid``, atomically.

    Each tile is written to a tiled staging GeoTIFF as it arrives and then dropped; the COG
    (overviews, internal mask or ``bands.nodata``) is translated from the staging file at the
    end. ``bands`` describes the tiles' bands (default: :data:`RGB_BANDS`). A
    :class:`TileFailure` is written as no-data, logged and listed in the COG's
    :data:`FAILED_TILES_TAG`; ProcessingError (and no COG) if every tile failed.
    """
    out_path = Path(out_path)
    bands = bands or RGB_BANDS
    failures: list[FailedTile] = []
    with staged_cog(
        out_path,
        grid,
        count=bands.count,
        dtype=bands.dtype,
        cog_profile=cog_profile,
        nodata=bands.nodata,
    ) as dst:
        for number, description in enumerate(bands.descriptions, start=1):
            dst.set_band_description(number, description)
        if bands.tags:
            dst.update_tags(**bands.tags)
        for done, (window, tile) in enumerate(zip(layout, tiles, strict=True), start=1):
            if isinstance(tile, TileFailure):
                failures.append(failed_tile(window, grid, tile.error))
                LOG.warning("%s: tile %s left as no-data: %s", out_path, window, tile.error)
                tile = empty_tile(window, bands)
            pixels, mask = tile
            dst.write(pixels, window=window)
            if bands.nodata is None:
                dst.write_mask(mask, window=window)
            if on_tile is not None:
                on_tile(done, len(layout))
        if layout and len(failures) == len(layout):
            raise ProcessingError(f"{out_path}: no tile could be rendered: {failures[0].error}")
        if failures:
            dst.update_tags(**{FAILED_TILES_TAG: json.dumps([asdict(f) for f in failures])})
    return Raster(
        path=out_path,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        count=bands.count,
        nodata=bands.nodata,
    )


@dataclass(frozen=True)
class OutputBands:
    """The bands of a mosaic: how many, their type, names (band descriptions), nodata, and
    the dataset's tags. Without ``nodata`` uncovered pixels are marked by an internal mask;
    with it (e.g. nan for float bands) by that value."""

    count: int
    dtype: str
    descriptions: tuple[str, ...] = ()
    nodata: float | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


RGB_BANDS = OutputBands(count=3, dtype="uint8")
"""The RGB frame mosaic's bands: 3 uint8 (colour interpretation RGB), internal mask."""


def empty_tile(window: Window, bands: OutputBands) -> Tile:
    """A tile of no-data: ``bands.nodata`` (or 0) everywhere, its mask all uncovered."""
    shape = (int(window.height), int(window.width))
    pixels = np.full((bands.count, *shape), bands.nodata or 0, dtype=bands.dtype)
    return pixels, np.zeros(shape, np.uint8)


def failed_tile(window: Window, grid: Grid, error: str) -> FailedTile:
    """The report of ``window`` of ``grid`` left as no-data because of ``error``."""
    left, bottom, right, top = windows.bounds(window, grid.transform)
    return FailedTile(
        int(window.col_off), int(window.row_off), int(window.width), int(window.height),
        (left, bottom, right, top), error,
    )  # fmt: skip


def failed_tiles(mosaic: Path) -> tuple[FailedTile, ...]:
    """The tiles of a mosaic written by :func:`write_mosaic` that were left as no-data."""
    with rasterio.open(mosaic) as src:
        listed = json.loads(src.tags().get(FAILED_TILES_TAG, "[]"))
    return tuple(FailedTile(**{**f, "bounds": tuple(f["bounds"])}) for f in listed)


def failed_tiles_frame(mosaic: Path) -> gpd.GeoDataFrame:
    """:func:`failed_tiles` as a layer: the tiles' outlines, window (px) and error."""
    tiles = failed_tiles(mosaic)
    with rasterio.open(mosaic) as src:
        crs = src.crs
    columns = ["col_off", "row_off", "width", "height", "error"]
    return gpd.GeoDataFrame(
        [[getattr(t, c) for c in columns] for t in tiles],
        columns=columns,
        geometry=[box(*t.bounds) for t in tiles],
        crs=crs,
    )


@contextmanager
def staged_cog(
    out_path: Path,
    grid: Grid,
    *,
    count: int,
    dtype: str,
    cog_profile: str = "deflate",
    nodata: float | None = None,
) -> Iterator[DatasetWriter]:
    """A tiled staging GeoTIFF on ``grid`` to write by windows (with an internal mask, or
    ``nodata``); on exit it becomes the COG (overviews) at ``out_path``, atomically, and is
    removed. Three bands without ``nodata`` are RGB. GDAL's block cache is capped at
    :data:`core.io.GDAL_CACHE_BYTES` meanwhile."""
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": STAGING_BLOCK_PX,
        "blockysize": STAGING_BLOCK_PX,
        "compress": "deflate",
        "zlevel": 1,
        **({"photometric": "RGB"} if count == 3 and nodata is None else {}),
        **({"nodata": nodata} if nodata is not None else {}),
    }
    with atomic_path(out_path, suffix=".tif") as cog_tmp:
        # The staging file is never renamed: its unique name comes from the COG's.
        staging = cog_tmp.with_name(f"{cog_tmp.stem}.staging.tif")
        try:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                with rasterio.open(staging, "w", **profile) as dst:
                    yield dst
                cog_translate(
                    staging, cog_tmp, cog_profiles.get(cog_profile), in_memory=False, quiet=True
                )
        finally:
            staging.unlink(missing_ok=True)


def validate_cog(path: Path) -> bool:
    """Whether ``path`` is a valid Cloud-Optimised GeoTIFF (rio-cogeo's validator)."""
    is_valid, _errors, _warnings = cog_validate(str(path), quiet=True)
    return bool(is_valid)


def place_frame(record: ImageRecord, grid: Grid) -> Frame:
    """A frame on ``grid``'s CRS, decoded at 1/2, 1/4 or 1/8 if the grid is that coarser."""
    factor = decode_factor(record, grid.resolution_m)
    return Frame(
        record=record,
        to_ground=frame_to_ground(record, grid.crs) @ Affine.scale(factor),
        footprint=footprint(record, grid.crs),
        decode_factor=factor,
    )


def place_on_dem(frame: Frame, dem: DatasetReader, crs: str, rule: HeightRule) -> Frame:
    """``frame`` with its camera's height over the DEM and its footprint grown to hold
    every pixel it sees there."""
    elevation_m = camera_elevation_m(frame.record, dem, crs, rule)
    return dataclasses.replace(
        frame,
        camera_elevation_m=elevation_m,
        footprint=footprint_on_dem(frame.record, dem, crs, elevation_m),
    )


def read_frame_rgb(path: Path, decode_factor: int = 1) -> np.ndarray:
    """A frame's pixels as an RGB uint8 array (rows, cols, 3), decoded at 1/``decode_factor``."""
    image = cv2.imread(str(path), _DECODE_FLAGS[decode_factor])
    if image is None:
        raise ProcessingError(f"{path}: cannot decode the photo")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


_decoded_frame = FrameCache(
    read_frame_rgb, min_frames=FRAME_CACHE_MIN_FRAMES, budget_bytes=FRAME_CACHE_BYTES
)
""":func:`read_frame_rgb`, kept per process: neighbouring tiles share frames."""


def tile_windows(grid: Grid, tile_px: int) -> Iterator[Window]:
    """Windows of at most ``tile_px`` square covering ``grid``, row by row."""
    for row in range(0, grid.height, tile_px):
        for col in range(0, grid.width, tile_px):
            yield Window(col, row, min(tile_px, grid.width - col), min(tile_px, grid.height - row))


def render_tile(
    frames: Sequence[Frame], grid: Grid, window: Window, dem: Path | None = None
) -> Tile:
    """One tile of the mosaic from the frames meeting it (others are skipped), on the
    ``dem``'s relief if given (frames placed on it by :func:`prepare_frames`).

    Pure and picklable, so it can run in any process; the same inputs give the same bytes.
    """
    total, weight_sum = blend_tile(frames, grid, window, dem)
    covered = weight_sum > 0
    rgb = np.zeros(total.shape, np.uint8)
    rgb[covered] = np.clip(total[covered] / weight_sum[covered, None] + 0.5, 0, 255)
    return rgb.transpose(2, 0, 1), covered.astype(np.uint8) * 255


def blend_tile(
    frames: Sequence[Frame],
    grid: Grid,
    window: Window,
    dem: Path | None = None,
    *,
    channels: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """The feathered sum of the frames' ``channels`` values over a tile, (rows, cols,
    channels) float32, and the sum of their weights (rows, cols): divide for the blend.

    Each frame weighs by its pixels' distance to its edge (0 where it has no valid value),
    times its gain; on the ``dem``'s relief if given.
    """
    height, width = int(window.height), int(window.width)
    total = np.zeros((height, width, channels), np.float32)
    weight_sum = np.zeros((height, width), np.float32)
    tile_transform = windows.transform(window, grid.transform)
    heights = None
    if dem is not None and frames:
        with open_dem(dem) as src:
            heights = window_heights(src, grid, window)
    for frame in frames:
        part = _frame_window(frame, tile_transform, width, height)
        if part is None:
            continue
        col0, row0, part_width, part_height = part
        rows, cols = slice(row0, row0 + part_height), slice(col0, col0 + part_width)
        image, valid = frame.pixels()
        # Tile-part pixel (col, row) -> frame pixel, both as continuous corner-based coords.
        to_frame = ~frame.to_ground @ tile_transform @ Affine.translation(col0, row0)
        if heights is None or frame.camera_elevation_m is None:
            sample = partial(_warp, to_frame=to_frame, width=part_width, height=part_height)
            weight = _edge_distance_px(
                to_frame, image.shape[1], image.shape[0], part_width, part_height
            )
        else:
            u, v = _frame_coords_on_dem(frame, to_frame, heights[rows, cols])
            sample = partial(_remap, u=u, v=v)
            weight = _edge_distance(u, v, image.shape[1], image.shape[0])
        warped = sample(image)
        if valid is not None:
            weight *= sample(valid.astype(np.float32)) >= VALID_SHARE
        warped = warped.reshape(*warped.shape[:2], -1)  # OpenCV drops a single channel
        total[rows, cols] += warped * np.float32(frame.gain) * weight[..., None]
        weight_sum[rows, cols] += weight
    return total, weight_sum


def _frame_window(
    frame: Frame, tile_transform: Affine, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The part (col, row, width, height) of a tile that a frame's footprint covers."""
    to_tile = ~tile_transform
    corners = np.array([to_tile @ xy for xy in frame.footprint.exterior.coords])
    col0, row0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
    col1 = min(int(np.ceil(corners[:, 0].max())), width)
    row1 = min(int(np.ceil(corners[:, 1].max())), height)
    if col1 <= col0 or row1 <= row0:
        return None
    return int(col0), int(row0), col1 - int(col0), row1 - int(row0)


def _warp(image: np.ndarray, to_frame: Affine, width: int, height: int) -> np.ndarray:
    """Sample ``image`` at each output pixel centre mapped through ``to_frame`` (bilinear)."""
    index_map = Affine.translation(-0.5, -0.5) @ to_frame @ Affine.translation(0.5, 0.5)
    matrix = np.array(index_map.column_vectors, dtype=np.float64).T
    return cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float32)


def _remap(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample ``image`` at corner-based frame coordinates ``u``, ``v`` (bilinear)."""
    half = np.float32(0.5)
    return cv2.remap(
        image, u - half, v - half, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)


def _frame_coords(to_frame: Affine, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame coordinates (u, v; corner-based, float32) of each output pixel centre."""
    cols = np.arange(width, dtype=np.float32) + 0.5
    rows = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    u = to_frame.a * cols + to_frame.b * rows + to_frame.c
    v = to_frame.d * cols + to_frame.e * rows + to_frame.f
    return u, v


def _frame_coords_on_dem(
    frame: Frame, to_frame: Affine, heights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frame coordinates of each output pixel centre over ground at ``heights``: the flat
    model's, scaled about the image centre by ``altitude_m`` / (camera height above the
    ground there); (-1, -1), off the frame, where the ground has no height or is not below."""
    u, v = _frame_coords(to_frame, heights.shape[1], heights.shape[0])
    width_px, height_px = frame_size_px(frame.record)
    u0, v0 = width_px / (2 * frame.decode_factor), height_px / (2 * frame.decode_factor)
    above_m = np.float32(frame.camera_elevation_m) - heights
    seen = above_m > 0  # False where NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.float32(frame.record.altitude_m) / above_m
    off = np.float32(-1.0)
    return np.where(seen, u0 + scale * (u - u0), off), np.where(seen, v0 + scale * (v - v0), off)


def _edge_distance_px(
    to_frame: Affine, frame_width: int, frame_height: int, width: int, height: int
) -> np.ndarray:
    """Feather weight: distance (frame px) from each output pixel centre to the frame edge."""
    return _edge_distance(*_frame_coords(to_frame, width, height), frame_width, frame_height)


def _edge_distance(u: np.ndarray, v: np.ndarray, frame_width: int, frame_height: int) -> np.ndarray:
    """Feather weight: distance (frame px) from frame coordinates ``u``, ``v`` to the edge."""
    distance = np.minimum(np.minimum(u, frame_width - u), np.minimum(v, frame_height - v))
    return np.clip(distance, 0.0, None).astype(np.float32)
