"""`raqib detect buildings --dsm` with a surface model in another CRS than the orthophoto, and
`raqib evaluate construction --dsm` with the simulator world's surface models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from byo_images import run
from rasterio.warp import calculate_default_transform, reproject

from models.evaluation import object_scores
from sim.world import World

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)


def in_lon_lat(dsm: Path, out: Path) -> Path:
    """``dsm`` warped to EPSG:4326 (bilinear), nodata kept."""
    with rasterio.open(dsm) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        heights = np.full((height, width), src.nodata, np.float32)
        reproject(rasterio.band(src, 1), heights, dst_transform=transform, dst_crs="EPSG:4326",
                  dst_nodata=src.nodata, resampling=rasterio.enums.Resampling.bilinear)  # fmt: skip
        profile = src.profile | {"crs": "EPSG:4326", "transform": transform,
                                 "width": width, "height": height}  # fmt: skip
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(heights, 1)
    return out


@pytest.mark.slow
def test_detect_buildings_with_a_lon_lat_dsm(world: World, tmp_path: Path, capsys) -> None:
    dsm = in_lon_lat(world.paths.dsm("epoch2"), tmp_path / "dsm_4326.tif")
    out = tmp_path / "buildings.gpkg"
    image, parcels = world.paths.ortho("epoch2"), world.paths.parcels
    code, stdout, stderr = run("detect", "buildings", image, "-o", out, "--parcels", parcels,
                               "--dsm", dsm, capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 1
    found = gpd.read_file(out, layer="buildings")
    truth = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    assert object_scores(found, truth).f1 >= 0.9, found


@pytest.mark.slow
def test_evaluate_construction_with_the_worlds_dsms(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "evaluate", "construction", "--world-seed", "7",
         "--size", "small", "--dsm", "--write", "c.md"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "c.md").read_text()
    assert "`raqib evaluate construction --world-seed 7 --size small --dsm`" in report
    assert "with each epoch's surface model (height above ground)" in report
    epoch_rows = [line for line in report.splitlines() if line.startswith("| world 7 | epoch")]
    assert [float(row.split("|")[5]) for row in epoch_rows] == [1.0, 1.0], report
