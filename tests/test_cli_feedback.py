"""`raqib feedback export` writes an epoch's flags for a spreadsheet; `raqib feedback check`
reports what inspectors typed back: decisions per status, each problem with line and field."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box
from test_cli import run_cli

import flows
from core.settings import Settings
from gis.feedback import write_feedback_csv
from gis.flags import flag_new_buildings
from gis.publish import publish_geopackage

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0
MARCH = date(2025, 3, 10)
NO_PERMITS = pd.DataFrame(
    columns=["permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2"]
)


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """A workspace with one published epoch ("march") flagging three houses without permits."""
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["BRK-1", "BRK-2", "T-1234/07"], "commune": ["Berkane"] * 3},
        geometry=[box(X0 + 100 * i, Y0, X0 + 100 * (i + 1), Y0 + 100) for i in range(3)],
        crs=UTM,
    )
    houses = gpd.GeoDataFrame(
        geometry=[box(X0 + 100 * i + 20, Y0 + 20, X0 + 100 * i + 30, Y0 + 30) for i in range(3)],
        crs=UTM,
    ).assign(score=0.9, change="new", area_m2=100.0)
    flags = flag_new_buildings(houses, parcels, NO_PERMITS, captured_on=MARCH, settings=Settings())
    root = tmp_path / "ws"
    geopackage = publish_geopackage(
        root / "march" / flows.GEOPACKAGE, {"new_buildings": houses, "flagged_parcels": flags}
    )
    (root / "march" / "mosaic.tif").write_bytes(b"")
    flows.record_epoch(root, "march", MARCH, geopackage, root / "march" / "mosaic.tif")
    return root


def _fill(path: Path, rows: list[tuple[str, str]]) -> None:
    """What an inspector saves: the exported header, then (flag_id, status) rows."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows({"flag_id": fid, "status": status} for fid, status in rows)


def test_export_writes_the_epoch_flags_for_a_spreadsheet(workspace: Path, tmp_path: Path):
    done = run_cli("feedback", "export", "march", "--workspace", str(workspace), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sheet = workspace / "march" / "flags_feedback.csv"
    assert "3 flags of march written to" in done.stdout
    with sheet.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["flag_id"] for row in rows] == [
        "2025-03-10:no_permit:BRK-1",
        "2025-03-10:no_permit:BRK-2",
        "2025-03-10:no_permit:T-1234/07",
    ]
    assert {row["status"] for row in rows} == {"new"}


def test_a_clean_sheet_is_summarised_per_status(workspace: Path, tmp_path: Path):
    sheet = tmp_path / "retour.csv"
    write_feedback_csv(flows.epoch_flags(workspace, "march"), sheet)
    _fill(sheet, [("2025-03-10:no_permit:BRK-1", "False positive"),
                  ("2025-03-10:no_permit:T-1234/07", "confirmed")])  # fmt: skip

    done = run_cli("feedback", "check", str(sheet), "--workspace", str(workspace), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 decisions (0 new, 1 confirmed, 1 false_positive, 0 regularised), 0 problems" in (
        " ".join(done.stdout.split())
    )


def test_every_problem_is_printed_with_its_line_and_field(workspace: Path, tmp_path: Path):
    sheet = tmp_path / "retour.csv"
    write_feedback_csv(flows.epoch_flags(workspace, "march"), sheet)
    _fill(sheet, [
        ("2025-03-10:no_permit:BRK-1", "done"),          # line 2: not a status
        ("2025-03-10:no_permit:BRK-9", "confirmed"),     # line 3: no such flag published
        ("2025-03-10:no_permit:BRK-2", "confirmed"),     # lines 4, 5: two answers for one flag
        ("2025-03-10:no_permit:BRK-2", "false_positive"),
        ("2025-03-10:no_permit:T-1234/07", "regularized"),
    ])  # fmt: skip

    done = run_cli("feedback", "check", str(sheet), "--workspace", str(workspace), cwd=tmp_path)

    assert done.returncode == 1
    out = " ".join(done.stdout.split())
    assert "1 decisions (0 new, 0 confirmed, 0 false_positive, 1 regularised), 4 problems" in out
    assert "line 2, status: unknown status 'done'" in out
    assert "line 3, flag_id: unknown flag '2025-03-10:no_permit:BRK-9'" in out
    assert "line 4, status: flag '2025-03-10:no_permit:BRK-2' has conflicting decisions" in out
    assert "line 5, status:" in out
    assert done.stderr == ""


def test_export_of_an_unknown_epoch_is_one_line_naming_the_manifest(workspace, tmp_path):
    done = run_cli("feedback", "export", "april", "--workspace", str(workspace), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "epochs.json: no epoch 'april'; known: march" in done.stderr


def test_checking_a_spreadsheet_file_says_to_save_it_as_csv(workspace, tmp_path):
    (tmp_path / "retour.xlsx").write_bytes(b"PK\x03\x04")
    done = run_cli("feedback", "check", "retour.xlsx", "--workspace", str(workspace), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "retour.xlsx: give the published .gpkg or a .csv" in done.stderr
