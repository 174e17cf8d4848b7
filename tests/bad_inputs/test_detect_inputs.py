"""Bad orthophotos, models and footprints given to `raqib detect` and `raqib evaluate
buildings|change`: one line naming the file and what is wrong, exit 2, nothing written."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from byo_images import run
from shapely.geometry import Point, box

from models.training import DEFAULT_HEALTH_MODEL

LEFT, TOP = 564_000.0, 3_865_400.0  # Berkane, EPSG:32630


def raster(
    path: Path,
    *,
    bands: int = 3,
    crs: str | None = "EPSG:32630",
    left: float = LEFT,
    descriptions: tuple[str, ...] = (),
) -> Path:
    """A 200 x 200 px uint8 raster at 10 cm."""
    pixels = np.random.default_rng(0).integers(0, 255, (bands, 200, 200), np.uint8)
    profile = {"driver": "GTiff", "width": 200, "height": 200, "count": bands, "dtype": "uint8",
               "transform": Affine(0.1, 0, left, 0, -0.1, TOP), "crs": crs}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        for k, name in enumerate(descriptions, start=1):
            dst.set_band_description(k, name)
    return path


def text_file(tmp: Path) -> Path:
    (tmp / "ortho.tif").write_text("orthophoto to follow")
    return tmp / "ortho.tif"


ORTHOPHOTOS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda tmp: tmp / "absent.tif", "not found"),
    "not a raster": (text_file, "not a raster"),
    "no CRS": (lambda tmp: raster(tmp / "no_crs.tif", crs=None), "no CRS"),
    "one band": (lambda tmp: raster(tmp / "grey.tif", bands=1), "unsupported band layout"),
    "five unnamed bands": (
        lambda tmp: raster(tmp / "five.tif", bands=5),
        "unsupported band layout",
    ),
    "red and NIR only": (
        lambda tmp: raster(tmp / "rn.tif", bands=2, descriptions=("red", "nir")),
        "buildings need red, green and blue",
    ),
}


@pytest.mark.parametrize("case", ORTHOPHOTOS)
def test_detect_buildings_refuses_bad_orthophotos(case: str, tmp_path: Path, capsys) -> None:
    make, problem = ORTHOPHOTOS[case]
    bad = make(tmp_path)
    out = tmp_path / "out.gpkg"
    code, stdout, stderr = run("detect", "buildings", bad, "-o", out, capsys=capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"error: {bad}: ") and problem in stderr, stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_a_satellite_scene_is_refused_for_its_pixel_size(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    landsat = shared_data / "rasters" / "rasterio" / "RGB.byte.tif"  # 300 m pixels
    code, _, stderr = run("detect", "buildings", landsat, "-o", tmp_path / "o.gpkg",
                          capsys=capsys)  # fmt: skip
    assert code == 2
    assert stderr.startswith(f"error: {landsat}: pixels of 300") and "0.6 m" in stderr


def test_change_between_rasters_that_do_not_overlap(tmp_path: Path, capsys) -> None:
    before = raster(tmp_path / "before.tif")
    after = raster(tmp_path / "after.tif", left=LEFT + 5_000)
    out = tmp_path / "out.gpkg"
    code, _, stderr = run("detect", "change", before, after, "-o", out, capsys=capsys)
    assert code == 2 and not out.exists()
    assert stderr.startswith(f"error: {after}: does not overlap {before}"), stderr


def test_change_names_the_bad_one_of_two(tmp_path: Path, capsys) -> None:
    before = raster(tmp_path / "before.tif")
    after = raster(tmp_path / "after.tif", crs=None)
    code, _, stderr = run("detect", "change", before, after, "-o", tmp_path / "o.gpkg",
                          capsys=capsys)  # fmt: skip
    assert code == 2 and stderr.startswith(f"error: {after}: raster has no CRS")


def test_a_model_that_is_not_a_building_model(tmp_path: Path, capsys) -> None:
    ortho = raster(tmp_path / "ortho.tif")
    code, _, stderr = run("detect", "buildings", ortho, "-o", tmp_path / "o.gpkg", "--model",
                          DEFAULT_HEALTH_MODEL, capsys=capsys)  # fmt: skip
    assert code == 2
    assert stderr.startswith(f"error: {DEFAULT_HEALTH_MODEL}: not a building model")


def no_crs_footprints(tmp: Path) -> Path:
    with warnings.catch_warnings():  # pyogrio warns that the file will have no CRS: the point
        warnings.simplefilter("ignore", UserWarning)
        gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)]).to_file(tmp / "no_crs.gpkg")
    return tmp / "no_crs.gpkg"


def points(tmp: Path) -> Path:
    frame = gpd.GeoDataFrame(geometry=[Point(LEFT, TOP)], crs="EPSG:32630")
    frame.to_file(tmp / "points.gpkg")
    return tmp / "points.gpkg"


FOOTPRINTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda tmp: tmp / "absent.gpkg", "no such file"),
    "not a vector file or raster": (text_file, "neither a vector file nor a raster"),
    "no CRS": (no_crs_footprints, "has no CRS"),
    "points": (points, "footprints must be polygons, not ['Point']"),
    "a three-band raster": (
        lambda tmp: raster(tmp / "rgb.tif"),
        "a mask needs one band, it has 3",
    ),
}


@pytest.mark.parametrize("command", ["buildings", "change"])
@pytest.mark.parametrize("case", FOOTPRINTS)
def test_evaluate_refuses_bad_footprints(command: str, case: str, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.gpkg"
    gpd.GeoDataFrame(geometry=[box(LEFT, TOP, LEFT + 10, TOP + 10)], crs="EPSG:32630").to_file(good)
    make, problem = FOOTPRINTS[case]
    bad = make(tmp_path)
    for args in ((bad, good), (good, bad)):
        code, stdout, stderr = run("evaluate", command, *args, capsys=capsys)
        assert code == 2 and stdout == ""
        assert stderr.startswith(f"error: {bad}: ") and problem in stderr, stderr
