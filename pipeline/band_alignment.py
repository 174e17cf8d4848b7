"""Align the band images of one multi-lens capture (MicaSense, Sequoia, DJI multispectral).

Each band has its own lens, a few centimetres from the others and pointing a little
differently, so the band images of one trigger are offset by pixels to tens of pixels: an
index (NDVI) of unaligned bands mixes neighbouring ground. Every band image is registered to a
reference band by OpenCV's ECC on gradient magnitudes (a crown is dark in blue and bright in
NIR, but its edges are in the same place), coarse to fine, from a phase-correlation start.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from core.errors import InputError, ProcessingError
from core.types import Capture, ImageRecord

DEFAULT_REFERENCE_BAND = "green"
"""On the real RedEdge flight capture every band aligns to green within 0.2 px (median); with
NIR or red edge as the reference blue cannot be aligned, with blue or red NIR keeps 0.3-0.5 px
(visible and NIR edges of vegetation differ most; green sits between them)."""
MOTIONS = {"homography": cv2.MOTION_HOMOGRAPHY, "affine": cv2.MOTION_AFFINE}
"""Transforms a band may take; homography also absorbs the lenses' small tilts."""
GRADIENT_SIGMA_PX = 1.0
"""Gaussian blur before the gradient: keeps sensor noise out of the edges."""
MAX_PYRAMID_LEVELS = 2
MIN_LEVEL_SIDE_PX = 120
"""ECC runs at 1/4, 1/2 and full size, or fewer levels if the coarsest gets smaller than this."""
COARSE_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
FINE_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 5, 1e-5)
"""ECC stopping rules on the reduced levels and at full size. More full-size iterations cost
~0.6 s each and, on the real RedEdge capture, pulled red a further 0.5 px off in a striped
field (checked against SIFT tie points): five is where the check stops improving."""
MAX_CORNER_DRIFT = 0.05
"""ECC may move an image corner this share of the image width away from the phase-correlation
start; further means it diverged (too little texture the two bands share)."""
MAX_RESIDUAL_PX = 1.0
MIN_CONFIRMING_TILES = 3
"""A band is refused as not aligned unless this many residual tiles share texture with the
reference and their median offset after ECC is within ``MAX_RESIDUAL_PX``."""
RESIDUAL_TILE_PX = 160
MIN_TILE_VALID = 0.9
MIN_TILE_RESPONSE = 0.2
"""Residuals are measured in tiles of this size with at least this share of valid pixels and a
phase-correlation peak at least this strong (weaker: a bare tile, nothing to measure)."""


@dataclass(frozen=True)
class Residual:
    """Offsets (px) between a band and the reference, phase-correlated tile by tile."""

    median_px: float
    rms_px: float
    max_px: float
    tiles: int


@dataclass(frozen=True)
class Registration:
    """How one band image maps onto the reference band, and how well.

    ``homography`` takes reference pixel coordinates (x, y) to this image's, the convention of
    ``cv2.warpPerspective(..., flags=WARP_INVERSE_MAP)``.
    """

    homography: np.ndarray
    initial_shift_px: tuple[float, float]
    """Whole-image phase correlation (dx, dy): the misalignment before, as a translation."""
    correlation: float
    """ECC's enhanced correlation coefficient of the gradients at full size (1 = identical)."""
    before: Residual
    after: Residual


@dataclass(frozen=True)
class BandAlignment:
    """A capture's band images registered to one of them (``registrations`` follow
    ``capture.images``; the reference's is the identity)."""

    capture: Capture
    reference_band: str
    registrations: tuple[Registration, ...]


@dataclass(frozen=True)
class AlignedStack:
    """A capture's bands resampled onto the reference band's pixel grid."""

    bands: tuple[str, ...]
    pixels: np.ndarray
    """(band, row, col) float32 digital numbers, 0 outside ``valid``."""
    valid: np.ndarray
    """(row, col) True where every band image covers the pixel."""


def align_capture(
    capture: Capture, reference_band: str | None = None, *, motion: str = "homography"
) -> BandAlignment:
    """Register every band image of ``capture`` to the one holding ``reference_band``
    (default: green, else the capture's first band).

    InputError if the capture has a single image, its images differ in size, a file cannot be
    read or the reference band is missing; ProcessingError if a band cannot be registered.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r} is not one of {sorted(MOTIONS)}")
    if len(capture.images) < 2:
        source = capture.images[0].path if capture.images else capture.capture_id
        raise InputError(source, f"capture {capture.capture_id} has a single band image")
    reference_band = reference_band or default_reference_band(capture)
    try:
        reference = capture.band(reference_band)
    except KeyError as exc:
        raise InputError(capture.images[0].path, str(exc.args[0])) from exc
    index = capture.images.index(reference)
    images = [read_image(record) for record in capture.images]
    for record, image in zip(capture.images, images, strict=True):
        _check_same_size(record, image, reference, images[index])
    gradients = [gradient_magnitude(_luminance(image)) for image in images]
    registrations = []
    for i, (record, gradient) in enumerate(zip(capture.images, gradients, strict=True)):
        if i == index:
            registrations.append(_identity())
            continue
        try:
            registrations.append(register(gradients[index], gradient, motion=motion))
        except ProcessingError as exc:
            raise ProcessingError(f"{record.path}: band {record.bands} not aligned: {exc}") from exc
    return BandAlignment(capture, reference_band, tuple(registrations))


def default_reference_band(capture: Capture) -> str:
    """:data:`DEFAULT_REFERENCE_BAND` if the capture has it, else its first band."""
    return DEFAULT_REFERENCE_BAND if DEFAULT_REFERENCE_BAND in capture.bands else capture.bands[0]


def aligned_stack(alignment: BandAlignment) -> AlignedStack:
    """Every band of the capture warped onto the reference band's grid (bilinear)."""
    homographies = [registration.homography for registration in alignment.registrations]
    return stack_on_reference(alignment.capture, homographies)


def stack_on_reference(
    capture: Capture,
    homographies: Sequence[np.ndarray],
    convert: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None,
) -> AlignedStack:
    """The capture's band images warped by their ``homographies`` (one per image, as in
    :class:`Registration`) onto the reference band's grid (bilinear), each image's pixels
    first passed through its ``convert`` function if given (e.g. to reflectance, which
    must be done in the image's own pixel grid: vignetting)."""
    layers, valid = [], None
    for i, (record, homography) in enumerate(zip(capture.images, homographies, strict=True)):
        image = read_image(record)
        height, width = image.shape[1:]
        for channel in image:
            values = channel if convert is None else convert[i](channel)
            layers.append(_warp(values.astype(np.float32), homography, (width, height)))
        coverage = _warp(np.ones((height, width), np.float32), homography, (width, height))
        covered = coverage >= 0.999
        valid = covered if valid is None else valid & covered
    if valid is None:
        raise InputError(capture.capture_id, "capture has no band image")
    pixels = np.stack(layers) * valid
    return AlignedStack(capture.bands, pixels.astype(np.float32), valid)


def register(
    reference: np.ndarray, image: np.ndarray, *, motion: str = "homography"
) -> Registration:
    """Register ``image`` to ``reference`` (two gradient-magnitude arrays of one size).

    Phase correlation gives the translation, then ECC refines an affine transform on the
    reduced levels and ``motion`` at full size. ProcessingError if ECC fails or diverges.
    """
    (dx, dy), _ = cv2.phaseCorrelate(*_phase_inputs(reference, image))
    start = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
    homography = start
    levels = _pyramid_levels(reference.shape)
    correlation = 0.0
    for level in range(levels, -1, -1):
        scale = np.diag([0.5**level, 0.5**level, 1.0])
        level_motion = MOTIONS[motion] if level == 0 else cv2.MOTION_AFFINE
        warp = scale @ homography @ np.linalg.inv(scale)
        warp = warp if level_motion == cv2.MOTION_HOMOGRAPHY else warp[:2]
        try:
            correlation, warp = cv2.findTransformECC(
                _reduced(reference, level),
                _reduced(image, level),
                warp.astype(np.float32),
                level_motion,
                FINE_CRITERIA if level == 0 else COARSE_CRITERIA,
                None,
                1,
            )
        except cv2.error as exc:
            if level > 0:  # too little shared texture at this size: go on from the last estimate
                continue
            raise ProcessingError(f"ECC failed at full size: {exc.err}") from exc
        warp = np.vstack((warp, [0.0, 0.0, 1.0])) if warp.shape[0] == 2 else warp
        homography = np.linalg.inv(scale) @ warp.astype(np.float64) @ scale
    drift_px = _corner_drift_px(start, homography, reference.shape)
    if drift_px > MAX_CORNER_DRIFT * reference.shape[1]:
        raise ProcessingError(f"ECC diverged: a corner moved {drift_px:.0f} px from the start")
    after = tile_residual(reference, image, homography)
    if after.tiles < MIN_CONFIRMING_TILES:
        raise ProcessingError(
            f"only {after.tiles} tiles share texture with the reference band (at least "
            f"{MIN_CONFIRMING_TILES} needed; ECC correlation {correlation:.2f})"
        )
    if after.median_px > MAX_RESIDUAL_PX:
        raise ProcessingError(
            f"still misaligned by {after.median_px:.1f} px (median of {after.tiles} tiles, "
            f"limit {MAX_RESIDUAL_PX:g} px; ECC correlation {correlation:.2f})"
        )
    return Registration(
        homography=homography,
        initial_shift_px=(float(dx), float(dy)),
        correlation=float(correlation),
        before=tile_residual(reference, image),
        after=after,
    )


def tile_residual(
    reference: np.ndarray, image: np.ndarray, homography: np.ndarray | None = None
) -> Residual:
    """Offsets left between two gradient images (``image`` warped by ``homography``), one
    phase correlation per tile: a misalignment that varies across the frame shows here."""
    height, width = reference.shape
    valid = np.ones_like(image)
    if homography is not None:
        image = _warp(image, homography, (width, height))
        valid = _warp(valid, homography, (width, height))
    window = cv2.createHanningWindow((RESIDUAL_TILE_PX, RESIDUAL_TILE_PX), cv2.CV_64F)
    offsets = []
    for top in range(0, height - RESIDUAL_TILE_PX + 1, RESIDUAL_TILE_PX):
        for left in range(0, width - RESIDUAL_TILE_PX + 1, RESIDUAL_TILE_PX):
            tile = np.s_[top : top + RESIDUAL_TILE_PX, left : left + RESIDUAL_TILE_PX]
            if (valid[tile] >= 0.999).mean() < MIN_TILE_VALID:
                continue
            (dx, dy), response = cv2.phaseCorrelate(
                reference[tile].astype(np.float64), image[tile].astype(np.float64), window
            )
            if response >= MIN_TILE_RESPONSE:
                offsets.append(math.hypot(dx, dy))
    if not offsets:
        return Residual(math.nan, math.nan, math.nan, 0)
    values = np.array(offsets)
    return Residual(
        median_px=float(np.median(values)),
        rms_px=float(np.sqrt(np.mean(values**2))),
        max_px=float(values.max()),
        tiles=len(values),
    )


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Edge strength of a single-band image (float32), after a light Gaussian blur."""
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), GRADIENT_SIGMA_PX)
    return cv2.magnitude(
        cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    )


def read_image(record: ImageRecord) -> np.ndarray:
    """The pixels of a band image as (channel, row, col) float32; InputError if unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(record.path) as src:
                return src.read().astype(np.float32)
        except RasterioError as exc:
            raise InputError(record.path, f"band image not readable: {exc}") from exc


def _check_same_size(
    record: ImageRecord, image: np.ndarray, reference: ImageRecord, reference_image: np.ndarray
) -> None:
    if image.shape[1:] != reference_image.shape[1:]:
        (height, width), (ref_height, ref_width) = image.shape[1:], reference_image.shape[1:]
        raise InputError(
            record.path,
            f"band image is {width}x{height} px but the reference band image "
            f"{reference.path.name} is {ref_width}x{ref_height} px: the bands of one capture "
            "must share a size to be aligned (resample them first)",
        )


def _luminance(image: np.ndarray) -> np.ndarray:
    return image[0] if len(image) == 1 else image.mean(axis=0)


def _phase_inputs(
    reference: np.ndarray, image: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # float64 copies: OpenCV 5.0's phaseCorrelate multiplies float32 inputs by the window
    # in place, which would corrupt the caller's arrays.
    window = cv2.createHanningWindow(reference.shape[::-1], cv2.CV_64F)
    return reference.astype(np.float64), image.astype(np.float64), window


def _pyramid_levels(shape: tuple[int, ...]) -> int:
    return max(0, min(MAX_PYRAMID_LEVELS, int(math.log2(min(shape) / MIN_LEVEL_SIDE_PX))))


def _reduced(image: np.ndarray, level: int) -> np.ndarray:
    if level == 0:
        return image
    factor = 0.5**level
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def _warp(image: np.ndarray, homography: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.warpPerspective(
        image, homography, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0
    )


def _corner_drift_px(start: np.ndarray, end: np.ndarray, shape: tuple[int, ...]) -> float:
    height, width = shape
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    moved = [cv2.perspectiveTransform(corners[None], h)[0] for h in (start, end)]
    return float(np.hypot(*(moved[0] - moved[1]).T).max())


def _identity() -> Registration:
    none = Residual(0.0, 0.0, 0.0, 0)
    return Registration(np.eye(3), (0.0, 0.0), 1.0, none, none)
