"""The GIS preview of a mission: lines, photo centres and footprints that cover the AOI."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pyogrio
import pytest
import shapely
from shapely.geometry import box

from core.types import SurveySpec, Waypoint
from flights.aoi import LONLAT, reproject
from flights.camera import get_camera
from flights.plan import plan_survey
from flights.preview import mission_layers, write_preview

UTM = "EPSG:32630"
AOI = box(-2.302, 34.928, -2.298, 34.931)
HOME = Waypoint(lat_deg=34.928, lon_deg=-2.302, altitude_m=0.0)


@pytest.fixture(scope="module")
def mission():
    spec = SurveySpec(get_camera("dji_mavic_3e"), gsd_cm=3.0)
    return plan_survey(AOI, spec, HOME, name="preview", crs=UTM)


def test_photo_centres_match_the_planned_photo_count(mission) -> None:
    layers = mission_layers(mission, UTM)
    assert len(layers["photo_centres"]) == mission.photo_count
    assert len(layers["flight_lines"]) == len(mission.waypoints) - 1


def test_footprints_cover_the_aoi(mission) -> None:
    footprints = mission_layers(mission, UTM)["footprints"]
    covered = shapely.union_all(footprints.geometry.values)
    area = reproject(AOI, LONLAT, UTM)
    assert area.difference(covered).area / area.area < 1e-6


def test_photos_only_on_photo_legs(mission) -> None:
    lines = mission_layers(mission, UTM)["flight_lines"]
    longest = int(lines.length.idxmax())
    waypoints = [replace(w, photos=k == longest) for k, w in enumerate(mission.waypoints)]
    one_leg = mission_layers(replace(mission, waypoints=tuple(waypoints)), UTM)
    leg_m = one_leg["flight_lines"].geometry.iloc[longest].length
    assert len(one_leg["photo_centres"]) == int(leg_m // mission.trigger_distance_m) + 1
    assert one_leg["flight_lines"]["photos"].tolist().count(True) == 1


def test_preview_is_a_geopackage_1_3_for_qgis(mission, tmp_path) -> None:
    path = write_preview(mission, tmp_path / "preview.gpkg", UTM)
    layers = dict(pyogrio.list_layers(path))
    assert layers == {
        "flight_lines": "LineString",
        "photo_centres": "Point",
        "footprints": "Polygon",
    }
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == 10300
