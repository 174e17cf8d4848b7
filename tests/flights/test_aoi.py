"""AOI files whose coordinates do not match their CRS are refused, naming the file."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import box

from core.errors import InputError
from flights.aoi import load_aoi


def _write(tmp_path, geometry, crs: str):
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[geometry], crs=crs).to_file(path, driver="GPKG")
    return path


def test_metres_labelled_as_degrees_are_refused(tmp_path) -> None:
    path = _write(tmp_path, box(500_000, 3_865_000, 500_300, 3_865_200), "EPSG:4326")
    with pytest.raises(InputError, match="not degrees") as error:
        load_aoi(path)
    assert "aoi.gpkg" in str(error.value)


def test_degrees_labelled_as_metres_are_refused(tmp_path) -> None:
    path = _write(tmp_path, box(-2.302, 34.928, -2.298, 34.931), "EPSG:32630")
    with pytest.raises(InputError, match="look like lon/lat degrees"):
        load_aoi(path)


def test_metres_in_their_own_crs_are_read(tmp_path) -> None:
    path = _write(tmp_path, box(500_000, 3_865_000, 500_300, 3_865_200), "EPSG:32630")
    aoi = load_aoi(path)
    assert aoi.bounds[0] == pytest.approx(-3.0, abs=0.01)
    assert aoi.bounds[1] == pytest.approx(34.92, abs=0.01)


def test_a_campaign_layer_in_metres_labelled_as_degrees_is_refused(tmp_path) -> None:
    from flights.aoi_layer import load_aois

    path = tmp_path / "commune.gpkg"
    gpd.GeoDataFrame(
        {"id": ["A"]}, geometry=[box(500_000, 3_865_000, 500_300, 3_865_200)], crs="EPSG:4326"
    ).to_file(path)
    with pytest.raises(InputError, match="not degrees") as error:
        load_aois(path)
    assert "commune.gpkg" in str(error.value)
