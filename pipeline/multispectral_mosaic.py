"""Multispectral orthomosaic: aligned band stacks of each capture placed and blended like RGB
frames, written as one float32 band-per-band COG.

A capture (MicaSense, Sequoia, DJI multispectral: one file per band per trigger) is aligned by
:mod:`pipeline.band_alignment` onto its reference band's pixel grid, turned into reflectance
(or left raw) by :mod:`pipeline.radiometry`, and placed by the reference band image's pose and
footprint exactly as :mod:`pipeline.mosaic` places an RGB photo; tiles are blended, written
and made a COG by that module's machinery. Bands are float32 (nan where no capture covers),
described by their STAC common names (``blue``, ``green``, ``red``, ``nir``, ``rededge``) and
the dataset tag ``radiometry`` says whether the values are reflectance.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from core.errors import InputError, ProcessingError
from core.types import Capture, Grid, IngestResult, Raster
from pipeline.band_alignment import align_capture, default_reference_band, stack_on_reference
from pipeline.coregister import coregister
from pipeline.footprint import footprint, frame_to_ground
from pipeline.mosaic import (
    Frame,
    OutputBands,
    Tile,
    TileMapper,
    blend_tile,
    place_on_dem,
    tile_jobs,
    tile_windows,
    write_mosaic,
)
from pipeline.radiometry import BandScale, PanelReading, flight_scales
from pipeline.stac import COMMON_BAND_NAMES
from pipeline.terrain_dem import HeightRule, open_dem

STACK_CACHE_SIZE = 8
"""Aligned captures kept per process while tiles are built (about 30 MB per RedEdge capture)."""
MAX_LISTED_FILES = 5
"""Files named in an error message before "and N more"."""


@dataclass(frozen=True)
class CaptureFrame(Frame):
    """A multispectral capture placed on the ground by its reference band image (``record``):
    its band images, how each maps onto the reference's pixels, and their radiometric scale."""

    capture: Capture | None = None
    homographies: tuple[tuple[float, ...], ...] = ()
    """Row-major 3x3 homography per band image (reference pixel -> band image pixel)."""
    scales: tuple[BandScale, ...] = ()

    def pixels(self) -> tuple[np.ndarray, np.ndarray | None]:
        return _stack(self.capture, self.homographies, self.scales)


def multispectral_captures(result: IngestResult) -> tuple[Capture, ...]:
    """The ingested band files as captures, each with the flight's bands in one order.

    A capture's multi-channel images (the RGB photo a DJI Mavic 3M takes with its band
    files) are left out. InputError naming the files if the folder mixes RGB photos with
    band files, or a capture lacks a band the others have (a skipped or missing file).
    """
    band_captures, rgb_photos = [], []
    for capture in result.captures:
        bands = tuple(image for image in capture.images if len(image.bands) == 1)
        if bands:
            band_captures.append(Capture(capture.capture_id, bands))
        else:
            rgb_photos.extend(image.path for image in capture.images)
    if not band_captures:
        raise InputError(_folder(rgb_photos), "no multispectral band files")
    band_files = [image.path for capture in band_captures for image in capture.images]
    if rgb_photos:
        raise InputError(
            _folder(band_files),
            f"mixes {len(rgb_photos)} RGB photo(s) ({_listed(rgb_photos)}) with "
            f"{len(band_files)} multispectral band file(s) ({_listed(band_files)}): "
            "put each camera's photos in a folder of their own and mosaic them apart",
        )
    order = Counter(capture.bands for capture in band_captures).most_common(1)[0][0]
    for capture in band_captures:
        missing = [band for band in order if band not in capture.bands]
        extra = [band for band in capture.bands if band not in order]
        if missing or extra or len(capture.bands) != len(order):
            raise InputError(
                _listed([image.path for image in capture.images]),
                f"capture {capture.capture_id} has bands {', '.join(capture.bands)} but the "
                f"flight's captures have {', '.join(order)}"
                + (f" (missing: {', '.join(missing)})" if missing else "")
                + ": find its missing band files (see the skipped photos) or move the "
                "capture out of the folder",
            )
    return tuple(
        Capture(c.capture_id, tuple(c.band(band) for band in order)) for c in band_captures
    )


def coregister_captures(
    captures: Sequence[Capture], crs: str, reference_band: str | None = None
) -> tuple[Capture, ...]:
    """The captures with the poses of their reference band images (default: see
    :func:`pipeline.band_alignment.default_reference_band`) refined so overlapping captures
    agree (:func:`pipeline.coregister.coregister` on those images, which place them)."""
    band = reference_band or default_reference_band(captures[0])
    refined = coregister([capture.band(band) for capture in captures], crs)
    return tuple(
        Capture(c.capture_id, tuple(r if image.bands == (band,) else image for image in c.images))
        for c, r in zip(captures, refined, strict=True)
    )


def mosaic_captures(
    captures: Sequence[Capture],
    grid: Grid,
    out_path: Path,
    *,
    reference_band: str | None = None,
    panels: Mapping[str, PanelReading] | None = None,
    tile_px: int = 1024,
    cog_profile: str = "deflate",
    on_tile: Callable[[int, int], None] | None = None,
    map_tiles: TileMapper = itertools.starmap,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> Raster:
    """Mosaic multispectral ``captures`` (from :func:`multispectral_captures`) onto ``grid``
    as a float32 COG at ``out_path``, one band per capture band, nan where none covers.

    Each capture is aligned to ``reference_band`` (default: see
    :func:`pipeline.band_alignment.align_capture`), scaled to reflectance from ``panels`` or
    the sun sensor when it can be (:func:`pipeline.radiometry.flight_scales`; the ``radiometry``
    tag says which), and placed, blended and written as :func:`pipeline.mosaic.mosaic_frames`
    does RGB frames (same ``tile_px``, ``cog_profile``, ``on_tile``, ``map_tiles``, ``dem``).
    ProcessingError if there is no capture or one cannot be aligned.
    """
    if not captures:
        raise ProcessingError(f"{out_path}: no captures to mosaic")
    scales, radiometry = flight_scales(captures, panels)
    frames = [
        place_capture(capture, grid.crs, capture_scales, reference_band)
        for capture, capture_scales in zip(captures, scales, strict=True)
    ]
    if dem is not None:
        with open_dem(dem) as src:
            frames = [place_on_dem(frame, src, grid.crs, dem_heights) for frame in frames]
    names = tuple(COMMON_BAND_NAMES.get(band, band) for band in captures[0].bands)
    bands = OutputBands(
        count=len(names),
        dtype="float32",
        descriptions=names,
        nodata=float("nan"),
        tags={"radiometry": radiometry, "reference_band": frames[0].record.bands[0]},
    )
    layout = list(tile_windows(grid, tile_px))
    render = partial(render_band_tile, dem=dem, channels=len(names))
    try:
        return write_mosaic(
            map_tiles(render, tile_jobs(frames, grid, layout)),
            layout,
            grid,
            out_path,
            cog_profile=cog_profile,
            on_tile=on_tile,
            bands=bands,
        )
    finally:
        _stack.cache_clear()


def place_capture(
    capture: Capture,
    crs: str,
    scales: Sequence[BandScale],
    reference_band: str | None = None,
) -> CaptureFrame:
    """A capture aligned and placed on the ground in ``crs`` by its reference band image."""
    alignment = align_capture(capture, reference_band)
    reference = capture.band(alignment.reference_band)
    return CaptureFrame(
        record=reference,
        to_ground=frame_to_ground(reference, crs),
        footprint=footprint(reference, crs),
        capture=capture,
        homographies=tuple(
            tuple(float(v) for v in registration.homography.ravel())
            for registration in alignment.registrations
        ),
        scales=tuple(scales),
    )


def render_band_tile(
    frames: Sequence[Frame],
    grid: Grid,
    window: Window,
    dem: Path | None = None,
    *,
    channels: int,
) -> Tile:
    """One tile of the multispectral mosaic: (channels, rows, cols) float32 blended values
    (nan where no capture covers) and the (rows, cols) uint8 mask. Pure and picklable."""
    total, weight_sum = blend_tile(frames, grid, window, dem, channels=channels)
    covered = weight_sum > 0
    values = np.full(total.shape, np.nan, np.float32)
    values[covered] = total[covered] / weight_sum[covered, None]
    return values.transpose(2, 0, 1), covered.astype(np.uint8) * 255


@lru_cache(maxsize=STACK_CACHE_SIZE)
def _stack(
    capture: Capture, homographies: tuple[tuple[float, ...], ...], scales: tuple[BandScale, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """A capture's bands on its reference grid, (rows, cols, bands), and where all are valid."""
    matrices = [np.array(h, np.float64).reshape(3, 3) for h in homographies]
    stack = stack_on_reference(capture, matrices, scales)
    return np.ascontiguousarray(stack.pixels.transpose(1, 2, 0)), stack.valid


def _folder(paths: Sequence[Path]) -> Path | str:
    parents = {path.parent for path in paths}
    return parents.pop() if len(parents) == 1 else "photo folder"


def _listed(paths: Sequence[Path]) -> str:
    names = [path.name for path in paths[:MAX_LISTED_FILES]]
    more = len(paths) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")
