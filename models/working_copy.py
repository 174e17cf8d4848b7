"""A user's orthophoto made into what the models read: a working copy in metres at a set GSD.

Orthophotos come from OpenDroneMap, Pix4D, DJI Terra or a contractor: in any CRS, at 3-50 cm,
RGB(A) or multispectral, uint8, uint16 or float, with an alpha band, a nodata value or a mask.
The models need a CRS in true metres, a known pixel size and (the pixel classifiers) uint8
red, green, blue. :func:`make_working_copy` writes that copy block by block through GDAL's
warper (``WarpedVRT``), so memory stays bounded whatever the raster's size:

- **CRS**: kept when it is projected, in metres, with a scale error under
  ``MAX_SCALE_ERROR`` at the image centre; otherwise (lon/lat, Web Mercator, feet) the
  image is warped to its UTM zone. Results go back to the input's CRS
  (:func:`to_source_crs` for rasters; vectors with ``to_crs``).
- **GSD**: resampled to the ``pixel_m`` the analysis asks for, area-averaged when that is at
  least ``AVERAGE_FROM`` times coarser than the source (no aliasing), else by cubic
  convolution (a bilinear resampling blurs roofs' texture enough to cost the building model
  a fifth of its F1, docs/byo_imagery.md). Sources outside ``SUPPORTED_GSD_M`` are refused.
- **Bands**: named by ``--bands`` (``red=3,nir=4``), else the band descriptions, else the
  colour interpretation (see :func:`models.indices.raster_bands`); the copy holds the named
  bands in ``BANDS`` order with those names as descriptions, so indices and the canopy mask
  find them. Unnamed layouts are refused rather than guessed.
- **Validity**: the source's alpha / nodata / mask becomes the copy's internal mask, less
  any near-white or near-black collar around the image (:mod:`models.nodata`: the fill of
  orthophotos saved without a usable mask).
- **Values**: kept as they are in the copy (indices are ratios); the RGB view for the
  classifiers is scaled to uint8 by a white point: 255 for uint8; for other integers
  ``2^NBITS - 1`` when the file says, else the smallest of 2^8, 2^10 ... 2^16 (minus 1) above
  the 99.9th percentile; 1.0 for float reflectance (99.9th percentile at most 1.5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Proj
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from core.errors import InputError
from core.io import atomic_path, rewrite_as_cog
from models.indices import BANDS, canonical_band, raster_bands
from models.nodata import collar_fill, runs_down, side_runs
from models.windows import blocks

SUPPORTED_GSD_M = (0.02, 0.6)
"""Ground pixel sizes (m) the commands accept: drone orthophotos of 3-50 cm with some slack."""
MAX_SCALE_ERROR = 0.01
"""A projected CRS is used as it is when its scale at the image centre is within 1 % of true."""
WHITE_POINT_BITS = (8, 10, 12, 14, 16)
SAMPLE_PX = 512
RGB = ("red", "green", "blue")
RGB_BANDS = (1, 2, 3)
AVERAGE_FROM = 2.0
"""Sources at least this many times finer than the working pixel are area-averaged down to it."""
COLLAR_STRIP_PX = 256


@dataclass(frozen=True)
class SourceImage:
    """What a user's raster is: its CRS, the CRS the models work in, its GSD in metres and
    which band holds which ``BANDS`` band."""

    path: Path
    crs: CRS
    working_crs: CRS
    gsd_m: float
    bands: dict[str, int]
    dtype: str

    @property
    def has_rgb(self) -> bool:
        """Whether red, green and blue are all named (what the pixel classifiers need)."""
        return all(band in self.bands for band in RGB)


@dataclass(frozen=True)
class WorkingCopy:
    """A source image warped to ``crs`` at ``pixel_m``: ``path`` holds its named bands (source
    values, internal mask), ``rgb_path`` a uint8 red/green/blue view for the pixel
    classifiers (None without those bands; ``path`` itself for a uint8 RGB source)."""

    source: SourceImage
    path: Path
    rgb_path: Path | None
    crs: CRS
    pixel_m: float


def parse_bands(text: str | None) -> dict[str, int] | None:
    """``"red=3,nir=4"`` as ``{"red": 3, "nir": 4}`` (names as cameras write them accepted)."""
    if text is None:
        return None
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"([A-Za-z_ -]+)=(\d+)", item)
        band = canonical_band(match.group(1)) if match else None
        if band is None:
            raise InputError(
                "--bands", f"{item!r} is not BAND=NUMBER with BAND one of {', '.join(BANDS)}"
            )
        if band in mapping:
            raise InputError("--bands", f"band {band!r} given twice")
        mapping[band] = int(match.group(2))
    if not mapping:
        raise InputError("--bands", "no band given, e.g. red=1,green=2,blue=3")
    return mapping


def inspect_image(path: str | Path, bands: Mapping[str, int] | None = None) -> SourceImage:
    """Check a user's raster and describe it; :class:`InputError` naming it for a missing or
    unreadable file, no CRS, a rotated grid, a GSD outside ``SUPPORTED_GSD_M`` or bands that
    are not named."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "raster not found")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(path, f"not a raster GDAL can read ({exc})") from exc
    with src:
        if src.crs is None:
            raise InputError(path, "raster has no CRS: georeference it (e.g. gdal_edit.py -a_srs)")
        if src.transform.b or src.transform.d:
            raise InputError(path, "rotated rasters are not supported: warp it north-up first")
        layout = _band_layout(src, path, bands)
        crs = working_crs(src)
        gsd_m = _gsd_m(src, crs)
    low, high = SUPPORTED_GSD_M
    if not low <= gsd_m <= high:
        raise InputError(
            path, f"pixels of {gsd_m:.3f} m: supported ground pixel sizes are {low}-{high} m"
        )
    return SourceImage(path, src.crs, crs, gsd_m, layout, src.dtypes[0])


def working_crs(src: DatasetReader) -> CRS:
    """``src``'s CRS when it is projected in metres with true scale (within
    ``MAX_SCALE_ERROR``) at the image centre, else the UTM zone of that centre."""
    crs = ProjCRS.from_user_input(src.crs.to_wkt())
    left, bottom, right, top = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    lon, lat = (left + right) / 2, (bottom + top) / 2
    if crs.is_projected and crs.axis_info[0].unit_name in ("metre", "meter"):
        factors = Proj(crs).get_factors(lon, lat)
        worst = max(abs(factors.meridional_scale - 1), abs(factors.parallel_scale - 1))
        if worst <= MAX_SCALE_ERROR:
            return src.crs
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def make_working_copy(image: SourceImage, folder: str | Path, pixel_m: float) -> WorkingCopy:
    """Write ``image`` warped to its working CRS at ``pixel_m`` into ``folder`` (see the
    module docstring): ``image.tif`` and, unless that already is one, ``rgb.tif``."""
    folder = Path(folder)
    names = [band for band in BANDS if band in image.bands]
    numbers = [image.bands[band] for band in names]
    copy_path = folder / "image.tif"
    rgb_path = None
    if image.has_rgb:
        rgb_path = copy_path if image.dtype == "uint8" else folder / "rgb.tif"
    with rasterio.open(image.path) as src, ExitStack() as stack:
        transform, width, height = _grid(src, image.working_crs, pixel_m)
        alpha = _alpha_band(src)
        vrt = stack.enter_context(
            WarpedVRT(
                src,
                crs=image.working_crs,
                transform=transform,
                width=width,
                height=height,
                resampling=resampling_for(image.gsd_m, pixel_m),
                add_alpha=alpha is None,
            )
        )
        mask_band = alpha if alpha is not None else vrt.count
        scale = _rgb_scale(src, [image.bands[band] for band in RGB]) if image.has_rgb else 1.0
        stack.enter_context(rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True))
        dst = _output(stack, copy_path, vrt, len(names), image.dtype)
        for k, name in enumerate(names, start=1):
            dst.set_band_description(k, name)
        rgb_dst = None
        if rgb_path is not None and rgb_path != copy_path:
            rgb_dst = _output(stack, rgb_path, vrt, 3, "uint8")
            for k, name in enumerate(RGB, start=1):
                rgb_dst.set_band_description(k, name)
        for block in blocks(width, height):
            values = vrt.read(numbers, window=block.window)
            valid = vrt.read(mask_band, window=block.window) > 0
            if values.dtype.kind == "f":
                valid &= np.isfinite(values).all(axis=0)
            mask = np.where(valid, 255, 0).astype(np.uint8)
            dst.write(values, window=block.window)
            dst.write_mask(mask, window=block.window)
            if rgb_dst is not None:
                rgb = np.nan_to_num(values[: len(RGB)].astype(np.float32) * scale)
                rgb_dst.write(np.clip(rgb, 0, 255).round().astype(np.uint8), window=block.window)
                rgb_dst.write_mask(mask, window=block.window)
    if rgb_path is not None:
        mask_collar(rgb_path, also=[copy_path] if rgb_path != copy_path else [])
    return WorkingCopy(image, copy_path, rgb_path, image.working_crs, pixel_m)


def resampling_for(gsd_m: float, pixel_m: float) -> Resampling:
    """How a source of ``gsd_m`` is resampled to ``pixel_m``: area-averaged when each
    working pixel covers at least ``AVERAGE_FROM`` source pixels across (no aliasing), else
    cubic, which keeps the texture the models read where bilinear blurs it."""
    return Resampling.average if pixel_m >= AVERAGE_FROM * gsd_m else Resampling.cubic


def mask_collar(rgb_path: Path, also: Sequence[Path] = ()) -> None:
    """Remove the near-white / near-black collar (:func:`models.nodata.collar`) of the uint8
    RGB raster ``rgb_path`` from its mask and from the masks of ``also`` (same grid): one pass
    down the raster in full-width strips, one pass up."""
    with ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True))
        rgb = stack.enter_context(rasterio.open(rgb_path, "r+"))
        others = [stack.enter_context(rasterio.open(path, "r+")) for path in also]
        strips = [
            Window(0, row, rgb.width, min(COLLAR_STRIP_PX, rgb.height - row))
            for row in range(0, rgb.height, COLLAR_STRIP_PX)
        ]
        for upwards in (False, True):
            open_ = np.ones(rgb.width, dtype=bool)
            for window in reversed(strips) if upwards else strips:
                has_data = rgb.read_masks(1, window=window) > 0
                fill = collar_fill(rgb.read(RGB_BANDS, window=window), has_data)
                if upwards:
                    runs, open_ = runs_down(fill[::-1], open_)
                    found = runs[::-1]
                else:
                    found, open_ = runs_down(fill, open_)
                    found |= side_runs(fill)
                if found.any():
                    mask = np.where(has_data & ~found, 255, 0).astype(np.uint8)
                    for dst in (rgb, *others):
                        dst.write_mask(mask, window=window)


def to_source_crs(raster: str | Path, image: SourceImage, out_path: str | Path) -> Path:
    """A raster of the working grid (classes, an index) as a COG in the source's CRS: warped
    by nearest neighbour when the working CRS differs; colour map, tags, names kept."""
    out_path = Path(out_path)
    with rasterio.open(raster) as src, ExitStack() as stack:
        reader = src
        if src.crs != image.crs:
            reader = stack.enter_context(
                WarpedVRT(src, crs=image.crs, resampling=Resampling.nearest)
            )
        profile = src.profile | {
            "driver": "GTiff",
            "crs": image.crs,
            "transform": reader.transform,
            "width": reader.width,
            "height": reader.height,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with atomic_path(out_path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            colormap = _colormap(src)
            if colormap:
                dst.write_colormap(1, colormap)
            dst.update_tags(**src.tags())
            for k, name in enumerate(src.descriptions, start=1):
                if name:
                    dst.set_band_description(k, name)
            for block in blocks(reader.width, reader.height):
                dst.write(reader.read(window=block.window), window=block.window)
    return rewrite_as_cog(out_path)


def _output(stack: ExitStack, path: Path, vrt: WarpedVRT, count: int, dtype: str) -> DatasetWriter:
    """A tiled GeoTIFF on the VRT's grid, written beside ``path`` and renamed onto it when
    ``stack`` closes without error."""
    tmp = stack.enter_context(atomic_path(path))
    profile = {
        "driver": "GTiff",
        "width": vrt.width,
        "height": vrt.height,
        "count": count,
        "dtype": dtype,
        "crs": vrt.crs,
        "transform": vrt.transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    return stack.enter_context(rasterio.open(tmp, "w", **profile))


def _colormap(src: DatasetReader) -> dict | None:
    try:
        return src.colormap(1)
    except ValueError:  # no colour table
        return None


def _band_layout(src: DatasetReader, path: Path, given: Mapping[str, int] | None) -> dict[str, int]:
    if given is not None:
        wrong = {band: n for band, n in given.items() if not 1 <= n <= src.count}
        if wrong:
            raise InputError(
                path, f"--bands names band(s) {wrong} but the raster has {src.count} band(s)"
            )
        layout = dict(given)
    else:
        layout = raster_bands(src, path)
    usable = all(band in layout for band in RGB) or {"red", "nir"} <= set(layout)
    if not usable:
        found = ", ".join(f"{b}={n}" for b, n in layout.items()) or "no named band"
        raise InputError(
            path,
            f"unsupported band layout ({src.count} {src.dtypes[0]} band(s), {found}): the "
            "analyses need red, green and blue, or red and NIR; name them with --bands, "
            "e.g. --bands red=1,green=2,blue=3 or --bands red=3,nir=4",
        )
    return layout


def _gsd_m(src: DatasetReader, crs: CRS) -> float:
    """The source's pixel size in metres of ``crs`` (its own grid's when ``crs`` is its own)."""
    if crs == src.crs:
        return math.sqrt(abs(src.transform.determinant)) * src.crs.linear_units_factor[1]
    transform, _, _ = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
    return math.sqrt(abs(transform.determinant))


def _grid(src: DatasetReader, crs: CRS, pixel_m: float) -> tuple[Affine, int, int]:
    """A north-up grid of ``pixel_m`` over the source's extent in ``crs`` (its own origin when
    ``crs`` is the source's)."""
    if crs == src.crs:
        left, bottom, right, top = src.bounds
        unit = src.crs.linear_units_factor[1]
        size = pixel_m / unit
    else:
        left, bottom, right, top = transform_bounds(src.crs, crs, *src.bounds, densify_pts=21)
        size = pixel_m
    width = max(1, math.ceil((right - left) / size - 1e-9))
    height = max(1, math.ceil((top - bottom) / size - 1e-9))
    return Affine(size, 0.0, left, 0.0, -size, top), width, height


def _alpha_band(src: DatasetReader) -> int | None:
    for number, colour in enumerate(src.colorinterp, start=1):
        if colour == ColorInterp.alpha:
            return number
    return None


def _rgb_scale(src: DatasetReader, rgb: list[int]) -> float:
    """255 / the white point of the red, green and blue bands (see the module docstring)."""
    if src.dtypes[0] == "uint8":
        return 1.0
    bits = src.tags(rgb[0], ns="IMAGE_STRUCTURE").get("NBITS")
    if bits and src.dtypes[0].startswith("uint"):
        return 255.0 / (2 ** int(bits) - 1)
    scale = max(1.0, max(src.width, src.height) / SAMPLE_PX)
    shape = (len(rgb), max(1, round(src.height / scale)), max(1, round(src.width / scale)))
    sample = src.read(rgb, out_shape=shape, masked=True, resampling=Resampling.nearest)
    values = sample.compressed().astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError(src.name, "raster has no valid pixels")
    high = float(np.percentile(values, 99.9))
    if src.dtypes[0].startswith("float") and high <= 1.5:
        return 255.0
    for bits_ in WHITE_POINT_BITS:
        if high <= 2**bits_ - 1:
            return 255.0 / (2**bits_ - 1)
    return 255.0 / high
