"""Bad planning and flying inputs through the CLI: one clear line, exit 2, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

import cli

FIELD = box(-2.3020, 34.9280, -2.2990, 34.9300)
GMFO = (-1.923889, 34.787222)  # Oujda Angads aerodrome reference point


def _layer(path: Path, geometry: object, crs: str = "EPSG:4326") -> Path:
    gpd.GeoDataFrame(geometry=[geometry], crs=crs).to_file(path)
    return path


def self_intersecting(tmp: Path) -> list[str]:
    bow_tie = Polygon([(-2.30, 34.92), (-2.29, 34.93), (-2.29, 34.92), (-2.30, 34.93)])
    return ["plan", str(_layer(tmp / "bowtie.geojson", bow_tie)), "-o", str(tmp / "out")]


def metres_as_degrees(tmp: Path) -> list[str]:
    utm_box = box(563_740, 3_865_270, 564_020, 3_865_500)
    return ["plan", str(_layer(tmp / "utm_as_wgs84.gpkg", utm_box)), "-o", str(tmp / "out")]


def degrees_as_metres(tmp: Path) -> list[str]:
    path = _layer(tmp / "wgs84_as_utm.gpkg", FIELD, crs="EPSG:32630")
    return ["plan", str(path), "-o", str(tmp / "out")]


def across_airport(tmp: Path) -> list[str]:
    lon, lat = GMFO
    aoi = box(lon - 0.01, lat - 0.005, lon + 0.01, lat + 0.005)
    return ["plan", str(_layer(tmp / "oujda.geojson", aoi)), "-o", str(tmp / "out")]


def plan_args(*options: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        aoi = _layer(tmp / "field.geojson", FIELD)
        return ["plan", str(aoi), "-o", str(tmp / "out"), *options]

    return make


def bad_camera_file(tmp: Path) -> list[str]:
    (tmp / "cams.toml").write_text('[my_cam]\nname = "Mine"\nmake = "X"\nmodel = "Y"\n')
    return plan_args("--camera-file", str(tmp / "cams.toml"), "--camera", "my_cam")(tmp)


def malformed_plan(tmp: Path) -> list[str]:
    (tmp / "broken.plan").write_text('{"fileType": "Plan", "mission": {"items": []}}')
    return ["fly", str(tmp / "broken.plan"), "--connect", "udp:127.0.0.1:9"]


def plan_not_json(tmp: Path) -> list[str]:
    (tmp / "notes.plan").write_text("take off at dawn")
    return ["fly", str(tmp / "notes.plan"), "--connect", "udp:127.0.0.1:9"]


def unknown_mission_format(tmp: Path) -> list[str]:
    (tmp / "route.gpx").write_text("<gpx/>")
    return ["fly", str(tmp / "route.gpx"), "--connect", "udp:127.0.0.1:9"]


def kml_to_fly(tmp: Path) -> list[str]:
    (tmp / "path.kml").write_text('<kml xmlns="http://www.opengis.net/kml/2.2"/>')
    return ["fly", str(tmp / "path.kml"), "--connect", "udp:127.0.0.1:9"]


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "self-intersecting AOI": (self_intersecting, "Self-intersection"),
    "metres in a lon/lat file": (metres_as_degrees, "not degrees"),
    "degrees in a metric file": (degrees_as_metres, "look like lon/lat degrees"),
    "AOI across Oujda airport": (across_airport, "GMFO"),
    "overlap 95 %": (plan_args("--overlap", "95/70"), "front_overlap"),
    "altitude 300 m": (plan_args("--altitude", "300"), "120 m"),
    "GSD too coarse for 120 m": (plan_args("--gsd", "10"), "over the 120 m cap"),
    "unknown camera": (plan_args("--camera", "gopro"), "unknown camera 'gopro'"),
    "camera file missing fields": (bad_camera_file, "cams.toml"),
    "DEM that does not exist": (plan_args("--dem", "nowhere.tif"), "nowhere.tif"),
    "malformed .plan": (malformed_plan, "broken.plan"),
    ".plan that is not JSON": (plan_not_json, "notes.plan"),
    "unknown mission format": (unknown_mission_format, ".gpx"),
    "KML given to fly": (kml_to_fly, "KML holds the path only"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_plan_input_is_one_clear_line(tmp_path: Path, capsys, case: str) -> None:
    make, expected = CASES[case]
    assert cli.main(make(tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert expected in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()
