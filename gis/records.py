"""Permit and public-project records: read, validate, and report every bad record.

A bad record is never dropped silently: it comes back as a :class:`RecordProblem` naming
the source, the line (CSV), feature id (GeoPackage) or position in its page (JSON API) and
the field, beside the valid records. :func:`load_permits` / :func:`load_projects` read any
:class:`RecordSource` (CSV, vector file, JSON file or HTTP API, with a field mapping);
:func:`read_permits` / :func:`read_projects` are the plain-file shortcuts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
import shapely.geometry

from core.errors import InputError
from gis.record_api import HttpOptions
from gis.record_sources import RawRecord, RecordTable, is_url, read_table

log = logging.getLogger(__name__)

PERMIT_COLUMNS = ("permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2")
PROJECT_COLUMNS = ("project_id", "name", "start", "planned_end")
PROJECT_LAYER = "projects"
ISO_DATE = "%Y-%m-%d"


@dataclass(frozen=True)
class RecordProblem:
    """One field of one record that failed validation (``field`` as the source names it)."""

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


@dataclass(frozen=True)
class RecordSource:
    """Where one kind of record lives and how it writes our fields.

    ``location``: a CSV (``delimiter``), a vector file (``layer``: its table or layer), a
    ``.json`` file or an ``http(s)://`` JSON API (``records_key``: dotted path of the list
    in an object answer; ``next_key``: the next-page link); ``kind`` (csv, vector, json)
    overrides what the suffix tells. ``fields`` maps our field to theirs
    (``{"permit_id": "numero_autorisation"}``); ``date_formats`` are ``strptime`` formats
    (none: ISO ``YYYY-MM-DD``); ``status_values`` maps their status words to ours
    (``{"accordée": "approved"}``); ``geometry_crs`` is the CRS of WKT / GeoJSON geometry
    in CSV and JSON sources (vector files carry their own); ``encoding`` that of a CSV or
    JSON file saved in another encoding than UTF-8 (``cp1256``: Arabic Windows).
    """

    location: str | Path
    kind: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    date_formats: tuple[str, ...] = ()
    decimal_comma: bool = False
    status_values: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = ","
    layer: str | None = None
    records_key: str | None = None
    next_key: str = "next"
    geometry_crs: str = "EPSG:4326"
    encoding: str | None = None
    http: HttpOptions = field(default_factory=HttpOptions)

    def name(self, ours: str) -> str:
        """The source's name for our field ``ours``."""
        return self.fields.get(ours, ours)

    def read(self, default_layer: str | None = None) -> RecordTable:
        return read_table(
            self.location if is_url(self.location) else Path(self.location),
            kind=self.kind,
            delimiter=self.delimiter,
            layer=self.layer,
            default_layer=default_layer,
            records_key=self.records_key,
            next_key=self.next_key,
            http=self.http,
            encoding=self.encoding,
        )


def record_source(
    options: Mapping[str, object], http: HttpOptions | None = None, where: str = "raqib.toml"
) -> RecordSource:
    """A :class:`RecordSource` from a settings table (``source`` is the location, lists
    become tuples); an unknown or missing key is an InputError naming ``where``."""
    names = {f.name for f in dataclass_fields(RecordSource)} - {"location", "http"}
    unknown = sorted(set(options) - names - {"source"})
    if unknown or "source" not in options:
        problem = f"unknown key(s) {', '.join(unknown)}" if unknown else "no source given"
        raise InputError(where, f"{problem}; keys are source, {', '.join(sorted(names))}")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    location = given.pop("source")
    return RecordSource(location, **given, http=http or HttpOptions())  # type: ignore[arg-type]


class _RecordCheck:
    """Collects the problems of one record while its fields are converted."""

    def __init__(self, record: RawRecord, spec: RecordSource) -> None:
        self.source, self.line, self.spec = record.source, record.line, spec
        self.row = record.values
        self.problems: list[RecordProblem] = []
        if record.problem:
            self.problems.append(RecordProblem(self.source, self.line, "row", record.problem))
        self.unreadable = bool(record.problem) and not record.values

    def fail(self, ours: str, problem: str) -> None:
        self.problems.append(RecordProblem(self.source, self.line, self.spec.name(ours), problem))

    def value(self, ours: str) -> object:
        return self.row.get(self.spec.name(ours))

    def text(self, ours: str) -> str | None:
        value = self.value(ours)
        if isinstance(value, list | dict):
            self.fail(ours, f"one value expected, not {type(value).__name__} {value!r:.40}")
            return None
        text = "" if value is None or pd.isna(value) else str(value).strip()
        if not text:
            self.fail(ours, "missing")
            return None
        return text

    def day(self, ours: str) -> date | None:
        value, text = self.value(ours), self.text(ours)
        if text is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        formats = self.spec.date_formats
        if not formats:
            try:
                return date.fromisoformat(text)
            except ValueError:
                self.fail(ours, f"{text!r} is not an ISO date (YYYY-MM-DD)")
                return None
        for fmt in formats:
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        self.fail(ours, f"{text!r} is not a date written {' or '.join(formats)}")
        return None

    def area_m2(self, ours: str) -> float | None:
        text = self.text(ours)
        if text is None:
            return None
        number = text
        if self.spec.decimal_comma:  # French: "1 250,5" (spaces group thousands)
            number = "".join(text.split()).replace("\u202f", "").replace(",", ".")
        try:
            value = float(number)
        except ValueError:
            self.fail(ours, f"{text!r} is not a number")
            return None
        if not math.isfinite(value) or value < 0:
            self.fail(ours, f"{text!r} is not a non-negative area")
            return None
        return value

    def period(self, start: date | None, end: date | None, end_field: str) -> None:
        if start is not None and end is not None and end < start:
            self.fail(end_field, f"{end.isoformat()} is before {start.isoformat()}")

    def geometry(self, ours: str) -> shapely.Geometry | None:
        value = self.value(ours)
        try:
            if isinstance(value, str) and value.strip():
                geometry = shapely.from_wkt(value)
            elif isinstance(value, dict):
                geometry = shapely.geometry.shape(value)
            else:
                geometry = value if isinstance(value, shapely.Geometry) else None
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, AttributeError):
            self.fail(ours, f"{value!r:.40} is not a WKT or GeoJSON geometry")
            return None
        if geometry is None or geometry.is_empty:
            self.fail(ours, "missing")
            return None
        return geometry


def _unique(check: _RecordCheck, ours: str, key: str | None, seen: dict) -> None:
    """Report ``key`` if a valid record already used it; remember it if this one is valid."""
    if key in seen:
        source, line = seen[key]
        where = f"line {line}" if source == check.source else f"{source} line {line}"
        check.fail(ours, f"duplicate of {where}")
    elif key is not None and not check.problems:
        seen[key] = (check.source, check.line)


def _require_fields(table: RecordTable, spec: RecordSource, required: Iterable[str]) -> None:
    """Refuse a mapping of unknown fields, or a source without a required column (JSON:
    a field no record has), before reporting it as missing in every record."""
    unknown = sorted(set(spec.fields) - {*required, "geometry"})
    if unknown:
        raise InputError(
            table.source,
            f"field mapping names unknown field(s) {', '.join(unknown)}; "
            f"Raqib's fields are {', '.join(required)}",
        )
    if table.columns is None and not table.records:
        return
    present = table.columns or {name for record in table.records for name in record.values}
    absent = [
        spec.name(c) if spec.name(c) == c else f"{spec.name(c)} (our {c})"
        for c in required
        if spec.name(c) not in present
    ]
    if absent:
        what = "missing required column(s)" if table.columns is not None else "no record has"
        raise InputError(table.source, f"{what}: {', '.join(absent)}; rename or map them")


def _report(problems: list[RecordProblem]) -> tuple[RecordProblem, ...]:
    for problem in problems:
        log.warning("%s", problem)
    return tuple(problems)


def load_permits(
    source: RecordSource | str | Path, *, parcel_ids: Collection[str] | None = None
) -> RecordsResult:
    """Building permits of any :class:`RecordSource`, validated record by record.

    ``status`` is lower-cased (then mapped by ``status_values``); ``issued``/``expires``
    become ``datetime.date``; the footprint a float. The first record of a repeated
    ``permit_id`` is kept, later ones reported; with ``parcel_ids`` (the cadastre's), a
    permit on another parcel is reported as an unknown parcel.
    """
    spec = source if isinstance(source, RecordSource) else RecordSource(source)
    table = spec.read()
    _require_fields(table, spec, PERMIT_COLUMNS)
    known = None if parcel_ids is None else frozenset(map(str, parcel_ids))
    statuses = {k.strip().lower(): v for k, v in spec.status_values.items()}
    rows, problems, seen = [], [], {}
    for record in table.records:
        check = _RecordCheck(record, spec)
        if check.unreadable:
            problems.extend(check.problems)
            continue
        permit_id, parcel_id = check.text("permit_id"), check.text("parcel_id")
        status = check.text("status")
        issued, expires = check.day("issued"), check.day("expires")
        footprint_m2 = check.area_m2("permitted_footprint_m2")
        check.period(issued, expires, "expires")
        if known is not None and parcel_id is not None and parcel_id not in known:
            check.fail("parcel_id", f"unknown parcel {parcel_id!r}: not in the cadastre given")
        _unique(check, "permit_id", permit_id, seen)
        if check.problems:
            problems.extend(check.problems)
            continue
        status = status.lower() if status else status
        rows.append(
            {
                "permit_id": permit_id,
                "parcel_id": parcel_id,
                "status": statuses.get(status or "", status),
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


def read_permits(path: Path, *, parcel_ids: Collection[str] | None = None) -> RecordsResult:
    """Building permits of a UTF-8 CSV with our column names and ISO dates (see
    :func:`load_permits`)."""
    return load_permits(RecordSource(Path(path), kind="csv"), parcel_ids=parcel_ids)


def load_projects(source: RecordSource | str | Path, crs: str | None = None) -> RecordsResult:
    """Public projects (``PROJECT_COLUMNS`` + geometry) of any :class:`RecordSource`,
    validated per record. ``valid`` is a GeoDataFrame (the source's other fields kept),
    in ``crs`` if given.
    """
    spec = source if isinstance(source, RecordSource) else RecordSource(source)
    table = spec.read(default_layer=PROJECT_LAYER)
    _require_fields(table, spec, (*PROJECT_COLUMNS, "geometry"))
    geometry_crs = table.crs if table.kind == "vector" else spec.geometry_crs
    if geometry_crs is None:
        raise InputError(table.source, "has no CRS; project polygons must say where they are")
    ours = {spec.name(c) for c in (*PROJECT_COLUMNS, "geometry")}
    rows, problems, seen = [], [], {}
    for record in table.records:
        check = _RecordCheck(record, spec)
        if check.unreadable:
            problems.extend(check.problems)
            continue
        project_id, name = check.text("project_id"), check.text("name")
        start, planned_end = check.day("start"), check.day("planned_end")
        check.period(start, planned_end, "planned_end")
        geometry = check.geometry("geometry")
        _unique(check, "project_id", project_id, seen)
        if check.problems:
            problems.extend(check.problems)
            continue
        others = {k: v for k, v in record.values.items() if k not in ours}
        typed = dict(zip(PROJECT_COLUMNS, (project_id, name, start, planned_end), strict=True))
        rows.append({**others, **typed, "line": check.line, "geometry": geometry})
    valid = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=_project_columns(rows)), geometry="geometry", crs=geometry_crs
    ).astype({"line": "int64"})
    if crs is not None:
        valid = valid.to_crs(crs)
    return RecordsResult(valid, _report(problems))


def _project_columns(rows: list[dict[str, object]]) -> list[str]:
    names = dict.fromkeys(name for row in rows for name in row)
    names.update(dict.fromkeys((*PROJECT_COLUMNS, "line", "geometry")))
    return list(names)


def read_projects(path: Path, crs: str | None = None) -> RecordsResult:
    """Public projects of a vector file (layer ``projects`` or its only layer); ``line``
    is the feature id (see :func:`load_projects`)."""
    return load_projects(RecordSource(Path(path), kind="vector"), crs)
