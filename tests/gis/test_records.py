"""Permit and project records: valid rows typed, every bad row reported with its line."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from core.errors import InputError
from gis.records import RecordProblem, read_permits, read_projects

HEADER = "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"


def _csv(tmp_path, body: str, header: str = HEADER, encoding: str = "utf-8"):
    path = tmp_path / "permits.csv"
    path.write_bytes((header + body).encode(encoding))
    return path


def test_valid_permits_come_back_with_typed_columns(tmp_path):
    path = _csv(tmp_path, "P-1,BRK-0001,Approved,2024-01-15,2026-01-15,180.5\n")

    result = read_permits(path)

    assert result.problems == ()
    row = result.valid.iloc[0]
    assert (row["permit_id"], row["parcel_id"], row["status"]) == ("P-1", "BRK-0001", "approved")
    assert row["issued"] == date(2024, 1, 15) and row["expires"] == date(2026, 1, 15)
    assert row["permitted_footprint_m2"] == 180.5
    assert row["line"] == 2


def test_each_bad_row_is_reported_with_its_line_and_field_and_good_rows_kept(tmp_path):
    path = _csv(
        tmp_path,
        "P-1,BRK-0001,approved,2024-01-15,2026-01-15,180\n"  # line 2: good
        ",BRK-0002,approved,2024-01-15,2026-01-15,100\n"  # line 3: no permit_id
        "P-3,,approved,2024-01-15,2026-01-15,100\n"  # line 4: no parcel_id
        "P-4,BRK-0004,approved,15/01/2024,2026-01-15,100\n"  # line 5: not ISO
        "P-5,BRK-0005,approved,2024-01-15,2023-01-15,100\n"  # line 6: expires first
        "P-6,BRK-0006,approved,2024-01-15,2026-01-15,cent\n"  # line 7: not a number
        "P-1,BRK-0007,approved,2024-01-15,2026-01-15,90\n"  # line 8: duplicate
        "P-9,BRK-0009,active,2023-06-01,2025-06-01,75\n",  # line 9: good
    )

    result = read_permits(path)

    assert list(result.valid["permit_id"]) == ["P-1", "P-9"]
    source = str(path)
    assert result.problems == (
        RecordProblem(source, 3, "permit_id", "missing"),
        RecordProblem(source, 4, "parcel_id", "missing"),
        RecordProblem(source, 5, "issued", "'15/01/2024' is not an ISO date (YYYY-MM-DD)"),
        RecordProblem(source, 6, "expires", "2023-01-15 is before 2024-01-15"),
        RecordProblem(source, 7, "permitted_footprint_m2", "'cent' is not a number"),
        RecordProblem(source, 8, "permit_id", "duplicate of line 2"),
    )


def test_a_missing_column_is_an_input_error_naming_it(tmp_path):
    path = _csv(
        tmp_path, "P-1,BRK-1,approved,2024-01-15,180\n", header=HEADER.replace("expires,", "")
    )
    with pytest.raises(InputError, match="expires") as error:
        read_permits(path)
    assert error.value.source == str(path)


def test_a_csv_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    path = _csv(
        tmp_path,
        "P-1,BRK-1,approved,2024-01-15,2026-01-15,180\nP-2,بركان,approved,2024-01-15,2026-01-15,90\n",
        encoding="cp1256",
    )
    with pytest.raises(InputError, match="line 3: .* not UTF-8"):
        read_permits(path)


def test_a_utf8_bom_and_arabic_text_are_fine(tmp_path):
    path = _csv(tmp_path, "P-1,بركان-12,approved,2024-01-15,2026-01-15,180\n", encoding="utf-8-sig")
    assert read_permits(path).valid["parcel_id"].tolist() == ["بركان-12"]


def test_a_missing_permit_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_permits(tmp_path / "permits.csv")


def test_a_file_of_only_a_header_has_no_permits_and_no_problems(tmp_path):
    result = read_permits(_csv(tmp_path, ""))
    assert result.valid.empty and result.problems == ()
    assert "permitted_footprint_m2" in result.valid.columns


def _projects(tmp_path, rows):
    path = tmp_path / "projects.gpkg"
    frame = gpd.GeoDataFrame(
        rows, geometry=[box(0, 0, 10 + i, 10) for i in range(len(rows))], crs="EPSG:32630"
    )
    frame.to_file(path, layer="projects")
    return path


def test_projects_are_validated_feature_by_feature(tmp_path):
    path = _projects(
        tmp_path,
        [
            {"project_id": "PR-1", "name": "Lycée Berkane", "start": "2024-03-01",
             "planned_end": "2025-09-30"},
            {"project_id": "PR-2", "name": "Route Ahfir", "start": "2024-05-01",
             "planned_end": "2023-01-01"},
            {"project_id": "PR-1", "name": "Doublon", "start": "2024-03-01",
             "planned_end": "2025-09-30"},
        ],
    )  # fmt: skip

    result = read_projects(path, crs="EPSG:4326")

    assert list(result.valid["project_id"]) == ["PR-1"]
    assert result.valid.loc[0, "planned_end"] == date(2025, 9, 30)
    assert result.valid.crs.to_epsg() == 4326
    assert [(p.line, p.field) for p in result.problems] == [(2, "planned_end"), (3, "project_id")]


def test_projects_without_a_planned_end_column_are_refused(tmp_path):
    path = _projects(tmp_path, [{"project_id": "PR-1", "name": "Lycée", "start": "2024-03-01"}])
    with pytest.raises(InputError, match="planned_end"):
        read_projects(path)


def test_projects_without_a_crs_are_refused(tmp_path):
    path = tmp_path / "projects.gpkg"
    gpd.GeoDataFrame(
        {"project_id": ["PR-1"], "name": ["Lycée"], "start": ["2024-03-01"],
         "planned_end": ["2025-09-30"]},
        geometry=[box(0, 0, 10, 10)],
    ).to_file(path, layer="projects")  # fmt: skip
    with pytest.raises(InputError, match="no CRS"):
        read_projects(path, crs="EPSG:32630")


def test_project_dates_stored_as_gpkg_datetimes_are_read_and_gaps_reported(tmp_path):
    path = tmp_path / "projects.gpkg"
    gpd.GeoDataFrame(
        {
            "project_id": ["PR-1", "PR-2"],
            "name": ["Station de pompage", "Piste Madagh"],
            "start": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "planned_end": pd.to_datetime(["2025-01-01", None]),
        },
        geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10)],
        crs="EPSG:32630",
    ).to_file(path, layer="projects")

    result = read_projects(path)

    assert result.valid["start"].tolist() == [date(2024, 1, 1)]
    assert [(p.line, p.field, p.problem) for p in result.problems] == [
        (2, "planned_end", "missing")
    ]


def test_a_row_with_more_values_than_columns_is_reported(tmp_path):
    path = _csv(tmp_path, "P-1,BRK-1,approved,2024-01-15,2026-01-15,180,oops\n")
    result = read_permits(path)
    assert result.valid.empty
    assert [(p.line, p.field) for p in result.problems] == [(2, "row")]


def test_a_rejected_row_does_not_block_a_later_good_row_with_its_id(tmp_path):
    path = _csv(
        tmp_path,
        "P-1,BRK-1,approved,2024-01-15,2026-01-15,beaucoup\n"
        "P-1,BRK-1,approved,2024-01-15,2026-01-15,180\n",
    )
    result = read_permits(path)
    assert result.valid["line"].tolist() == [3]
    assert [(p.line, p.field) for p in result.problems] == [(2, "permitted_footprint_m2")]


def test_a_projects_file_that_is_not_vector_data_is_an_input_error(tmp_path):
    path = tmp_path / "projects.gpkg"
    path.write_text("project_id,name\n")
    with pytest.raises(InputError, match="not a readable vector file"):
        read_projects(path)
