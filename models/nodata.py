"""No-data in users' orthophotos: collars of fill colour that claim to be data, and gaps filled
so that neighbourhood filters see no step.

- **Collars.** Orthophotos saved without a usable mask (a JPEG-compressed export, an alpha
  band lost on the way, ODM's white background) carry a border of near-white or near-black
  fill. :func:`collar` finds it as GDAL's ``nearblack`` does: from each side of the raster,
  along every row and column, the run of pixels within ``COLLAR_NEAR`` of white or black (or
  already without data) up to the first pixel that is not. Only runs that start at the
  raster's edge count, so white roofs and dark shadows the image's edge does not run into
  are never touched. The working copy streams it in strips (:func:`side_runs`,
  :func:`runs_down`); :func:`collar` is the same on a whole array.
- **Fill.** Texture, edge and Gabor features of a pixel look metres around it; next to
  no-data they see a step from the image to the fill colour, a fake edge that looks built.
  :func:`fill_from_nearest` gives each pixel without data the colour of the nearest pixel
  with data before features are computed (the pixels stay masked). Measured on the
  simulator (tests/test_cli_detect.py): no detection along a cut that is not there without
  it, and a house the cut's fake edge hid found again; a mirror image across the edge
  instead found more false blobs on the WebODM orthophoto.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

COLLAR_NEAR = 15
"""Distance (uint8 levels, every band) to white or black a collar pixel may be: what lossy
compression leaves of a flat fill (``nearblack``'s default)."""


def fill_from_nearest(rgb: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """``rgb`` (B, H, W) with every pixel where ``has_data`` is False given the values of the
    nearest pixel with data (``rgb`` itself when all or none have data)."""
    if has_data.all() or not has_data.any():
        return rgb
    rows, cols = ndimage.distance_transform_edt(
        ~has_data, return_distances=False, return_indices=True
    )
    return rgb[:, rows, cols]


def near_colour(rgb: np.ndarray, colour: int, near: int = COLLAR_NEAR) -> np.ndarray:
    """(H, W) True where every band of uint8 ``rgb`` (B, H, W) is within ``near`` of ``colour``."""
    return (np.abs(rgb.astype(np.int16) - colour) <= near).all(axis=0)


def collar_fill(rgb: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """(H, W) True where a collar run may pass: near white, near black, or without data."""
    return near_colour(rgb, 255) | near_colour(rgb, 0) | ~has_data


def side_runs(fill: np.ndarray) -> np.ndarray:
    """(H, W) True on the runs of ``fill`` that start at the left or right end of each row."""
    left = np.logical_and.accumulate(fill, axis=1)
    right = np.logical_and.accumulate(fill[:, ::-1], axis=1)[:, ::-1]
    return left | right


def runs_down(fill: np.ndarray, open_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runs of ``fill`` (H, W) down each column that go on from the rows above (``open_``
    (W,): the column's run reached this strip), and whether each reaches the strip's end."""
    runs = np.logical_and.accumulate(fill, axis=0) & open_
    return runs, runs[-1] if len(runs) else open_


def collar(rgb: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """(H, W) True on the collar of a whole uint8 image (module docstring), where it has data."""
    fill = collar_fill(rgb, has_data)
    full = np.ones(fill.shape[1], dtype=bool)
    down, _ = runs_down(fill, full)
    up, _ = runs_down(fill[::-1], full)
    return (side_runs(fill) | down | up[::-1]) & has_data
