"""The optional PostGIS output, against a real PostgreSQL + PostGIS server on loopback: one
schema per epoch holding the GeoPackage's layers, feature ids and QGIS default styles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
from postgis_server import running_postgis
from shapely.geometry import MultiPolygon, box

from core.errors import InputError
from core.settings import load_settings
from gis.layer_styles import layer_qml
from gis.postgis import epoch_schema, publish_postgis
from gis.publish import publish_geopackage

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0
PRIMARY_KEYS = (
    "SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
    "WHERE i.indisprimary AND c.relnamespace = '{schema}'::regnamespace"
)


@pytest.fixture(scope="module")
def postgis() -> Iterator[str]:
    with running_postgis() as url:
        yield url


def _geopackage(path: Path, flags: int = 2) -> Path:
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["P1", "P2", "P3"], "commune": ["Berkane", "Madagh", "بركان"]},
        geometry=[
            box(X0, Y0, X0 + 50, Y0 + 50),
            box(X0 + 50, Y0, X0 + 100, Y0 + 50),
            MultiPolygon(
                [box(X0 + 100, Y0, X0 + 120, Y0 + 50), box(X0 + 130, Y0, X0 + 150, Y0 + 50)]
            ),
        ],
        crs=UTM,
    )
    flagged = gpd.GeoDataFrame(
        {
            "parcel_id": ["P1", "P2"][:flags],
            "reason": ["no_permit", "over_permit"][:flags],
            "severity": [0.9, 0.4][:flags],
            "record_url": [
                "https://cadastre.example/parcels/P1",
                "https://rokhas.example/permits/7",
            ][:flags],
        },
        geometry=[box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), box(X0 + 60, Y0 + 10, X0 + 70, Y0 + 20)][
            :flags
        ],
        crs=UTM,
    )
    projects = gpd.GeoDataFrame(
        {"project_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)},
        geometry=gpd.GeoSeries([], crs=UTM),
    )
    problems = pd.DataFrame({"source": ["permits.csv"], "line": [3], "field": ["issued"],
                             "problem": ["not a date"]})  # fmt: skip
    layers = {"parcels": parcels, "flagged_parcels": flagged, "projects": projects,
              "record_problems": problems}  # fmt: skip
    return publish_geopackage(path, layers)


def _query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_an_epoch_schema_holds_the_geopackage_layers_styled(postgis: str, tmp_path: Path) -> None:
    geopackage = _geopackage(tmp_path / "raqib.gpkg")

    tables = publish_postgis(geopackage, postgis, "raqib_epoch1", comment="Raqib epoch epoch1")

    assert tables == ["parcels", "flagged_parcels", "projects", "record_problems"]
    counts = {t: _query(postgis, f"SELECT count(*) FROM raqib_epoch1.{t}")[0][0] for t in tables}
    assert counts == {"parcels": 3, "flagged_parcels": 2, "projects": 0, "record_problems": 1}
    assert sorted(_query(postgis, "SELECT f_table_name, type, srid FROM geometry_columns "
                                  "WHERE f_table_schema = 'raqib_epoch1'")) == [
        ("flagged_parcels", "POLYGON", 32630),
        ("parcels", "MULTIPOLYGON", 32630),
        ("projects", "POLYGON", 32630),  # empty, typed as in the GeoPackage: QGIS styles it
    ]  # fmt: skip
    assert _query(postgis, "SELECT fid, record_url, ST_SRID(geom) FROM "
                           "raqib_epoch1.flagged_parcels ORDER BY fid") == [
        (1, "https://cadastre.example/parcels/P1", 32630),
        (2, "https://rokhas.example/permits/7", 32630),
    ]  # fmt: skip
    assert _query(postgis, "SELECT commune FROM raqib_epoch1.parcels WHERE fid = 3") == [("بركان",)]
    keys = _query(postgis, PRIMARY_KEYS.format(schema="raqib_epoch1"))
    assert sorted(keys) == sorted((t, "fid") for t in tables)
    styles = _query(postgis, "SELECT f_table_catalog, f_table_name, f_geometry_column, "
                             "useasdefault, styleqml::text FROM public.layer_styles "
                             "WHERE f_table_schema = 'raqib_epoch1'")  # fmt: skip
    assert {row[1] for row in styles} == {"parcels", "flagged_parcels", "projects"}
    for catalog, table, column, default, qml in styles:
        assert (catalog, column, default) == ("raqib", "geom", True)
        assert qml.split("<qgis", 1)[1] == layer_qml(table).split("<qgis", 1)[1]
    assert _query(postgis, "SELECT obj_description('raqib_epoch1'::regnamespace)") == [
        ("Raqib epoch epoch1",)
    ]


def test_republishing_replaces_the_schema_and_its_styles(postgis: str, tmp_path: Path) -> None:
    publish_postgis(_geopackage(tmp_path / "a.gpkg", flags=2), postgis, "raqib_again")
    publish_postgis(_geopackage(tmp_path / "b.gpkg", flags=1), postgis, "raqib_again")

    assert _query(postgis, "SELECT parcel_id FROM raqib_again.flagged_parcels") == [("P1",)]
    assert _query(postgis, "SELECT count(*) FROM public.layer_styles "
                           "WHERE f_table_schema = 'raqib_again'") == [(3,)]  # fmt: skip


def test_epoch_names_become_plain_schema_names() -> None:
    assert epoch_schema("2026-07-10") == "raqib_2026_07_10"
    assert epoch_schema("Epoch 2", prefix="berkane_") == "berkane_epoch_2"
    assert len(epoch_schema("x" * 100)) == 63


def test_a_bad_url_is_refused_naming_the_setting(tmp_path: Path) -> None:
    for url in ("mysql://db.example/raqib", "postgresql://raqib@db.example", "not a url"):
        with pytest.raises(InputError, match=r"publish\.postgis_url \(RAQIB_PUBLISH\)"):
            load_settings(publish={"postgis_url": url})
    with pytest.raises(InputError, match="postgis_schema_prefix"):
        load_settings(publish={"postgis_schema_prefix": "Raqib-"})


def test_an_unreachable_server_is_named_without_its_password(tmp_path: Path) -> None:
    geopackage = _geopackage(tmp_path / "raqib.gpkg")
    url = "postgresql://raqib:s3cret@127.0.0.1:9/raqib"  # port 9 (discard): nothing listens
    with pytest.raises(InputError, match=r"\[publish\] postgis_url") as caught:
        publish_postgis(geopackage, url, "raqib_x")
    assert "s3cret" not in str(caught.value) and "raqib:***@127.0.0.1:9/raqib" in str(caught.value)


def test_a_database_without_postgis_is_named(postgis: str, tmp_path: Path) -> None:
    server = postgis.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE plain")
    with pytest.raises(InputError, match="no PostGIS .*CREATE EXTENSION postgis"):
        publish_postgis(_geopackage(tmp_path / "raqib.gpkg"), f"{server}/plain", "raqib_x")
