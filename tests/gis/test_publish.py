"""Publishing layers into one styled GeoPackage 1.3, atomically."""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box

from core.errors import ProcessingError
from gis.publish import list_layers, publish_geopackage

UTM = "EPSG:32630"


def _flagged(reasons=("no_permit", "over_footprint")) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "parcel_id": [f"BRK-{i:04d}" for i in range(len(reasons))],
            "reason": list(reasons),
            "severity": [0.9] * len(reasons),
            "captured_on": [date(2025, 3, 10)] * len(reasons),
        },
        geometry=[box(560_000 + 100 * i, 3_860_000, 560_100 + 100 * i, 3_860_100)
                  for i in range(len(reasons))],
        crs=UTM,
    )  # fmt: skip


def _crop_health() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": ["BRK-0001"], "stressed_pct": [32.5]},
        geometry=[box(560_000, 3_860_000, 560_100, 3_860_100)],
        crs=UTM,
    )


def _skipped() -> pd.DataFrame:
    return pd.DataFrame({"path": ["DJI_0042.JPG"], "reason": ["no GPS position in EXIF"]})


def _publish(path):
    return publish_geopackage(
        path,
        {
            "flagged_parcels": _flagged(),
            "crop_health_parcels": _crop_health(),
            "skipped_images": _skipped(),
        },
    )


def test_all_layers_land_in_one_geopackage_1_3(tmp_path):
    path = _publish(tmp_path / "out" / "berkane.gpkg")

    assert set(list_layers(path)) == {
        "flagged_parcels",
        "crop_health_parcels",
        "skipped_images",
        "layer_styles",
    }
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300
        kinds = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents"))
    assert kinds["flagged_parcels"] == "features"
    assert kinds["skipped_images"] == "attributes"
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no scratch left behind


def test_layers_read_back_with_their_crs_and_dates_as_iso_text(tmp_path):
    path = _publish(tmp_path / "berkane.gpkg")
    flagged = gpd.read_file(path, layer="flagged_parcels")
    assert flagged.crs.to_epsg() == 32630
    assert flagged["reason"].tolist() == ["no_permit", "over_footprint"]
    assert flagged["captured_on"].astype(str).tolist() == ["2025-03-10", "2025-03-10"]
    skipped = pyogrio.read_dataframe(path, layer="skipped_images")
    assert skipped["reason"].tolist() == ["no GPS position in EXIF"]


def test_default_qgis_styles_are_stored_in_layer_styles(tmp_path):
    path = _publish(tmp_path / "berkane.gpkg")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT f_table_name, f_geometry_column, useAsDefault, styleQML, update_time"
            " FROM layer_styles ORDER BY f_table_name"
        ).fetchall()
    assert [(name, column, default) for name, column, default, _, _ in rows] == [
        ("crop_health_parcels", "geom", 1),
        ("flagged_parcels", "geom", 1),
    ]
    crop_qml, flag_qml = (ET.fromstring(row[3]) for row in rows)
    assert crop_qml.find("renderer-v2").attrib["type"] == "graduatedSymbol"
    assert crop_qml.find("renderer-v2").attrib["attr"] == "stressed_pct"
    flag_renderer = flag_qml.find("renderer-v2")
    assert (flag_renderer.attrib["type"], flag_renderer.attrib["attr"]) == (
        "graduatedSymbol",
        "severity",
    )
    assert flag_qml.find("attributeactions/actionsetting").attrib["type"] == "5"  # Open URL
    assert crop_qml.find("attributeactions") is None
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row[4]) for row in rows)


def test_an_empty_styled_layer_keeps_its_styles_geometry_type(tmp_path):
    """QGIS refuses a polygon style on a layer of unknown geometry: the first epoch's empty
    flag layer must still be a polygon layer."""
    path = publish_geopackage(
        tmp_path / "flags.gpkg",
        {"flagged_parcels": _flagged(()), "other": _flagged(()).rename_geometry("geom")},
    )
    types = dict(pyogrio.list_layers(path))
    assert types["flagged_parcels"] == "Polygon"
    assert types["other"] == "Unknown"


def test_a_layer_without_its_style_attribute_is_published_unstyled(tmp_path):
    crop = _crop_health().rename(columns={"stressed_pct": "stress"})
    path = publish_geopackage(tmp_path / "crop.gpkg", {"crop_health_parcels": crop})
    assert list_layers(path) == ["crop_health_parcels"]


def test_an_empty_flag_layer_is_still_published(tmp_path):
    path = publish_geopackage(tmp_path / "flags.gpkg", {"flagged_parcels": _flagged(())})
    assert gpd.read_file(path, layer="flagged_parcels").empty
    assert "layer_styles" in list_layers(path)


def test_a_failure_while_writing_leaves_the_existing_target_untouched(tmp_path):
    path = _publish(tmp_path / "berkane.gpkg")
    before = path.read_bytes()
    no_crs = _flagged().set_crs(None, allow_override=True)

    with pytest.raises(ProcessingError, match="no CRS"):
        publish_geopackage(path, {"skipped_images": _skipped(), "flagged_parcels": no_crs})

    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_republishing_replaces_the_file_rather_than_appending(tmp_path):
    path = _publish(tmp_path / "berkane.gpkg")
    publish_geopackage(path, {"flagged_parcels": _flagged(("permit_expired",))})
    assert list_layers(path) == ["flagged_parcels", "layer_styles"]
    assert len(gpd.read_file(path, layer="flagged_parcels")) == 1
