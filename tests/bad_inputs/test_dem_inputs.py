"""Bad DEMs given to ``raqib mosaic --dem``: one clear line naming the DEM, exit 2, no mosaic."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))  # photo_factory
from photo_factory import (
    GROUND_ELEVATION_M,
    ORTHO_LEFT_M,
    ORTHO_TOP_M,
    Pose,
    fly_over,
    make_ortho,
)

import cli

POSES = (
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 80),
    Pose(ORTHO_LEFT_M + 115, ORTHO_TOP_M - 80),
)


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fly_over(make_ortho(size_px=1600, seed=2), POSES, tmp_path_factory.mktemp("flight"))


def _dem(
    path: Path, *, crs: str | None = "EPSG:32630", left_m: float = ORTHO_LEFT_M - 100, height_m=0.0
) -> Path:
    """A 400 m square DEM, 1 m pixels, flat at ``GROUND_ELEVATION_M + height_m``."""
    profile = {"driver": "GTiff", "width": 400, "height": 400, "count": 1, "dtype": "float32"}
    transform = Affine(1.0, 0.0, left_m, 0.0, -1.0, ORTHO_TOP_M + 100)
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(np.full((400, 400), GROUND_ELEVATION_M + height_m, np.float32), 1)
    return path


def text_file(tmp: Path) -> Path:
    (tmp / "dem.tif").write_text("elevations to follow")
    return tmp / "dem.tif"


def no_crs(tmp: Path) -> Path:
    return _dem(tmp / "no_crs.tif", crs=None)


def elsewhere(tmp: Path) -> Path:
    return _dem(tmp / "oujda.tif", left_m=ORTHO_LEFT_M + 50_000)


def above_the_cameras(tmp: Path) -> Path:
    return _dem(tmp / "ellipsoid_vs_geoid.tif", height_m=70.0)  # photos are 60 m up


def missing(tmp: Path) -> Path:
    return tmp / "nowhere.tif"


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text file named .tif": (text_file, "cannot read the DEM"),
    "GeoTIFF without CRS": (no_crs, "no CRS"),
    "DEM of another place": (elsewhere, "must cover every frame"),
    "DEM above the cameras": (above_the_cameras, "vertical datum"),
    "DEM that does not exist": (missing, "cannot read the DEM"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_dem_is_one_clear_line_naming_it(
    flight: Path, tmp_path: Path, capsys, case: str
) -> None:
    make, expected = CASES[case]
    dem = make(tmp_path)
    out = tmp_path / "mosaic.tif"
    args = ["mosaic", str(flight), "-o", str(out), "--no-refine", "--dem", str(dem)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert str(dem) in captured.err and expected in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
