"""Per-pixel features for the pixel classifiers: colour, vegetation indices, texture, edges.

Scales are in pixels and suit ~10 cm orthomosaics (0.5 m, 1.5 m, 4 m and 10 m
neighbourhoods: a roof, a crown, a tree row spacing).
Filters reflect at array borders; callers read blocks with ``FEATURE_MARGIN_PX`` of margin so
that a pixel's features do not depend on where the block seams fall.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.indices import INDICES, compute_index

TEXTURE_SCALES_PX = (5, 15, 41, 101)
EDGE_SCALES_PX = (9, 31)
FEATURE_MARGIN_PX = 64

FEATURE_NAMES: tuple[str, ...] = (
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
    *(f"mean_{s}px" for s in TEXTURE_SCALES_PX),
    *(f"std_{s}px" for s in TEXTURE_SCALES_PX),
    *(f"exg_mean_{s}px" for s in TEXTURE_SCALES_PX[1:]),
    *(f"edges_{s}px" for s in EDGE_SCALES_PX),
    "shadow",
)


def _box_mean(image: np.ndarray, size_px: int) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (size_px, size_px), borderType=cv2.BORDER_REFLECT)


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Features of a (3, H, W) uint8 RGB array as (H, W, F) float32, in ``FEATURE_NAMES`` order."""
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
    means = [_box_mean(brightness, s) for s in TEXTURE_SCALES_PX]
    squares = [_box_mean(brightness * brightness, s) for s in TEXTURE_SCALES_PX]
    layers += means
    layers += [np.sqrt(np.maximum(sq - m * m, 0.0)) for sq, m in zip(squares, means, strict=True)]
    layers += [_box_mean(excess_green, s) for s in TEXTURE_SCALES_PX[1:]]

    gx = cv2.Sobel(brightness, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(brightness, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    magnitude = cv2.magnitude(gx, gy)
    layers += [_box_mean(magnitude, s) for s in EDGE_SCALES_PX]

    # Cast shadows are dark and, lit by the blue sky only, bluer than their surroundings.
    blueness = unit[..., 2] - 0.5 * (unit[..., 0] + unit[..., 1])
    layers.append((1.0 - value) * np.clip(blueness + 0.5, 0.0, 1.0))

    return np.stack(layers, axis=-1).astype(np.float32, copy=False)
