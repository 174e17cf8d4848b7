"""Bad options and rasters given to management zoning: an InputError naming the option or the
file and what is wrong, before any zone is drawn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from core.errors import InputError
from models.zones import zones_of_parcels

LEFT_M, TOP_M = 600_000.0, 3_870_000.0


def _ndvi(path: Path, *, crs: str | None = "EPSG:32630", count: int = 1) -> Path:
    """A 40 m square NDVI raster at 0.5 m, seeded."""
    values = np.random.default_rng(0).uniform(0.2, 0.8, (count, 80, 80)).astype(np.float32)
    profile = {"driver": "GTiff", "width": 80, "height": 80, "count": count, "dtype": "float32"}
    transform = from_origin(LEFT_M, TOP_M, 0.5, 0.5)
    with rasterio.open(path, "w", **profile, crs=crs, transform=transform, nodata=np.nan) as dst:
        dst.write(values)
    return path


def _parcels(crs: str | None = "EPSG:32630") -> gpd.GeoDataFrame:
    parcel = box(LEFT_M + 2, TOP_M - 38, LEFT_M + 38, TOP_M - 2)
    return gpd.GeoDataFrame({"parcel_id": ["P1"]}, geometry=[parcel], crs=crs)


def _call(tmp: Path, **options) -> tuple[Path, gpd.GeoDataFrame, dict]:
    return _ndvi(tmp / "ndvi.tif"), _parcels(), options


def without_crs(tmp: Path) -> tuple[Path, gpd.GeoDataFrame, dict]:
    return _ndvi(tmp / "no_crs.tif", crs=None), _parcels(), {}


def in_degrees(tmp: Path) -> tuple[Path, gpd.GeoDataFrame, dict]:
    return _ndvi(tmp / "lonlat.tif", crs="EPSG:4326"), _parcels(), {}


def rgb_not_index(tmp: Path) -> tuple[Path, gpd.GeoDataFrame, dict]:
    return _ndvi(tmp / "ortho.tif", count=3), _parcels(), {}


def text_file(tmp: Path) -> tuple[Path, gpd.GeoDataFrame, dict]:
    (tmp / "ndvi.tif").write_text("index to follow")
    return tmp / "ndvi.tif", _parcels(), {}


def parcels_without_crs(tmp: Path) -> tuple[Path, gpd.GeoDataFrame, dict]:
    return _ndvi(tmp / "ndvi.tif"), _parcels(crs=None), {}


CASES: dict[str, tuple[Callable[[Path], tuple[Path, gpd.GeoDataFrame, dict]], str, str]] = {
    "two zones": (lambda tmp: _call(tmp, n_zones=2), "n_zones", "got 2"),
    "six zones": (lambda tmp: _call(tmp, n_zones=6), "n_zones", "got 6"),
    "negative MMU": (lambda tmp: _call(tmp, mmu_ha=-0.05), "mmu_ha", "must be >= 0"),
    "unknown method": (lambda tmp: _call(tmp, method="jenks"), "method", "'jenks'"),
    "rate for a class that is not a zone": (
        lambda tmp: _call(tmp, rates={4: 80.0}),
        "rates",
        "[4]",
    ),
    "index raster without CRS": (without_crs, "no_crs.tif", "no CRS"),
    "index raster in degrees": (in_degrees, "lonlat.tif", "projected CRS in metres"),
    "RGB orthophoto instead of an index": (rgb_not_index, "ortho.tif", "one-band index"),
    "text file named .tif": (text_file, "ndvi.tif", "cannot open raster"),
    "parcels without CRS": (parcels_without_crs, "parcels", "no CRS"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_zoning_input_is_refused_naming_it(tmp_path: Path, case: str) -> None:
    make, source, problem = CASES[case]
    raster, parcels, options = make(tmp_path)
    with pytest.raises(InputError) as caught:
        zones_of_parcels(raster, parcels, **options)
    assert caught.value.source.endswith(source), caught.value
    assert problem in caught.value.problem, caught.value
