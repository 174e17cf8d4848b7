"""``raqib plan``, ``raqib fly`` and ``raqib campaign`` end to end, in process."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

import cli
from flights.export import read_mission_file
from sim.vehicle import SimVehicle

BERKANE_FIELD = box(-2.3020, 34.9280, -2.2990, 34.9300)
HOME = (34.9279, -2.3021)


def _aoi(tmp_path: Path) -> Path:
    path = tmp_path / "field.geojson"
    gpd.GeoDataFrame(geometry=[BERKANE_FIELD], crs="EPSG:4326").to_file(path)
    return path


def _plan(tmp_path: Path, *extra: str) -> Path:
    home = f"{HOME[0]},{HOME[1]}"
    args = ["plan", str(_aoi(tmp_path)), "-o", str(tmp_path / "out"), "--home", home, *extra]
    assert cli.main(args) == 0
    return tmp_path / "out"


def test_plan_writes_every_format_and_a_preview(tmp_path: Path, capsys) -> None:
    out = _plan(tmp_path, "--camera", "mavic3m", "--gsd", "3", "--overlap", "80/70")
    printed = capsys.readouterr().out
    assert "QGroundControl's default 0°" in printed and "no DEM" in printed

    plan = json.loads((out / "field.plan").read_text())
    assert plan["geoFence"]["polygons"][0]["inclusion"] is True
    from_plan = read_mission_file(out / "field.plan").items
    assert read_mission_file(out / "field.waypoints").items == from_plan
    assert read_mission_file(out / "field.kmz").items[1:] != []
    layers = dict(pyogrio.list_layers(out / "field.gpkg"))
    assert set(layers) == {"flight_lines", "photo_centres", "footprints"}
    photos = pyogrio.read_dataframe(out / "field.gpkg", layer="photo_centres")
    assert f"{len(photos)} photos" in printed.replace("\n", " ")


def test_plan_follows_a_dem(tmp_path: Path) -> None:
    dem = tmp_path / "dem.tif"
    x0, y0 = 563_300.0, 3_866_000.0  # UTM 30N, 800 m around the field
    rows, cols = np.mgrid[0:400, 0:400]
    heights = (50.0 + 0.25 * cols * 2.0).astype("float32")  # 25 % slope rising eastwards
    with rasterio.open(dem, "w", driver="GTiff", width=400, height=400, count=1,
                       dtype="float32", crs="EPSG:32630",
                       transform=from_origin(x0, y0, 2.0, 2.0)) as dst:  # fmt: skip
        dst.write(heights, 1)
    out = _plan(tmp_path, "--dem", str(dem), "--angle", "0")
    items = read_mission_file(out / "field.plan").items
    altitudes = [i.alt for i in items[2:] if i.command == 16]
    assert max(altitudes) - min(altitudes) > 50.0  # climbs with the slope


def test_fly_uploads_a_planned_file_and_logs_the_flight(tmp_path: Path, capsys) -> None:
    out = _plan(tmp_path, "--gsd", "3")
    with SimVehicle(home_lonlat=(HOME[1], HOME[0]), ground_elevation_m=12.0,
                    speedup=100.0) as sim:  # fmt: skip
        code = cli.main(["fly", str(out / "field.plan"), "--connect", sim.address])
    assert code == 0, capsys.readouterr().err
    assert "completed" in capsys.readouterr().out
    track = pyogrio.read_dataframe(out / "field.flight.gpkg", layer="track")
    assert track["mission_item"].max() >= len(read_mission_file(out / "field.plan").items) - 2


def test_campaign_plans_a_layer_of_fields(tmp_path: Path, capsys) -> None:
    fields = [box(-2.302 + 0.004 * k, 34.928, -2.300 + 0.004 * k, 34.930) for k in range(4)]
    layer = tmp_path / "commune.gpkg"
    gpd.GeoDataFrame(
        {"id": ["A", "B", "C", "D"], "landuse": ["orchard", "cereal", "urban", "orchard"]},
        geometry=fields,
        crs="EPSG:4326",
    ).to_file(layer)
    args = ["campaign", str(layer), "-o", str(tmp_path / "out"), "--start", "2026-12-01",
            "--category-column", "landuse", "--categories", "orchard,cereal"]  # fmt: skip
    assert cli.main(args) == 0
    assert "3 AOIs" in capsys.readouterr().out
    missions = pyogrio.read_dataframe(tmp_path / "out/commune_campaign.gpkg", layer="missions")
    assert set(missions["aoi_id"]) == {"A", "B", "D"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--overlap", "95/70"], "front_overlap"),
        (["--overlap", "lots"], "--overlap"),
        (["--altitude", "300"], "120 m"),
        (["--camera", "nikon_d850"], "unknown camera"),
        (["--angle", "diagonal"], "--angle"),
        (["--entry", "middle"], "entry"),
        (["--wind", "20"], "wind"),
    ],
)
def test_bad_plan_options_are_one_clear_line(tmp_path: Path, capsys, args, expected) -> None:
    argv = ["plan", str(_aoi(tmp_path)), "-o", str(tmp_path / "out"), *args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_fly_refuses_a_kml_naming_the_files_to_fly(tmp_path: Path, capsys) -> None:
    out = _plan(tmp_path, "--gsd", "3")
    assert cli.main(["fly", str(out / "field.kml"), "--connect", "udp:127.0.0.1:9"]) == 2
    assert "KML holds the path only" in capsys.readouterr().err


def test_plan_notes_a_camera_dji_pilot_cannot_fly(tmp_path: Path, capsys) -> None:
    out = _plan(tmp_path, "--camera", "p4rtk", "--gsd", "3")
    assert "note: no DJI route (.kmz) for DJI Phantom 4 RTK" in capsys.readouterr().out
    assert not (out / "field.kmz").exists()


def test_fly_to_a_dead_link_fails_within_the_timeout_in_one_line(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import time

    from sim.vehicle import free_udp_port

    out = _plan(tmp_path, "--gsd", "3")
    capsys.readouterr()
    monkeypatch.setenv("RAQIB_VEHICLE_TIMEOUT_S", "2")
    monkeypatch.setenv("RAQIB_VEHICLE_RETRIES", "0")  # retries: tests/flights/test_vehicle_retry.py
    started = time.monotonic()
    code = cli.main(
        ["fly", str(out / "field.plan"), "--connect", f"udp:127.0.0.1:{free_udp_port()}"]
    )
    assert code == 2 and time.monotonic() - started < 10.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1" in err and "Traceback" not in err, err
