"""Where the flows read permit and project records from: a file, or a raqib.toml table."""

from __future__ import annotations

from pathlib import Path

import pytest

import flows
from core.errors import InputError
from core.settings import load_settings
from gis.records import RecordSource, load_permits


def test_a_file_given_for_the_run_wins_over_the_settings_table(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path, permits={"source": "https://x.example/api"})
    given = tmp_path / "permits.csv"
    assert flows.records_source(given, settings.permits, "permits", settings) == given
    assert flows.records_source(None, None, "permits", settings) is None


def test_a_settings_table_maps_their_columns_and_carries_the_http_options(tmp_path: Path) -> None:
    csv = tmp_path / "autorisations.csv"
    csv.write_text(
        "numero;parcelle;statut;delivre;expire;surface\n"
        "A-1;BRK-0001;Accordée;01/02/2026;01/02/2027;120,5\n",
        encoding="utf-8",
    )
    table = {
        "source": str(csv),
        "delimiter": ";",
        "decimal_comma": True,
        "date_formats": ["%d/%m/%Y"],
        "status_values": {"Accordée": "approved"},
        "fields": {
            "permit_id": "numero",
            "parcel_id": "parcelle",
            "status": "statut",
            "issued": "delivre",
            "expires": "expire",
            "permitted_footprint_m2": "surface",
        },
    }
    settings = load_settings(workspace=tmp_path, permits=table, records_retries=1)
    source = flows.records_source(None, settings.permits, "permits", settings)
    assert isinstance(source, RecordSource) and source.http.retries == 1
    permits = load_permits(source, parcel_ids=["BRK-0001"])
    assert permits.problems == ()
    row = permits.valid.iloc[0]
    assert (row.permit_id, row.status, row.permitted_footprint_m2) == ("A-1", "approved", 120.5)


def test_a_misspelt_key_in_the_settings_table_is_named(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path, projects={"source": "p.gpkg", "layr": "x"})
    with pytest.raises(InputError, match=r"settings \[projects\].*layr"):
        flows.records_source(None, settings.projects, "projects", settings)
