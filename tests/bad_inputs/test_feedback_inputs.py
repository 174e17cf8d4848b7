"""Bad inspector feedback: a file that cannot be feedback is an InputError naming it and what
to do; a bad row (unknown status or flag, duplicate, conflict) is reported with its line and
field while the good rows are kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box

from core.errors import InputError
from gis.feedback import read_feedback

GOOD = "2025-03-10:no_permit:BRK-1"
PUBLISHED = (GOOD, "2025-03-10:over_footprint:BRK-2", "2025-03-10:no_permit:BRK-3")


def _csv(tmp: Path, *rows: str, header: str = "flag_id,status,note") -> Path:
    path = tmp / "feedback.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _gpkg(tmp: Path, statuses: list[str], layer: str = "flagged_parcels") -> Path:
    """Published flags, without the R-tree index whose triggers need GDAL's SQL functions
    (so that plain sqlite3 can edit it as QGIS would)."""
    frame = gpd.GeoDataFrame(
        {"flag_id": list(PUBLISHED), "status": statuses, "inspector_note": ""},
        geometry=[box(i, 0, i + 1, 1) for i in range(3)],
        crs="EPSG:32630",
    )
    path = tmp / "epoch.gpkg"
    pyogrio.write_dataframe(frame, path, layer=layer, layer_options={"SPATIAL_INDEX": "NO"})
    return path


# -- files that cannot be read as feedback: (file, message) ------------------------------------


def missing_status_column(tmp: Path) -> tuple[Path, str]:
    return _csv(tmp, f"{GOOD},ok", header="flag_id,etat"), r"feedback\.csv: no column 'status'"


def not_utf8(tmp: Path) -> tuple[Path, str]:
    path = tmp / "feedback.csv"
    path.write_bytes(f"flag_id,status,note\n{GOOD},confirmed,مخالفة\n".encode("cp1256"))
    return path, r"feedback\.csv: not UTF-8 text .*save it as 'CSV UTF-8'"


def spreadsheet_workbook(tmp: Path) -> tuple[Path, str]:
    (tmp / "feedback.xlsx").write_bytes(b"PK\x03\x04")
    return tmp / "feedback.xlsx", r"feedback\.xlsx: give the published \.gpkg or a \.csv"


def geopackage_without_flags(tmp: Path) -> tuple[Path, str]:
    path = _gpkg(tmp, ["new"] * 3, layer="buildings")
    return path, r"epoch\.gpkg: no layer 'flagged_parcels' \(layers: buildings\)"


def text_named_gpkg(tmp: Path) -> tuple[Path, str]:
    (tmp / "epoch.gpkg").write_text("not a database")
    return tmp / "epoch.gpkg", r"epoch\.gpkg: not a readable GeoPackage"


def no_file(tmp: Path) -> tuple[Path, str]:
    return tmp / "absent.csv", r"absent\.csv: feedback file not found"


UNREADABLE: list[Callable[[Path], tuple[Path, str]]] = [
    missing_status_column,
    not_utf8,
    spreadsheet_workbook,
    geopackage_without_flags,
    text_named_gpkg,
    no_file,
]


@pytest.mark.parametrize("case", UNREADABLE, ids=lambda case: case.__name__)
def test_a_file_that_is_not_feedback_is_an_input_error(tmp_path, case):
    path, message = case(tmp_path)
    with pytest.raises(InputError, match=message):
        read_feedback(path, flag_ids=PUBLISHED)


# -- bad rows beside a good one: (file, [(line, field, problem pattern)]) ----------------------


def unknown_status(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", f"{PUBLISHED[1]},maybe,")
    return path, [(3, "status", "unknown status 'maybe'; use new, confirmed, false_positive")]


def unknown_flag(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", "2025-03-10:no_permit:BRK-9,confirmed,")
    return path, [(3, "flag_id", "unknown flag '2025-03-10:no_permit:BRK-9'")]


def not_a_flag_id(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", "BRK-2,confirmed,")
    return path, [(3, "flag_id", "'BRK-2' is not a flag id")]


def empty_flag_id(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", ",confirmed,seen")
    return path, [(3, "flag_id", "empty")]


def repeated_row(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", f"{GOOD},Confirmed,")
    return path, [(3, "flag_id", "duplicate of line 2; kept once")]


def conflicting_rows(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _csv(tmp, f"{GOOD},confirmed,", f"{PUBLISHED[1]},confirmed,",
                f"{PUBLISHED[1]},false positive,")  # fmt: skip
    problem = "conflicting decisions on lines 3, 4; keep one row"
    return path, [(3, "status", problem), (4, "status", problem)]


def status_typed_in_qgis(tmp: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    path = _gpkg(tmp, ["confirmed", "new", "new"])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE flagged_parcels SET status = 'vu' WHERE fid = 3")
    return path, [(3, "status", "unknown status 'vu'")]


BAD_ROWS: list[Callable[[Path], tuple[Path, list[tuple[int, str, str]]]]] = [
    unknown_status,
    unknown_flag,
    not_a_flag_id,
    empty_flag_id,
    repeated_row,
    conflicting_rows,
    status_typed_in_qgis,
]


@pytest.mark.parametrize("case", BAD_ROWS, ids=lambda case: case.__name__)
def test_a_bad_row_is_reported_and_the_good_one_kept(tmp_path, case):
    path, expected = case(tmp_path)

    result = read_feedback(path, flag_ids=PUBLISHED)

    assert [(d.flag_id, d.status) for d in result.decisions][:1] == [(GOOD, "confirmed")]
    assert [(p.line, p.field) for p in result.problems] == [(line, f) for line, f, _ in expected]
    for problem, (_, _, pattern) in zip(result.problems, expected, strict=True):
        assert problem.source == str(path)
        assert pattern in problem.problem
