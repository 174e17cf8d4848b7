"""Inputs in the wrong place: longitude and latitude swapped (AOIs, photo GPS), a photo far
from its flight, an AOI far too large for one mission. Each is refused or skipped with a
clear reason before any planning or mosaicking stretches across the distance."""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import pytest
from corpus_photos import BERKANE, photo
from shapely.geometry import box

import cli
from pipeline.ingest import FAR_AWAY, SWAPPED, ingest_folder

FIELD = box(-2.3020, 34.9280, -2.2990, 34.9300)
SWAPPED_FIELD = box(34.9280, -2.3020, 34.9300, -2.2990)
PROVINCE_SIZED = box(-2.60, 34.70, -2.10, 35.10)  # ~2,000 km², Berkane province is ~1,800


def _layer(path: Path, geometry: object, **columns: list) -> Path:
    gpd.GeoDataFrame(columns, geometry=[geometry], crs="EPSG:4326").to_file(path)
    return path


def _one_clear_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_plan_refuses_an_aoi_with_lon_and_lat_swapped(tmp_path: Path, capsys) -> None:
    aoi = _layer(tmp_path / "field.geojson", SWAPPED_FIELD)
    assert cli.main(["plan", str(aoi), "-o", str(tmp_path / "out")]) == 2
    err = _one_clear_line(capsys)
    assert f"{aoi}: the AOI lies at (34.9290°E, 2.3005°S), outside the working CRS" in err
    assert "look swapped: swapped back it lies at (2.3005°W, 34.9290°N)" in err
    assert not (tmp_path / "out").exists()


def test_campaign_refuses_an_aoi_layer_with_lon_and_lat_swapped(tmp_path: Path, capsys) -> None:
    aois = _layer(tmp_path / "commune.geojson", SWAPPED_FIELD, id=["A1"])
    argv = ["campaign", str(aois), "-o", str(tmp_path / "out"), "--start", "2027-03-01"]
    assert cli.main(argv) == 2
    assert "longitude and latitude look swapped" in _one_clear_line(capsys)
    assert not (tmp_path / "out").exists()


def test_plan_refuses_a_province_sized_aoi_at_once(tmp_path: Path, capsys) -> None:
    aoi = _layer(tmp_path / "province.geojson", PROVINCE_SIZED)
    started = time.perf_counter()
    assert cli.main(["plan", str(aoi), "-o", str(tmp_path / "out")]) == 2
    assert time.perf_counter() - started < 5, "refused before planning (planning took 30 s)"
    err = _one_clear_line(capsys)
    assert f"{aoi}: the AOI covers 2," in err and "km²: its photo lines alone take" in err
    assert "plan it as a campaign (raqib campaign AOI --max-area-ha " in err
    assert not (tmp_path / "out").exists()


def test_a_field_that_fits_one_battery_is_still_planned(tmp_path: Path, capsys) -> None:
    aoi = _layer(tmp_path / "field.geojson", FIELD)
    assert cli.main(["plan", str(aoi), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr()
    assert (tmp_path / "out" / "field.plan").exists()


@pytest.mark.parametrize(
    ("lon", "lat", "kind", "words"),
    [
        (BERKANE[1], BERKANE[0], SWAPPED, "longitude and latitude look swapped"),
        (-BERKANE[0], BERKANE[1], FAR_AWAY, "419 km from the median of the folder's photos"),
    ],
    ids=["lon/lat swapped", "sign of the longitude lost"],
)
def test_a_photo_far_from_its_flight_is_skipped_and_the_rest_ingested(
    tmp_path: Path, lon: float, lat: float, kind: str, words: str
) -> None:
    good = [
        photo(tmp_path / f"DJI_000{i}.JPG", seed=i, lon=BERKANE[0] + i * 1e-4) for i in (1, 2, 3)
    ]
    bad = photo(tmp_path / "DJI_0004.JPG", seed=4, lon=lon, lat=lat)
    result = ingest_folder(tmp_path, crs="EPSG:32630")
    assert [(s.path, s.kind) for s in result.skipped] == [(bad, kind)]
    assert words in result.skipped[0].reason, result.skipped[0].reason
    assert [image.path for image in result.images] == good


def test_a_flight_with_every_position_swapped_is_skipped_whole(tmp_path: Path) -> None:
    for i in range(3):
        photo(tmp_path / f"DJI_000{i}.JPG", seed=i, lon=BERKANE[1], lat=BERKANE[0] + i * 1e-4)
    result = ingest_folder(tmp_path, crs="EPSG:32630")
    assert result.images == () and {s.kind for s in result.skipped} == {SWAPPED}
    assert "swapped back it lies at (2.2975°W, 34.9290°N)" in result.skipped[0].reason
