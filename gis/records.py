"""Permit and public-project records: read, validate, and report every bad row.

A bad row is never dropped silently: it comes back as a :class:`RecordProblem` naming the
file, the line (CSV) or feature id (GeoPackage) and the field, beside the valid rows.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from core.errors import InputError

log = logging.getLogger(__name__)

PERMIT_COLUMNS = ("permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2")
PROJECT_COLUMNS = ("project_id", "name", "start", "planned_end")
PROJECT_LAYER = "projects"


@dataclass(frozen=True)
class RecordProblem:
    """One field of one record that failed validation."""

    source: str
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.problem}"


@dataclass(frozen=True)
class RecordsResult:
    """Valid records (typed columns, plus ``line``) and the problems of the rejected ones."""

    valid: pd.DataFrame
    problems: tuple[RecordProblem, ...] = ()


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            path,
            f"line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8",
        ) from exc


def _require_columns(path: Path, present: Iterable[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in set(present)]
    if missing:
        raise InputError(path, f"missing required column(s): {', '.join(missing)}")


class _RowCheck:
    """Collects the problems of one record while its fields are converted."""

    def __init__(self, source: Path, line: int, row: Mapping[str, object]) -> None:
        self.source, self.line, self.row = str(source), line, row
        self.problems: list[RecordProblem] = []

    def fail(self, field: str, problem: str) -> None:
        self.problems.append(RecordProblem(self.source, self.line, field, problem))

    def text(self, field: str) -> str | None:
        value = self.row.get(field)
        text = "" if value is None or pd.isna(value) else str(value).strip()
        if not text:
            self.fail(field, "missing")
            return None
        return text

    def day(self, field: str) -> date | None:
        value, text = self.row.get(field), self.text(field)
        if text is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(field, f"{text!r} is not an ISO date (YYYY-MM-DD)")
            return None

    def area_m2(self, field: str) -> float | None:
        text = self.text(field)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            self.fail(field, f"{text!r} is not a number")
            return None
        if not math.isfinite(value) or value < 0:
            self.fail(field, f"{text!r} is not a non-negative area")
            return None
        return value

    def period(self, start: date | None, end: date | None, end_field: str) -> None:
        if start is not None and end is not None and end < start:
            self.fail(end_field, f"{end.isoformat()} is before {start.isoformat()}")


def _unique(check: _RowCheck, field: str, key: str | None, seen: dict[str, int]) -> None:
    """Report ``key`` if a valid record already used it; remember it if this one is valid."""
    if key in seen:
        check.fail(field, f"duplicate of line {seen[key]}")
    elif key is not None and not check.problems:
        seen[key] = check.line


def _report(problems: list[RecordProblem]) -> tuple[RecordProblem, ...]:
    for problem in problems:
        log.warning("%s", problem)
    return tuple(problems)


def read_permits(path: Path) -> RecordsResult:
    """Building permits of a UTF-8 CSV (``PERMIT_COLUMNS``, ISO dates), validated row by row.

    ``status`` is lower-cased; ``issued``/``expires`` become ``datetime.date``; the
    footprint a float. The first row of a repeated ``permit_id`` is kept, later ones reported.
    """
    path = Path(path)
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    _require_columns(path, reader.fieldnames or (), PERMIT_COLUMNS)
    rows, problems, seen = [], [], {}
    for row in reader:
        check = _RowCheck(path, reader.line_num, row)
        if None in row:
            check.fail("row", f"{len(row[None])} value(s) more than the header has columns")
        permit_id, parcel_id = check.text("permit_id"), check.text("parcel_id")
        status = check.text("status")
        issued, expires = check.day("issued"), check.day("expires")
        footprint_m2 = check.area_m2("permitted_footprint_m2")
        check.period(issued, expires, "expires")
        _unique(check, "permit_id", permit_id, seen)
        if check.problems:
            problems.extend(check.problems)
            continue
        rows.append(
            {
                "permit_id": permit_id,
                "parcel_id": parcel_id,
                "status": status.lower() if status else status,
                "issued": issued,
                "expires": expires,
                "permitted_footprint_m2": footprint_m2,
                "line": check.line,
            }
        )
    valid = pd.DataFrame(rows, columns=[*PERMIT_COLUMNS, "line"]).astype(
        {"permitted_footprint_m2": "float64", "line": "int64"}
    )
    return RecordsResult(valid, _report(problems))


def read_projects(path: Path, crs: str | None = None) -> RecordsResult:
    """Public projects (``PROJECT_COLUMNS`` + geometry) of a vector file, validated per
    feature; ``line`` is the feature id. ``valid`` is a GeoDataFrame, in ``crs`` if given.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        layer = PROJECT_LAYER if PROJECT_LAYER in names or len(names) != 1 else names[0]
        frame = gpd.read_file(path, layer=layer, engine="pyogrio", fid_as_index=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(path, f"not a readable vector file with a projects layer ({exc})") from exc
    _require_columns(path, frame.columns, PROJECT_COLUMNS)
    if frame.crs is None:
        raise InputError(path, "has no CRS; project polygons must say where they are")
    keep, problems, seen = [], [], {}
    records: dict[str, list[object]] = {c: [] for c in PROJECT_COLUMNS}
    for fid, row in frame.iterrows():
        check = _RowCheck(path, int(fid), row.to_dict())
        project_id, name = check.text("project_id"), check.text("name")
        start, planned_end = check.day("start"), check.day("planned_end")
        check.period(start, planned_end, "planned_end")
        if row.geometry is None or row.geometry.is_empty:
            check.fail("geometry", "missing")
        _unique(check, "project_id", project_id, seen)
        if check.problems:
            problems.extend(check.problems)
            continue
        keep.append(fid)
        for column, value in zip(
            PROJECT_COLUMNS, (project_id, name, start, planned_end), strict=True
        ):
            records[column].append(value)
    valid = frame.loc[keep].copy()
    for column, values in records.items():
        valid[column] = pd.Series(values, index=valid.index, dtype=object)
    valid["line"] = valid.index.astype("int64")
    valid = valid.reset_index(drop=True)
    if crs is not None:
        valid = valid.to_crs(crs)
    return RecordsResult(valid, _report(problems))
