"""Bad inputs to the commands on a user's orthophoto (`raqib health`, `trees`, `train`): each
is one line naming the file and what is wrong, exit 2, and no output written."""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).parents[1]))  # byo_images
from byo_images import run  # noqa: E402

ORIGIN = (563_900.0, 3_865_400.0)  # EPSG:32630, Berkane


def raster(path: Path, count: int = 3, *, dtype: str = "uint8", crs: str | None = "EPSG:32630",
           gsd: float = 0.1) -> Path:  # fmt: skip
    bands = np.random.default_rng(0).integers(0, 200, (count, 64, 64)).astype(dtype)
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=count, dtype=dtype, crs=crs,
        transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]),
    ) as dst:  # fmt: skip
        dst.write(bands)
    return path


def labels(path: Path, *, crs: str | None = "EPSG:32630", dx: float = 0.0, **columns) -> Path:
    x, y = ORIGIN[0] + dx, ORIGIN[1]
    frame = gpd.GeoDataFrame(
        columns or {"health": ["healthy", "bare"]},
        geometry=[box(x + 0.5, y - 3, x + 3, y - 0.5), box(x + 3.5, y - 6, x + 6, y - 3.5)],
        crs=crs,
    )
    frame.to_file(path)
    return path


CASES = {
    "no CRS": (
        lambda d: ["health", raster(d / "nocrs.tif", crs=None)],
        "nocrs.tif: raster has no CRS",
    ),
    "one band": (
        lambda d: ["trees", raster(d / "grey.tif", 1)],
        "grey.tif: unsupported band layout (1 uint8 band(s)",
    ),
    "unnamed uint16 bands": (
        lambda d: ["health", raster(d / "ms.tif", 5, dtype="uint16")],
        "ms.tif: unsupported band layout (5 uint16 band(s)",
    ),
    "band beyond the raster": (
        lambda d: ["trees", raster(d / "rgb.tif"), "--bands", "red=1,nir=4"],
        "rgb.tif: --bands names band(s) {'nir': 4} but the raster has 3 band(s)",
    ),
    "bad --bands": (
        lambda d: ["health", raster(d / "rgb.tif"), "--bands", "infrared=4"],
        "--bands: 'infrared=4' is not BAND=NUMBER",
    ),
    "satellite pixels": (
        lambda d: ["health", raster(d / "landsat.tif", gsd=30.0)],
        "landsat.tif: pixels of 30.000 m: supported ground pixel sizes are 0.02-0.6 m",
    ),
    "parcels without CRS": (
        lambda d: ["health", raster(d / "rgb.tif"), "--parcels", labels(d / "p.gpkg", crs=None)],
        "p.gpkg: has no CRS",
    ),
    "labels without CRS": (
        lambda d: [
            "train",
            "health",
            "--image",
            raster(d / "rgb.tif"),
            "--labels",
            labels(d / "l.gpkg", crs=None),
        ],  # fmt: skip
        "l.gpkg: label polygons have no CRS",
    ),
    "class column missing": (
        lambda d: [
            "train",
            "health",
            "--image",
            raster(d / "rgb.tif"),
            "--labels",
            labels(d / "l.gpkg"),
            "--class-column",
            "etat",
        ],  # fmt: skip
        "l.gpkg: no class column 'etat'; its columns are ['health']",
    ),
    "labels elsewhere": (
        lambda d: [
            "train",
            "buildings",
            "--image",
            raster(d / "rgb.tif"),
            "--labels",
            labels(d / "l.gpkg", dx=900.0),
        ],  # fmt: skip
        "l.gpkg: no label polygon overlaps the image rgb.tif",
    ),
    "unknown health class": (
        lambda d: [
            "train",
            "health",
            "--image",
            raster(d / "rgb.tif"),
            "--labels",
            labels(d / "l.gpkg", health=["healthy", "dead"]),
        ],  # fmt: skip
        "l.gpkg: column 'health' has classes ['dead'] not in ('healthy', 'stressed', 'bare')",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_orthophoto_input_is_one_clear_line(case: str, tmp_path: Path, capsys) -> None:
    make, message = CASES[case]
    args = make(tmp_path)
    code, stdout, stderr = run(*args, "-o", tmp_path / "out" / "result.gpkg", capsys=capsys)
    assert code == 2, stdout + stderr
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
    assert message in stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
