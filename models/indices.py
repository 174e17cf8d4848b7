"""Vegetation indices: a registry of pure functions over named bands, and a windowed writer.

An index function takes float32 arrays named after the bands it needs (``BANDS``: "red",
"green", "blue", "nir", "rededge") and returns float32, nan where a denominator is zero or an
input is nan. Band names as cameras write them (MicaSense "Red edge", Mavic 3M "RE"...) are
mapped onto ``BANDS`` by :func:`canonical_band`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader

from core.errors import InputError
from core.io import bounded_gdal_cache
from core.types import Raster
from models.windows import atomic_writer, blocks, open_georaster, output_profile, raster_ref

BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "rededge")
BAND_ALIASES: dict[str, str] = {
    "red": "red",
    "r": "red",
    "green": "green",
    "g": "green",
    "blue": "blue",
    "b": "blue",
    "nir": "nir",
    "near_infrared": "nir",
    "red_edge": "rededge",
    "rededge": "rededge",
    "re": "rededge",
}
"""Band names as ingest records them (lower case, ``_`` for spaces) -> ``BANDS``: MicaSense
"Blue", "Green", "Red", "NIR", "Red edge"; DJI Mavic 3M "G", "R", "RE", "NIR"."""
SAVI_SOIL_FACTOR = 0.5
"""Huete's L for intermediate vegetation cover."""
OSAVI_SOIL_FACTOR = 0.16


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float32, nan where the denominator is zero."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan, dtype=np.float32)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Normalised Difference Vegetation Index (Rouse et al. 1974, NASA SP-351):
    (NIR - R) / (NIR + R)."""
    return safe_ratio(nir - red, nir + red)


def ndre(nir: np.ndarray, rededge: np.ndarray) -> np.ndarray:
    """Normalised Difference Red Edge (Barnes et al. 2000, 5th Int. Conf. on Precision
    Agriculture): (NIR - RE) / (NIR + RE)."""
    return safe_ratio(nir - rededge, nir + rededge)


def gndvi(nir: np.ndarray, green: np.ndarray) -> np.ndarray:
    """Green NDVI (Gitelson, Kaufman & Merzlyak 1996, Remote Sens. Environ. 58:289):
    (NIR - G) / (NIR + G)."""
    return safe_ratio(nir - green, nir + green)


def savi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Soil-Adjusted Vegetation Index (Huete 1988, Remote Sens. Environ. 25:295):
    (1 + L)(NIR - R) / (NIR + R + L), L = 0.5; needs reflectance (0-1)."""
    factor = SAVI_SOIL_FACTOR
    return safe_ratio((1 + factor) * (nir - red), nir + red + factor)


def osavi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Optimised SAVI (Rondeaux, Steven & Baret 1996, Remote Sens. Environ. 55:95):
    (NIR - R) / (NIR + R + 0.16); needs reflectance (0-1)."""
    return safe_ratio(nir - red, nir + red + OSAVI_SOIL_FACTOR)


def vari(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Visible Atmospherically Resistant Index (Gitelson et al. 2002, Remote Sens. Environ.
    80:76): (G - R) / (G + R - B)."""
    return safe_ratio(green - red, green + red - blue)


def exg(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Excess Green (Woebbecke et al. 1995, Trans. ASAE 38:259) on chromatic coordinates
    r, g, b = R, G, B / (R + G + B): 2g - r - b."""
    return safe_ratio(2 * green - red - blue, red + green + blue)


def exgr(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Excess Green minus Excess Red (Meyer & Neto 2008, Comput. Electron. Agric. 63:282):
    ExG - ExR with ExR = 1.4r - g, i.e. 3g - 2.4r - b on chromatic coordinates."""
    return safe_ratio(3 * green - 2.4 * red - blue, red + green + blue)


def gli(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Green Leaf Index (Louhaichi, Borman & Johnson 2001, Geocarto Int. 16:65):
    (2G - R - B) / (2G + R + B)."""
    return safe_ratio(2 * green - red - blue, 2 * green + red + blue)


def tgi(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Triangular Greenness Index (Hunt et al. 2013, Int. J. Appl. Earth Obs. Geoinf. 21:103):
    -0.5 [190 (R - G) - 120 (R - B)] for bands at 670, 550 and 480 nm. Not a ratio: its scale
    is the input's (reflectance gives the published range)."""
    return (-0.5 * (190 * (red - green) - 120 * (red - blue))).astype(np.float32, copy=False)


def ngrdi(red: np.ndarray, green: np.ndarray) -> np.ndarray:
    """Normalised Green-Red Difference Index (Tucker 1979, Remote Sens. Environ. 8:127):
    (G - R) / (G + R)."""
    return safe_ratio(green - red, green + red)


@dataclass(frozen=True)
class VegetationIndex:
    """An index formula and the bands it needs, named after its parameters."""

    name: str
    formula: Callable[..., np.ndarray]

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.formula).parameters)


VEGETATION_INDICES: dict[str, VegetationIndex] = {
    f.__name__: VegetationIndex(f.__name__, f)
    for f in (ndvi, ndre, gndvi, savi, osavi, vari, exg, exgr, gli, tgi, ngrdi)
}
INDICES: dict[str, VegetationIndex] = {
    name: VEGETATION_INDICES[name] for name in ("vari", "exg", "gli", "ngrdi")
}
"""The RGB indices the pixel classifiers use as features: fixed, as saved models list them."""


def canonical_band(name: str) -> str | None:
    """The ``BANDS`` name of a band as a camera or ingest names it, None if it is none of them."""
    return BAND_ALIASES.get(name.strip().lower().replace(" ", "_").replace("-", "_"))


def index_values(index: str, bands: Mapping[str, np.ndarray], source: str | Path) -> np.ndarray:
    """Index ``index`` of float32 arrays keyed by ``BANDS`` name; InputError naming ``source``
    when the index is unknown or a band it needs is missing."""
    formula = _index(index, source)
    _require_bands(formula, bands, source)
    return formula.formula(*(bands[band] for band in formula.bands))


def compute_index(index: str, rgb: np.ndarray) -> np.ndarray:
    """Index ``index`` of a (3, H, W) RGB array, as (H, W) float32."""
    red, green, blue = (band.astype(np.float32) for band in rgb)
    return index_values(index, {"red": red, "green": green, "blue": blue}, "RGB array")


def raster_bands(
    src: DatasetReader, path: str | Path, band_names: Sequence[str] | None = None
) -> dict[str, int]:
    """Band number (1-based) of each ``BANDS`` band of ``src``, read from ``band_names`` (as
    ingest records them, one per band) when given, else from the band descriptions, else from
    the red/green/blue colour interpretation. Unrecognised names are left out."""
    if band_names is not None and len(band_names) != src.count:
        raise InputError(path, f"{len(band_names)} band names given for {src.count} bands")
    names = band_names if band_names is not None else src.descriptions
    mapping = {}
    for number, name in enumerate(names, start=1):
        band = canonical_band(name) if name else None
        if band is not None:
            mapping.setdefault(band, number)
    if mapping or band_names is not None:
        return mapping
    colours = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}
    return {colours[c]: n for n, c in enumerate(src.colorinterp, start=1) if c in colours}


@bounded_gdal_cache()
def index_raster(
    src_path: str | Path,
    index: str,
    out_path: str | Path,
    *,
    band_names: Sequence[str] | None = None,
    scales: Mapping[str, float] | None = None,
) -> Raster:
    """Write index ``index`` of a raster as a float32 GeoTIFF (nodata nan), block by block.

    Bands are found by :func:`raster_bands`; ``scales`` (``BANDS`` name -> factor, from
    :func:`core.radiometry.panel_scale` or :func:`core.radiometry.irradiance_scale`) turn
    values into reflectance first. A pixel is nan where any band the index needs is nodata or
    masked.
    """
    formula = _index(index, src_path)
    with open_georaster(src_path) as src:
        mapping = raster_bands(src, src_path, band_names)
        _require_bands(formula, mapping, src_path)
        numbers = [mapping[band] for band in formula.bands]
        factors = [np.float32((scales or {}).get(band, 1.0)) for band in formula.bands]
        profile = output_profile(src, dtype="float32", count=1, nodata=float("nan"))
        with atomic_writer(out_path, profile) as dst:
            dst.set_band_description(1, index)
            for block in blocks(src.width, src.height):
                values = src.read(numbers, window=block.window, out_dtype=np.float32)
                valid = (src.read_masks(numbers, window=block.window) > 0).all(axis=0)
                result = formula.formula(*(v * f for v, f in zip(values, factors, strict=True)))
                result[~valid] = np.nan
                dst.write(result, 1, window=block.window)
    return raster_ref(out_path)


def _index(index: str, source: str | Path) -> VegetationIndex:
    if index not in VEGETATION_INDICES:
        raise InputError(
            source, f"unknown index {index!r}; choose one of {sorted(VEGETATION_INDICES)}"
        )
    return VEGETATION_INDICES[index]


def _require_bands(index: VegetationIndex, available: Collection[str], source: str | Path) -> None:
    missing = [band for band in index.bands if band not in available]
    if missing:
        raise InputError(
            source,
            f"index {index.name!r} needs band(s) {missing}; found {sorted(available) or 'none'}",
        )
