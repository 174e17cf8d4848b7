"""A user's orthophoto as the models read it: CRS in true metres, set GSD, named bands, mask
(less a fill collar), uint8 RGB view; and the layouts and rasters it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from core.errors import InputError
from models.nodata import collar, fill_from_nearest
from models.working_copy import (
    inspect_image,
    make_working_copy,
    parse_bands,
    resampling_for,
    to_source_crs,
)

BERKANE_UTM = (563_900.0, 3_865_400.0)  # EPSG:32630


def write(path: Path, bands: np.ndarray, *, crs="EPSG:32630", gsd=0.1, origin=BERKANE_UTM,
          **profile) -> Path:  # fmt: skip
    count, height, width = bands.shape
    transform = Affine(gsd, 0, origin[0], 0, -gsd, origin[1])
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count,
        dtype=bands.dtype, crs=crs, transform=transform, **profile,
    ) as dst:  # fmt: skip
        dst.write(bands)
    return path


def multispectral(path: Path, *, nodata: int | None = None) -> Path:
    """Four unnamed uint16 bands, 12-bit: blue, green, red, NIR; the left 20 columns nodata."""
    rng = np.random.default_rng(3)
    bands = rng.integers(200, 4000, (4, 120, 160)).astype(np.uint16)
    bands[:, 0, 0] = 4095
    if nodata is not None:
        bands[:, :, :20] = nodata
    return write(path, bands, nodata=nodata)


def test_band_names_parse_as_cameras_write_them() -> None:
    assert parse_bands("red=3, NIR=4,Red edge=5,g=2") == {
        "red": 3,
        "nir": 4,
        "rededge": 5,
        "green": 2,
    }
    assert parse_bands(None) is None
    for bad in ("red3", "infrared=4", "red=1,red=2", " , "):
        with pytest.raises(InputError, match="--bands"):
            parse_bands(bad)


def test_unnamed_multispectral_bands_are_refused_not_guessed(tmp_path: Path) -> None:
    path = multispectral(tmp_path / "ms.tif")
    with pytest.raises(InputError, match="unsupported band layout.*--bands"):
        inspect_image(path)
    with pytest.raises(InputError, match="has 4 band"):
        inspect_image(path, {"red": 3, "nir": 7})


def test_uint16_bands_are_named_masked_and_scaled_to_uint8_rgb(tmp_path: Path) -> None:
    path = multispectral(tmp_path / "ms.tif", nodata=0)
    image = inspect_image(path, parse_bands("blue=1,green=2,red=3,nir=4"))
    assert image.has_rgb and image.gsd_m == pytest.approx(0.1)
    copy = make_working_copy(image, tmp_path / "work", 0.2)
    with rasterio.open(path) as src:
        raw = src.read()
    with rasterio.open(copy.path) as src:
        assert src.descriptions == ("red", "green", "blue", "nir")
        assert src.dtypes[0] == "uint16" and src.res == pytest.approx((0.2, 0.2))
        values, mask = src.read(), src.dataset_mask()
    # 2 x 2 averages of the source, nodata left out of the mask
    expected_nir = raw[3, :, 20:].reshape(60, 2, 70, 2).mean(axis=(1, 3))
    assert np.abs(values[3, :, 10:].astype(float) - expected_nir).max() <= 1
    assert (mask[:, :10] == 0).all() and (mask[:, 10:] == 255).all()
    with rasterio.open(copy.rgb_path) as src:
        assert src.dtypes[0] == "uint8" and src.count == 3
        rgb = src.read()
    expected_red = values[0, :, 10:].astype(float) * 255 / 4095  # 12-bit white point
    assert np.abs(rgb[0, :, 10:] - expected_red).max() <= 1


def test_lon_lat_and_web_mercator_work_in_utm_and_results_go_back(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (3, 100, 100)).astype(np.uint8)
    lonlat = write(tmp_path / "ll.tif", rgb, crs="EPSG:4326", gsd=1e-6, origin=(-2.3, 34.93))
    mercator = write(tmp_path / "wm.tif", rgb, crs="EPSG:3857", gsd=0.12, origin=(-256000, 4152000))
    lonlat_gsd = np.sqrt(0.0913 * 0.1110)  # 1e-6 degree of longitude and of latitude, in m
    for path, gsd in ((lonlat, lonlat_gsd), (mercator, 0.12 * np.cos(np.radians(34.9)))):
        image = inspect_image(path)
        assert image.working_crs == CRS.from_epsg(32630)
        assert image.gsd_m == pytest.approx(gsd, rel=0.02)
        copy = make_working_copy(image, tmp_path / path.stem, 0.4)
        back = to_source_crs(copy.path, image, tmp_path / f"{path.stem}_back.tif")
        with rasterio.open(back) as src, rasterio.open(path) as original:
            assert src.crs == original.crs
            assert src.bounds.left == pytest.approx(original.bounds.left, abs=3 * src.res[0])
            assert src.bounds.top == pytest.approx(original.bounds.top, abs=3 * src.res[1])


def test_rasters_the_commands_cannot_use_are_refused_by_name(tmp_path: Path) -> None:
    rgb = np.zeros((3, 20, 20), np.uint8)
    cases = {
        "raster has no CRS": write(tmp_path / "nocrs.tif", rgb, crs=None),
        "pixels of 2.000 m": write(tmp_path / "coarse.tif", rgb, gsd=2.0),
        "1 uint8 band": write(tmp_path / "grey.tif", rgb[:1]),
        "not a raster": tmp_path / "notes.tif",
        "raster not found": tmp_path / "missing.tif",
    }
    (tmp_path / "notes.tif").write_text("not a raster")
    for problem, path in cases.items():
        with pytest.raises(InputError, match=problem) as error:
            inspect_image(path)
        assert path.name in str(error.value)


def test_a_fill_collar_without_a_mask_becomes_no_data_but_white_roofs_stay(
    tmp_path: Path,
) -> None:
    """A noisy white corner and a black bottom band, as a lossy export leaves them, drop out
    of the copy's mask (in strips taller than one, as the whole-array rule says); a white roof
    and a black shadow inside the image stay data."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(40, 200, (3, 600, 300)).astype(np.uint8)
    rows, cols = np.indices((600, 300))
    corner = rows + cols < 150
    bottom = rows >= 560
    rgb[:, corner] = rng.integers(245, 256, (3, int(corner.sum())))
    rgb[:, bottom] = rng.integers(0, 8, (3, int(bottom.sum())))
    rgb[:, 300:340, 100:140] = 255  # a white roof
    rgb[:, 400:420, 0:30] = 3  # a deep shadow reaching the left edge: cut by a grey pixel
    rgb[:, 400:420, 0] = 120
    path = write(tmp_path / "collar.tif", rgb)
    copy = make_working_copy(inspect_image(path), tmp_path / "work", 0.1)
    with rasterio.open(copy.path) as src:
        has_data = src.dataset_mask() > 0
    assert np.array_equal(has_data, ~(corner | bottom))
    assert np.array_equal(collar(rgb, np.ones((600, 300), bool)), corner | bottom)


def test_no_data_is_filled_from_the_nearest_pixel_with_data() -> None:
    rgb = np.arange(3 * 4 * 6, dtype=np.uint8).reshape(3, 4, 6)
    has_data = np.zeros((4, 6), bool)
    has_data[:, :2] = True
    filled = fill_from_nearest(rgb, has_data)
    assert np.array_equal(filled[:, :, :2], rgb[:, :, :2])
    assert (filled[:, :, 2:] == rgb[:, :, 1:2]).all()  # the last column with data, repeated


def test_near_native_pixels_are_resampled_sharply_much_finer_ones_averaged() -> None:
    assert resampling_for(0.1, 0.1) == resampling_for(0.5, 0.1) == Resampling.cubic
    assert resampling_for(0.03, 0.1) == Resampling.average
