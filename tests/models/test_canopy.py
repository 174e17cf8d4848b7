"""Canopy mask (vegetation / soil / shadow) on a painted orchard whose masks are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from orchard_scene import make_orchard
from rasterio.transform import from_origin

from core.errors import InputError
from models.canopy import (
    NODATA,
    SHADOW,
    VEGETATION,
    band_numbers,
    canopy_raster,
    classify_canopy,
    otsu_threshold,
    read_bands,
    sample_thresholds,
)


def classes_of(path: Path) -> tuple[np.ndarray, str]:
    """Canopy classes of a whole raster in one piece, and the index they were split on."""
    with rasterio.open(path) as src:
        numbers = band_numbers(src, path, None)
        thresholds = sample_thresholds(src, numbers)
        bands, valid = read_bands(src, numbers)
        classes, _ = classify_canopy(bands, valid, thresholds, src.res[0])
    return classes, thresholds.index


def test_otsu_threshold_falls_between_two_separated_classes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.02, 0.01, 5000), rng.normal(0.3, 0.05, 1000)])
    assert 0.05 < otsu_threshold(values) < 0.2


def test_vegetation_soil_and_shadow_match_the_painted_orchard(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=1)
    classes, index = classes_of(orchard.image)
    assert index == "exg"
    assert ((classes == VEGETATION) == orchard.vegetation).mean() > 0.98
    shadow = classes == SHADOW
    assert (shadow & orchard.shadow).sum() / orchard.shadow.sum() > 0.9
    assert (shadow & orchard.shadow).sum() / shadow.sum() > 0.9


def test_a_nir_band_makes_the_mask_ndvi(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=2, nir=True)
    classes, index = classes_of(orchard.image)
    assert index == "ndvi"
    assert ((classes == VEGETATION) == orchard.vegetation).mean() > 0.98


@pytest.mark.parametrize("gsd_m", [0.03, 0.1, 0.3])
def test_canopy_cover_does_not_depend_on_the_pixel_size(tmp_path: Path, gsd_m: float) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=3, gsd_m=gsd_m)
    classes, _ = classes_of(orchard.image)
    assert (classes == VEGETATION).mean() == pytest.approx(orchard.vegetation.mean(), abs=0.01)


def test_canopy_raster_block_by_block_equals_the_whole_raster_at_once(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=4, gsd_m=0.04)  # 1600 px: 2 blocks
    written = canopy_raster(orchard.image, tmp_path / "canopy.tif")
    with rasterio.open(written.path) as dst:
        assert dst.width > 1024 and dst.nodata == NODATA
        blockwise = dst.read(1)
    whole, _ = classes_of(orchard.image)
    assert (blockwise == whole).all()


def write_raster(path: Path, count: int, crs: str | None, transform) -> Path:
    profile = dict(driver="GTiff", width=8, height=8, count=count, dtype="uint8")
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(np.full((count, 8, 8), 100, np.uint8))
    return path


@pytest.mark.parametrize(
    ("count", "crs", "problem"),
    [
        (3, None, "no CRS"),
        (3, "EPSG:4326", "not projected"),
        (2, "EPSG:32630", "needs red, green and blue"),
    ],
)
def test_unusable_rasters_are_refused_naming_the_file(
    tmp_path: Path, count: int, crs: str | None, problem: str
) -> None:
    path = write_raster(tmp_path / "bad.tif", count, crs, from_origin(600_000, 3_870_000, 0.1, 0.1))
    with pytest.raises(InputError, match=problem) as caught:
        canopy_raster(path, tmp_path / "canopy.tif")
    assert "bad.tif" in str(caught.value)
    assert not (tmp_path / "canopy.tif").exists()
