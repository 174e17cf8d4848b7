"""A GeoTIFF cut short (an interrupted copy or download) opens fine, then fails on its first
missing tile: the commands on a user's orthophoto say so in one line naming it, exit 2, no
traceback, and write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from byo_images import run


def truncated_orthophoto(path: Path) -> Path:
    """A 40 m square RGB orthophoto at 10 cm, tiled and compressed, with half its bytes."""
    pixels = np.random.default_rng(0).integers(60, 200, (3, 400, 400), np.uint8)
    profile = {"driver": "GTiff", "width": 400, "height": 400, "count": 3, "dtype": "uint8",
               "tiled": True, "compress": "deflate", "crs": "EPSG:32630",
               "transform": Affine(0.1, 0, 564_000, 0, -0.1, 3_865_400)}  # fmt: skip
    whole = path.with_suffix(".whole.tif")
    with rasterio.open(whole, "w", **profile) as dst:
        dst.write(pixels)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("command", [["detect", "buildings"], ["health"], ["trees"]])
def test_a_truncated_orthophoto_is_one_line_naming_it(
    tmp_path: Path, capsys, command: list[str]
) -> None:
    ortho = truncated_orthophoto(tmp_path / "ortho.tif")
    out = tmp_path / "result.gpkg"
    code, stdout, stderr = run(*command, ortho, "-o", out, capsys=capsys)
    assert code == 2, stdout + stderr
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
    assert "ortho.tif" in stderr and stderr.endswith("(the raster is truncated or corrupt)\n")
    assert not out.exists()
