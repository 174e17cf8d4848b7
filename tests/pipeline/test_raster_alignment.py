"""Co-registration of two orthophotos (pipeline.raster_alignment): a copy with its
georeferencing off by a GNSS-sized shift and a small turn, in another CRS and grid, is warped
onto the reference's grid and moved back where it belongs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from byo_images import reprojected
from photo_factory import make_ortho, write_ortho

from pipeline.raster_alignment import MIN_INLIERS, aligned_onto, warp_onto

SHIFT_M = (1.7, -1.1)
TURN_DEG = 0.3


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ortho(tmp_path_factory.mktemp("ref") / "reference.tif", make_ortho(1500, seed=4))


def error(src: rasterio.io.DatasetReader) -> Affine:
    """The georeferencing error: SHIFT_M and a turn of TURN_DEG about the raster's centre."""
    centre = src.transform @ (src.width / 2, src.height / 2)
    return Affine.translation(*SHIFT_M) @ Affine.rotation(TURN_DEG, pivot=centre)


def misplaced(reference: Path, out: Path) -> Path:
    """``reference``'s pixels placed off by :func:`error`."""
    with rasterio.open(reference) as src:
        profile = src.profile | {"transform": error(src) @ src.transform}
        pixels = src.read()
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(pixels)
    return out


def test_a_misplaced_copy_in_web_mercator_is_put_back(reference: Path, tmp_path: Path) -> None:
    moving = reprojected(misplaced(reference, tmp_path / "off.tif"), tmp_path / "off_3857.tif",
                         "EPSG:3857")  # fmt: skip
    aligned = aligned_onto(reference, moving, tmp_path / "aligned.tif")
    assert aligned.applied and aligned.alignment.tie_points >= 4 * MIN_INLIERS
    with rasterio.open(reference) as ref, rasterio.open(aligned.path) as out:
        assert (out.crs, out.transform, out.shape) == (ref.crs, ref.transform, ref.shape)
        centre = ref.transform @ (ref.width / 2, ref.height / 2)
        east, north = aligned.alignment.move_at(*centre)
        corners = [ref.transform @ (c, r) for c in (0, ref.width) for r in (0, ref.height)]
        # the shift, plus the turn at the corners (0.3 deg over 106 m: 0.55 m)
        farthest = max(math.hypot(*np.subtract(error(ref) @ c, c)) for c in corners)
        assert aligned.moved_m == pytest.approx(farthest, abs=0.15)
        assert (east, north) == pytest.approx((-SHIFT_M[0], -SHIFT_M[1]), abs=0.1)
        core = (slice(200, -200), slice(200, -200))  # away from the edges the warp leaves empty
        expected = ref.read(2)[core].astype(float)
        found = out.read(2)[core].astype(float)
        assert (out.dataset_mask()[core] > 0).all()
    # Put back within a fraction of a pixel: the pixels agree as a resampled copy does.
    assert np.corrcoef(expected.ravel(), found.ravel())[0, 1] > 0.95


def test_the_mask_follows_the_moving_raster(reference: Path, tmp_path: Path) -> None:
    """Where the moving raster has no data (outside it, its alpha), the result is masked."""
    moving = reprojected(misplaced(reference, tmp_path / "off.tif"), tmp_path / "off_4326.tif",
                         "EPSG:4326")  # fmt: skip
    out = warp_onto(moving, reference, tmp_path / "warped.tif")
    with rasterio.open(out) as warped:
        mask = warped.dataset_mask() > 0
    assert not mask[:, :10].any()  # moved 1.7 m east: the first 17 columns have no data
    assert mask[:, 30:-30].mean() > 0.97
