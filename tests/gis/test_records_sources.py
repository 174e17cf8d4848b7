"""Permits and projects from a province's own files: mapped CSV, GeoPackage table, JSON."""

from __future__ import annotations

import json
import tomllib
from datetime import date

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box

from core.errors import InputError
from gis.records import (
    RecordProblem,
    RecordSource,
    load_permits,
    load_projects,
    read_permits,
    record_source,
)

FRENCH = {
    "permit_id": "numero_autorisation",
    "parcel_id": "reference_fonciere",
    "status": "statut",
    "issued": "date_delivrance",
    "expires": "date_expiration",
    "permitted_footprint_m2": "superficie_autorisee",
}
HEADER = "numero_autorisation;demandeur;reference_fonciere;statut;date_delivrance;"
HEADER += "date_expiration;superficie_autorisee\n"


def _french_csv(tmp_path, body: str):
    path = tmp_path / "autorisations.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return RecordSource(
        path,
        fields=FRENCH,
        date_formats=("%d/%m/%Y",),
        decimal_comma=True,
        status_values={"Accordée": "approved", "مرخص": "approved"},
        delimiter=";",
    )


def test_a_french_export_is_read_through_its_mapping(tmp_path):
    source = _french_csv(
        tmp_path,
        "A-2024-01;Mohamed Benali;بركان-12;Accordée;15/01/2024;15/01/2026;1 250,5\n"
        "A-2024-02;فاطمة الزهراء;BRK-2;مرخص;01/02/2024;01/02/2025;90\n"
        "A-2024-03;Karim;BRK-3;En instruction;01/03/2024;01/03/2025;75,25\n",
    )

    result = load_permits(source)

    assert result.problems == ()
    assert result.valid["permit_id"].tolist() == ["A-2024-01", "A-2024-02", "A-2024-03"]
    assert result.valid["parcel_id"].tolist() == ["بركان-12", "BRK-2", "BRK-3"]
    assert result.valid["status"].tolist() == ["approved", "approved", "en instruction"]
    assert result.valid["issued"].tolist()[0] == date(2024, 1, 15)
    assert result.valid["permitted_footprint_m2"].tolist() == [1250.5, 90.0, 75.25]
    assert result.valid["line"].tolist() == [2, 3, 4]


def test_bad_rows_of_a_mapped_export_are_reported_under_their_own_column_names(tmp_path):
    source = _french_csv(
        tmp_path,
        "A-1;X;BRK-1;Accordée;15/01/2024;15/01/2026;100\n"  # 2 good
        ";X;BRK-1;Accordée;15/01/2024;15/01/2026;100\n"  # 3 missing id
        "A-3;X;BRK-1;Accordée;2024-01-15;15/01/2026;100\n"  # 4 ISO, not the mapped format
        "A-4;X;BRK-1;Accordée;31/02/2024;15/01/2026;100\n"  # 5 no such day
        "A-1;X;BRK-2;Accordée;15/01/2024;15/01/2026;100\n"  # 6 duplicate id
        "A-6;X;BRK-404;Accordée;15/01/2024;15/01/2026;100\n",  # 7 unknown parcel
    )

    result = load_permits(source, parcel_ids={"BRK-1", "BRK-2"})

    assert result.valid["permit_id"].tolist() == ["A-1"]
    path = str(source.location)
    assert result.problems == (
        RecordProblem(path, 3, "numero_autorisation", "missing"),
        RecordProblem(path, 4, "date_delivrance", "'2024-01-15' is not a date written %d/%m/%Y"),
        RecordProblem(path, 5, "date_delivrance", "'31/02/2024' is not a date written %d/%m/%Y"),
        RecordProblem(path, 6, "numero_autorisation", "duplicate of line 2"),
        RecordProblem(
            path, 7, "reference_fonciere", "unknown parcel 'BRK-404': not in the cadastre given"
        ),
    )


def test_a_mapping_to_a_column_the_export_lacks_names_both_names(tmp_path):
    source = _french_csv(tmp_path, "")
    source = RecordSource(source.location, fields={**FRENCH, "issued": "date_de_delivrance"},
                          delimiter=";")  # fmt: skip
    with pytest.raises(InputError, match=r"missing .*date_de_delivrance \(our issued\)"):
        load_permits(source)


def test_a_mapping_of_a_field_raqib_does_not_have_is_refused(tmp_path):
    source = RecordSource(_french_csv(tmp_path, "").location, fields={"numero": "numero"})
    with pytest.raises(InputError, match="unknown field.* numero; Raqib's fields are permit_id"):
        load_permits(source)


def test_read_permits_reports_unknown_parcels_when_given_the_cadastre(tmp_path):
    path = tmp_path / "permits.csv"
    path.write_text(
        "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"
        "P-1,BRK-1,approved,2024-01-15,2026-01-15,180\n"
        "P-2,BRK-9,approved,2024-01-15,2026-01-15,180\n"
    )
    result = read_permits(path, parcel_ids=pd.Series(["BRK-1", "BRK-2"]))
    assert result.valid["permit_id"].tolist() == ["P-1"]
    assert [(p.line, p.field) for p in result.problems] == [(3, "parcel_id")]


def _permit_table(path, layer: str = "autorisations"):
    table = pd.DataFrame(
        {
            "numero_autorisation": ["A-1", "A-2", "A-3"],
            "reference_fonciere": ["بركان-12", "BRK-2", "BRK-3"],
            "statut": ["approved", "active", "approved"],
            "date_delivrance": pd.to_datetime(["2024-01-15", "2024-02-01", None]),
            "date_expiration": pd.to_datetime(["2026-01-15", "2025-02-01", "2025-03-01"]),
            "superficie_autorisee": [180.0, 95.5, 60.0],
        }
    )
    pyogrio.write_dataframe(table, path, layer=layer)
    return path


def test_permits_come_from_a_geopackage_attribute_table(tmp_path):
    path = _permit_table(tmp_path / "urbanisme.gpkg")
    gpd.GeoDataFrame({"nom": ["Berkane"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32630").to_file(
        path, layer="communes"
    )

    result = load_permits(RecordSource(path, fields=FRENCH, layer="autorisations"))

    assert result.valid["permit_id"].tolist() == ["A-1", "A-2"]
    assert result.valid["parcel_id"].tolist() == ["بركان-12", "BRK-2"]
    assert result.valid["issued"].tolist() == [date(2024, 1, 15), date(2024, 2, 1)]
    assert result.valid["permitted_footprint_m2"].tolist() == [180.0, 95.5]
    assert [(p.source, p.line, p.field) for p in result.problems] == [
        (str(path), 3, "date_delivrance")
    ]


def test_a_geopackage_of_several_layers_needs_the_layer_named(tmp_path):
    path = _permit_table(tmp_path / "urbanisme.gpkg")
    _permit_table(path, layer="archives")
    with pytest.raises(InputError, match="2 layers .*say which one"):
        load_permits(RecordSource(path, fields=FRENCH))
    with pytest.raises(InputError, match="no layer or table 'permis'; it has"):
        load_permits(RecordSource(path, fields=FRENCH, layer="permis"))


def test_projects_come_from_a_csv_with_wkt_geometry_in_a_stated_crs(tmp_path):
    path = tmp_path / "projets.csv"
    frame = pd.DataFrame(
        {
            "code": ["PR-1", "PR-2", "PR-3"],
            "intitule": ["مدرسة بركان", "Piste Madagh", "Station"],
            "debut": ["01/03/2024", "01/05/2024", "01/05/2024"],
            "fin": ["30/09/2025", "30/09/2025", "30/09/2025"],
            "emprise": [box(0, 0, 40, 25).wkt, "POLYGON ((0 0, 1 1", ""],
        }
    )
    frame.to_csv(path, index=False)
    source = RecordSource(
        path,
        fields={"project_id": "code", "name": "intitule", "start": "debut",
                "planned_end": "fin", "geometry": "emprise"},
        date_formats=("%d/%m/%Y",),
        geometry_crs="EPSG:32630",
    )  # fmt: skip

    result = load_projects(source, crs="EPSG:32630")

    assert result.valid["name"].tolist() == ["مدرسة بركان"]
    assert result.valid.geometry.area.tolist() == [1000.0]
    assert result.valid.crs.to_epsg() == 32630
    assert [(p.line, p.field) for p in result.problems] == [(3, "emprise"), (4, "emprise")]
    assert "is not a WKT or GeoJSON geometry" in result.problems[0].problem


def test_a_json_file_of_nested_records_is_read_like_an_api_answer(tmp_path):
    path = tmp_path / "permits.json"
    records = [
        {"id": "P-1", "parcel": {"id": "BRK-1"}, "status": "approved",
         "issued": "2024-01-15", "expires": "2026-01-15", "permitted_footprint_m2": 120},
        {"id": "P-2", "parcel": {"id": ["BRK-2", "BRK-3"]}, "status": "approved",
         "issued": "2024-01-15", "expires": "2026-01-15", "permitted_footprint_m2": 120},
        "P-3",
    ]  # fmt: skip
    path.write_text(json.dumps({"results": records}), encoding="utf-8")
    source = RecordSource(
        path, fields={"permit_id": "id", "parcel_id": "parcel.id"}, records_key="results"
    )

    result = load_permits(source)

    assert result.valid["parcel_id"].tolist() == ["BRK-1"]
    assert [(p.line, p.field, p.problem) for p in result.problems] == [
        (2, "parcel.id", "one value expected, not list ['BRK-2', 'BRK-3']"),
        (3, "row", "not an object: 'P-3'"),
    ]


OPERATOR_TOML = """
[permits]
source = "{path}"
delimiter = ";"
date_formats = ["%d/%m/%Y"]
decimal_comma = true
status_values = {{ "Accordée" = "approved" }}

[permits.fields]
permit_id = "numero_autorisation"
parcel_id = "reference_fonciere"
status = "statut"
issued = "date_delivrance"
expires = "date_expiration"
permitted_footprint_m2 = "superficie_autorisee"
"""


def test_an_operator_points_raqib_at_an_export_in_raqib_toml(tmp_path):
    path = _french_csv(tmp_path, "A-1;X;BRK-1;Accordée;15/01/2024;15/01/2026;100,5\n").location
    table = tomllib.loads(OPERATOR_TOML.format(path=path.as_posix()))["permits"]

    result = load_permits(record_source(table))

    assert result.problems == ()
    assert result.valid[["permit_id", "status", "permitted_footprint_m2"]].values.tolist() == [
        ["A-1", "approved", 100.5]
    ]


def test_a_settings_table_with_an_unknown_key_names_it(tmp_path):
    with pytest.raises(InputError, match=r"raqib.toml: unknown key\(s\) date_format; keys are"):
        record_source({"source": "permits.csv", "date_format": "%d/%m/%Y"})
    with pytest.raises(InputError, match="no source given"):
        record_source({"delimiter": ";"})
