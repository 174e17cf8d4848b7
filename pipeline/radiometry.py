"""Band images to reflectance: from a calibration panel, the sun sensor, or left as they are.

Three ways, chosen once per flight (never per capture: a mosaic mixing them would show seams):

- **panel**: the operator gives, per band, the panel's mean raw value and its certified
  reflectance; every pixel is scaled by :func:`core.radiometry.panel_scale`.
- **sun sensor**: every band image carries a MicaSense radiometric model (XMP
  ``MicaSense:RadiometricCalibration``, vignetting, black level, exposure, gain) and the DLS
  irradiance: raw values become radiance (MicaSense's published model, as in its
  ``imageprocessing`` library) and then reflectance by :func:`core.radiometry.irradiance_scale`.
- **uncalibrated**: raw values, recorded as such in the mosaic's tags.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from core.errors import InputError
from core.radiometry import irradiance_scale, panel_scale
from core.types import Capture, ImageRecord
from pipeline.exif import xmp_values
from pipeline.stac import COMMON_BAND_NAMES

PANEL = "panel"
SUN_SENSOR = "sun-sensor"
UNCALIBRATED = "uncalibrated"
"""Values of the mosaic's ``radiometry`` tag."""
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class PanelReading:
    """A calibration panel in one band: its mean raw value in the photo, its reflectance."""

    value: float
    reflectance: float


@dataclass(frozen=True)
class RadianceModel:
    """MicaSense's model from a band image's raw values to radiance (W/m2/sr/nm)."""

    calibration: tuple[float, float, float]
    """``a1, a2, a3``: gain, and the row gradient of the rolling shutter."""
    vignetting_centre_px: tuple[float, float]
    vignetting_polynomial: tuple[float, ...]
    black_level: float
    gain: float
    exposure_s: float
    full_scale: float
    """2 ** bits per sample: raw values are normalised by it."""

    def radiance(self, raw: np.ndarray) -> np.ndarray:
        """Radiance of a (rows, cols) raw image, float32."""
        rows, cols = np.indices(raw.shape, dtype=np.float64)
        centre_x, centre_y = self.vignetting_centre_px
        radius = np.hypot(cols - centre_x, rows - centre_y)
        polynomial = [*reversed(self.vignetting_polynomial), 1.0]
        vignetting = 1.0 / np.polyval(polynomial, radius)
        a1, a2, a3 = self.calibration
        row_gradient = 1.0 / (1.0 + a2 * rows / self.exposure_s - a3 * rows)
        signal = np.clip(vignetting * row_gradient * (raw - self.black_level), 0.0, None)
        return (signal / (self.gain * self.exposure_s) * a1 / self.full_scale).astype(np.float32)


@dataclass(frozen=True)
class BandScale:
    """How one band image's raw values become the mosaic's: radiance first if a model is
    given, then times ``factor``."""

    factor: float = 1.0
    radiance: RadianceModel | None = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        values = raw if self.radiance is None else self.radiance.radiance(raw)
        return values * np.float32(self.factor)


def flight_scales(
    captures: Sequence[Capture], panels: Mapping[str, PanelReading] | None = None
) -> tuple[tuple[tuple[BandScale, ...], ...], str]:
    """For each capture, one scale per band image, and how they were found (:data:`PANEL`,
    :data:`SUN_SENSOR` or :data:`UNCALIBRATED`).

    ``panels`` (band name as ingest or STAC writes it -> reading) wins; else the sun sensor
    if every band image has its irradiance and radiometric model; else none. InputError if
    ``panels`` misses a band of the flight or names one it does not have.
    """
    if panels:
        by_band = _panels_by_band(captures, panels)
        return tuple(tuple(by_band[image.bands[0]] for image in c.images) for c in captures), PANEL
    models = [[radiance_model(image) for image in capture.images] for capture in captures]
    lit = all(
        model is not None and len(image.irradiance_w_m2_nm) == 1
        for capture, row in zip(captures, models, strict=True)
        for image, model in zip(capture.images, row, strict=True)
    )
    if not lit:
        return tuple((BandScale(),) * len(capture.images) for capture in captures), UNCALIBRATED
    scales = tuple(
        tuple(
            BandScale(irradiance_scale(image.irradiance_w_m2_nm[0]), model)
            for image, model in zip(capture.images, row, strict=True)
        )
        for capture, row in zip(captures, models, strict=True)
    )
    return scales, SUN_SENSOR


def parse_panel(text: str) -> tuple[str, PanelReading]:
    """``"nir=21500:0.49"`` (band = mean raw value : reflectance) as (band, reading)."""
    band, _, reading = text.partition("=")
    value, _, reflectance = reading.partition(":")
    try:
        parsed = PanelReading(float(value), float(reflectance))
    except ValueError:
        raise InputError(
            text, "a panel reading is BAND=VALUE:REFLECTANCE, e.g. nir=21500:0.49"
        ) from None
    panel_scale(parsed.value, parsed.reflectance)  # checks the ranges
    return band.strip().lower().replace(" ", "_"), parsed


def radiance_model(record: ImageRecord) -> RadianceModel | None:
    """The MicaSense radiance model of a band image from its EXIF and XMP, None if the file
    lacks any of its terms (other cameras, processed files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(record.path) as src:
            tags = {**src.tags(), **src.tags(ns="EXIF")}
            xmp = xmp_values(src.tags(ns="xml:XMP").get("xml:XMP", ""))
            bits = np.iinfo(src.dtypes[0]).bits if src.dtypes[0].startswith("uint") else None
    calibration = _numbers(xmp.get("MicaSense:RadiometricCalibration"))
    centre = _numbers(xmp.get("Camera:VignettingCenter"))
    polynomial = _numbers(xmp.get("Camera:VignettingPolynomial"))
    dark = _numbers(tags.get("EXIF_BlackLevel") or xmp.get("MicaSense:DarkRowValue"))
    exposure = _numbers(tags.get("EXIF_ExposureTime"))
    iso = _numbers(tags.get("EXIF_ISOSpeed") or tags.get("EXIF_ISOSpeedRatings"))
    if len(calibration) != 3 or len(centre) != 2 or not (polynomial and dark and exposure):
        return None
    if bits is None or not exposure[0] > 0:
        return None
    return RadianceModel(
        calibration=(calibration[0], calibration[1], calibration[2]),
        vignetting_centre_px=(centre[0], centre[1]),
        vignetting_polynomial=tuple(polynomial),
        black_level=float(np.mean(dark)),
        gain=iso[0] / 100.0 if iso else 1.0,
        exposure_s=exposure[0],
        full_scale=float(2**bits),
    )


def _panels_by_band(
    captures: Sequence[Capture], panels: Mapping[str, PanelReading]
) -> dict[str, BandScale]:
    bands = list(dict.fromkeys(image.bands[0] for c in captures for image in c.images))
    by_common = {_common(band): band for band in bands}
    scales = {}
    for name, reading in panels.items():
        band = by_common.get(_common(name))
        if band is None:
            raise InputError(
                f"panel {name}", f"the flight has no such band (its bands: {', '.join(bands)})"
            )
        scales[band] = BandScale(panel_scale(reading.value, reading.reflectance))
    missing = [band for band in bands if band not in scales]
    if missing:
        raise InputError(
            "calibration panel",
            f"no reading for band(s) {', '.join(missing)}: give one per band "
            "(--panel BAND=VALUE:REFLECTANCE), or none to keep raw values",
        )
    return scales


def _common(band: str) -> str:
    name = band.strip().lower().replace(" ", "_").replace("-", "_")
    return COMMON_BAND_NAMES.get(name, name)


def _numbers(value: str | None) -> list[float]:
    """The numbers in an EXIF (``(0.0018)``) or XMP sequence (``a,b,c``) value."""
    return [float(number) for number in _NUMBER.findall(value)] if value else []
