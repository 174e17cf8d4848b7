"""Per-pixel features for the pixel classifiers: colour, vegetation indices, texture, edges.

A :class:`FeatureSet` says which neighbourhoods the features look at, in pixels of the image
they are computed on: :data:`BUILDING_FEATURES` for ~10 cm orthomosaics (0.5 m, 1.5 m, 4 m and
10 m: a roof, a crown, a tree row spacing), :data:`CROP_FEATURES` for the coarser grid crop
health is classified on (see ``models.crop_health``), with Gabor energy for row and crown
patterns.
With ``shadow_heights_m`` (the building features) a set also looks for cast shadows on the side
away from the sun (:func:`shadow_sides`), which needs the sun at capture time (``models.sun``).
Filters reflect at array borders; callers read blocks with ``margin_px`` of margin so that a
pixel's features do not depend on where the block seams fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from models.indices import INDICES, compute_index

GABOR_ORIENTATIONS = 4
"""Orientations (0°, 45°, 90°, 135°) of the Gabor filters; their mean and spread over
orientations are the features, so a field's texture scores alike whatever its row bearing."""
SHADOW_SAMPLES = 4
"""Points sampled along each side's ray by :func:`shadow_sides`."""
SHADOW_SMOOTH_PX = 5
"""Box (pixels) the shadow layer is averaged over before it is sampled along the rays."""


@dataclass(frozen=True)
class FeatureSet:
    """Neighbourhood sizes (pixels) of the features, and the margin (pixels) that covers them."""

    texture_scales_px: tuple[int, ...]
    edge_scales_px: tuple[int, ...]
    margin_px: int
    gabor_wavelengths_px: tuple[float, ...] = ()
    shadow_heights_m: tuple[float, ...] = ()
    """Heights of the raised things whose shadows :func:`shadow_sides` looks for."""

    @property
    def names(self) -> tuple[str, ...]:
        """One name per feature layer, in the order of :meth:`compute`."""
        scales = self.texture_scales_px
        return (
            "red",
            "green",
            "blue",
            *INDICES,
            "hue_sin",
            "hue_cos",
            "saturation",
            "value",
            "lab_l",
            "lab_a",
            "lab_b",
            *(f"mean_{s}px" for s in scales),
            *(f"std_{s}px" for s in scales),
            *(f"exg_mean_{s}px" for s in scales[1:]),
            *(f"edges_{s}px" for s in self.edge_scales_px),
            "shadow",
            *(
                f"gabor_{kind}_{w:g}px"
                for w in self.gabor_wavelengths_px
                for kind in ("energy", "anisotropy")
            ),
            *(f"shadow_side_{h:g}m" for h in self.shadow_heights_m),
        )

    def compute(
        self,
        rgb: np.ndarray,
        stride_px: int = 1,
        *,
        shadow_px_per_m: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Features of a (3, H, W) uint8 RGB array as (H, W, F) float32, in :attr:`names` order
        (a view of :meth:`planes`); of every ``stride_px``-th pixel only, with ``stride_px`` > 1
        (filters still see all).

        ``shadow_px_per_m`` is where the shadow of 1 m of height falls, in (columns, rows)
        (:func:`models.sun.shadow_px_per_m`); without it the shadow-side features are NaN
        (missing: the sun at capture time is unknown)."""
        return np.moveaxis(self.planes(rgb, stride_px, shadow_px_per_m=shadow_px_per_m), 0, -1)

    def planes(
        self,
        rgb: np.ndarray,
        stride_px: int = 1,
        *,
        shadow_px_per_m: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """The features of :meth:`compute` as contiguous (F, H, W) float32 planes, one per
        name: each layer is copied whole (no interleaving), and a classifier gathers only the
        pixels it predicts."""
        image = np.ascontiguousarray(np.moveaxis(rgb, 0, -1))
        unit = image.astype(np.float32) / 255.0
        hsv = cv2.cvtColor(unit, cv2.COLOR_RGB2HSV)
        lab = cv2.cvtColor(unit, cv2.COLOR_RGB2Lab)
        hue_rad = np.deg2rad(hsv[..., 0])
        value = hsv[..., 2]
        excess_green = np.nan_to_num(compute_index("exg", rgb))

        layers: list[np.ndarray] = [unit[..., 0], unit[..., 1], unit[..., 2]]
        layers += [np.clip(np.nan_to_num(compute_index(name, rgb)), -2.0, 2.0) for name in INDICES]
        layers += [np.sin(hue_rad) * hsv[..., 1], np.cos(hue_rad) * hsv[..., 1], hsv[..., 1], value]
        layers += [lab[..., 0] / 100.0, lab[..., 1] / 100.0, lab[..., 2] / 100.0]

        brightness = lab[..., 0] / 100.0
        means = [_box_mean(brightness, s) for s in self.texture_scales_px]
        squares = [_box_mean(brightness * brightness, s) for s in self.texture_scales_px]
        layers += means
        layers += [
            np.sqrt(np.maximum(sq - m * m, 0.0)) for sq, m in zip(squares, means, strict=True)
        ]
        layers += [_box_mean(excess_green, s) for s in self.texture_scales_px[1:]]

        gx = cv2.Sobel(brightness, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        gy = cv2.Sobel(brightness, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        magnitude = cv2.magnitude(gx, gy)
        layers += [_box_mean(magnitude, s) for s in self.edge_scales_px]

        # Cast shadows are dark and, lit by the blue sky only, bluer than their surroundings.
        blueness = unit[..., 2] - 0.5 * (unit[..., 0] + unit[..., 1])
        shadowness = (1.0 - value) * np.clip(blueness + 0.5, 0.0, 1.0)
        layers.append(shadowness)

        for wavelength_px in self.gabor_wavelengths_px:
            layers += gabor_energy(brightness, wavelength_px)
        if self.shadow_heights_m:
            if shadow_px_per_m is None:
                layers += [np.full_like(value, np.nan) for _ in self.shadow_heights_m]
            else:
                reach = self._shadow_reach_px()
                layers += shadow_sides(shadowness, shadow_px_per_m, self.shadow_heights_m, reach)

        step = (slice(None, None, stride_px), slice(None, None, stride_px))
        out = np.empty((len(layers), *value[step].shape), dtype=np.float32)
        for plane, layer in zip(out, layers, strict=True):
            plane[...] = layer[step]
        return out

    def reach_px(self) -> int:
        """How far (pixels) the widest filter looks from a pixel; ``margin_px`` must cover it."""
        boxes = [s // 2 for s in (*self.texture_scales_px, *self.edge_scales_px)]
        gabors = [_gabor_half_px(w) + _energy_box_px(w) // 2 for w in self.gabor_wavelengths_px]
        shadows = [self._shadow_reach_px() + SHADOW_SMOOTH_PX // 2] if self.shadow_heights_m else []
        return max([*boxes, *gabors, *shadows]) + 1  # + 1: the Sobel kernel

    def _shadow_reach_px(self) -> int:
        """The longest shadow ray: what the margin leaves (longer, low-sun shadows are cut)."""
        return self.margin_px - SHADOW_SMOOTH_PX // 2 - 1


BUILDING_FEATURES = FeatureSet(
    texture_scales_px=(5, 15, 41, 101),
    edge_scales_px=(9, 31),
    margin_px=64,
    shadow_heights_m=(3.0, 6.0),
)
"""The built-up classifier's features, on the orthomosaic's own ~10 cm pixels; shadow sides for
one and two storeys (rays of up to 6 m at 10 cm)."""
CROP_FEATURES = FeatureSet(
    texture_scales_px=(3, 7, 15, 31),
    edge_scales_px=(3, 9),
    margin_px=34,
    gabor_wavelengths_px=(5.0, 12.0),
)
"""The crop-health classifier's features, on its 0.4 m working grid: 1.2-12 m neighbourhoods,
Gabor at 2 m (crowns) and 4.8 m (orchard and vine row spacing)."""


def gabor_energy(brightness: np.ndarray, wavelength_px: float) -> list[np.ndarray]:
    """Local Gabor energy at ``wavelength_px``: its mean over ``GABOR_ORIENTATIONS`` and its
    anisotropy (max - min over orientations, over the mean: high for rows, low for clumps)."""
    sigma = 0.56 * wavelength_px  # a one-octave bandwidth
    half = _gabor_half_px(wavelength_px)
    energies = []
    for k in range(GABOR_ORIENTATIONS):
        theta = np.pi * k / GABOR_ORIENTATIONS
        size = (2 * half + 1, 2 * half + 1)
        even = cv2.getGaborKernel(size, sigma, theta, wavelength_px, 1.0, 0.0)
        odd = cv2.getGaborKernel(size, sigma, theta, wavelength_px, 1.0, np.pi / 2)
        even -= even.mean()  # no response to flat brightness
        responses = [
            cv2.filter2D(brightness, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
            for kernel in (even, odd)
        ]
        energies.append(_box_mean(cv2.magnitude(*responses), _energy_box_px(wavelength_px)))
    stack = np.stack(energies)
    mean = stack.mean(axis=0)
    anisotropy = (stack.max(axis=0) - stack.min(axis=0)) / (mean + 1e-3)
    return [mean, anisotropy]


def shadow_sides(
    shadowness: np.ndarray,
    shadow_px_per_m: tuple[float, float],
    heights_m: tuple[float, ...],
    reach_px: float,
) -> list[np.ndarray]:
    """Per height h, how much more shadow lies on a pixel's anti-sun side than on its sun side.

    Along the ray a pixel's shadow would take (``shadow_px_per_m`` × h, at most ``reach_px``
    long), the darkest of :data:`SHADOW_SAMPLES` points of the smoothed ``shadowness``, minus
    the same on the ray towards the sun. A roof has its shadow band on the anti-sun side;
    flat bright ground (soil, paving, roads) has none of its own, or another thing's on its
    sun side. Measured along the sun's azimuth, the cue is the same in winter and summer.
    """
    dark = _box_mean(shadowness, SHADOW_SMOOTH_PX)
    col, row = shadow_px_per_m
    per_m = math.hypot(col, row)
    if per_m < 1e-9:  # the sun overhead: no shadow anywhere
        return [np.zeros_like(dark) for _ in heights_m]
    sides = []
    for height_m in heights_m:
        step = min(height_m * per_m, reach_px) / SHADOW_SAMPLES / per_m
        away = toward = None
        for k in range(1, SHADOW_SAMPLES + 1):
            dx, dy = k * step * col, k * step * row
            a, t = _shifted(dark, dx, dy), _shifted(dark, -dx, -dy)
            away = a if away is None else np.maximum(away, a)
            toward = t if toward is None else np.maximum(toward, t)
        sides.append(away - toward)
    return sides


def _shifted(image: np.ndarray, dx_px: float, dy_px: float) -> np.ndarray:
    """``image`` sampled at (col + ``dx_px``, row + ``dy_px``), bilinear, borders reflected."""
    height, width = image.shape
    to_source = np.float32([[1.0, 0.0, dx_px], [0.0, 1.0, dy_px]])
    return cv2.warpAffine(
        image,
        to_source,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


def _gabor_half_px(wavelength_px: float) -> int:
    return int(np.ceil(3 * 0.56 * wavelength_px))


def _energy_box_px(wavelength_px: float) -> int:
    return 2 * int(round(wavelength_px)) + 1


def _box_mean(image: np.ndarray, size_px: int) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (size_px, size_px), borderType=cv2.BORDER_REFLECT)
