"""Bad surface models given to ``raqib detect buildings --dsm``: one clear line naming the DSM,
exit 2, no GeoPackage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import cli

LEFT, TOP = 564000.0, 3865400.0


@pytest.fixture(scope="module")
def orthophoto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 m square RGB orthophoto, 10 cm pixels, in EPSG:32630."""
    path = tmp_path_factory.mktemp("ortho") / "ortho.tif"
    rgb = np.random.default_rng(0).integers(60, 200, (3, 300, 300), dtype=np.uint8)
    transform = Affine(0.1, 0, LEFT, 0, -0.1, TOP)
    profile = {"driver": "GTiff", "width": 300, "height": 300, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", crs="EPSG:32630", transform=transform, **profile) as dst:
        dst.write(rgb)
    return path


def _dsm(path: Path, *, crs: str | None = "EPSG:32630", left_m: float = LEFT) -> Path:
    """A 40 m square DSM, 0.5 m pixels, flat at 120 m."""
    transform = Affine(0.5, 0, left_m - 5, 0, -0.5, TOP + 5)
    profile = {"driver": "GTiff", "width": 80, "height": 80, "count": 1, "dtype": "float32"}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(np.full((80, 80), 120.0, np.float32), 1)
    return path


def no_crs(tmp: Path) -> Path:
    return _dsm(tmp / "no_crs.tif", crs=None)


def elsewhere(tmp: Path) -> Path:
    return _dsm(tmp / "oujda_dsm.tif", left_m=LEFT + 50_000)


def text_file(tmp: Path) -> Path:
    (tmp / "dsm.tif").write_text("heights to follow")
    return tmp / "dsm.tif"


def missing(tmp: Path) -> Path:
    return tmp / "nowhere_dsm.tif"


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "GeoTIFF without CRS": (no_crs, "raster has no CRS"),
    "DSM of another place": (elsewhere, "surface model does not overlap the image"),
    "text file named .tif": (text_file, "cannot open raster"),
    "DSM that does not exist": (missing, "cannot open raster"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_dsm_is_one_clear_line_naming_it(
    orthophoto: Path, tmp_path: Path, capsys, case: str
) -> None:
    make, expected = CASES[case]
    dsm = make(tmp_path)
    out = tmp_path / "buildings.gpkg"
    args = ["detect", "buildings", str(orthophoto), "-o", str(out), "--dsm", str(dsm)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert str(dsm) in captured.err and expected in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
