"""Inspector feedback on flags: stable flag ids, statuses read back from the published
GeoPackage (edited in QGIS) or a CSV export, carried to the next publication, and turned
into labelled footprints for the next model fit.

A bad feedback row is never dropped silently: it comes back as a
:class:`gis.records.RecordProblem` (source, line or feature id, field, problem).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from core.errors import InputError
from core.io import atomic_path
from core.spreadsheet import csv_safe, csv_unquoted
from gis.records import RecordProblem

log = logging.getLogger(__name__)

STATUSES = ("new", "confirmed", "false_positive", "regularised")
STATUS_ALIASES = {"regularized": "regularised", "false_alarm": "false_positive"}
CARRIED_TO_LATER_DATES = frozenset({"confirmed", "regularised"})
"""Decisions that also hold for the same parcel and reason flagged again at a later date."""
SAMPLE_LABELS = {
    "confirmed": "building",
    "regularised": "building",
    "false_positive": "not_building",
}
FEEDBACK_LAYER = "flagged_parcels"
NOTE_COLUMNS = ("note", "inspector_note")
CSV_EXPORT_COLUMNS = (
    "flag_id", "status", "note", "reason", "parcel_id", "commune", "severity",
    "explanation", "captured_on", "record_url", "evidence",
)  # fmt: skip


def flag_id(captured_on: date, reason: str, parcel_id: str | None) -> str:
    """The stable id of a flag: ``DATE:REASON:PARCEL`` (a rerun gives the same id; the
    parcel comes last since cadastral ids may hold any character, ``/`` included)."""
    return f"{captured_on.isoformat()}:{reason}:{parcel_id or ''}"


def parse_flag_id(value: str) -> tuple[date, str, str] | None:
    """(date, reason, parcel id) of a flag id; None when ``value`` is not one."""
    day, _, rest = value.partition(":")
    reason, colon, parcel_id = rest.partition(":")
    try:
        captured_on = date.fromisoformat(day)
    except ValueError:
        return None
    if not colon or not reason.replace("_", "").isalpha():
        return None
    return captured_on, reason, parcel_id


@dataclass(frozen=True)
class Decision:
    """An inspector's status (and note) on one flag, with where it was read."""

    flag_id: str
    status: str
    note: str = ""
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class FeedbackResult:
    """Valid decisions, and the problems of the rows that were not taken."""

    decisions: tuple[Decision, ...]
    problems: tuple[RecordProblem, ...] = ()


Rows = tuple[list[str], list[tuple[int, dict[str, str]]]]
"""A feedback table: its column names, and its rows by line (CSV) or feature id (GPKG)."""


def _rows_of_geopackage(path: Path) -> Rows:
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(path, f"not a readable GeoPackage ({exc})") from exc
    if FEEDBACK_LAYER not in layers:
        raise InputError(
            path, f"no layer {FEEDBACK_LAYER!r} (layers: {', '.join(layers)}); give the "
            "GeoPackage the flags were published in",
        )  # fmt: skip
    table = pyogrio.read_dataframe(
        path, layer=FEEDBACK_LAYER, read_geometry=False, fid_as_index=True
    )
    return [str(c) for c in table.columns], [
        (int(fid), {k: "" if pd.isna(v) else str(v) for k, v in row.items()})
        for fid, row in table.iterrows()
    ]


def _rows_of_csv(path: Path) -> Rows:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason}); save it as 'CSV UTF-8'") from exc
    header = text.partition("\n")[0]
    delimiter = max(",;\t", key=header.count)  # spreadsheets in French locales write ";"
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], reader.line_num + 2
    for record in reader:
        values = [v for v in record.values() if isinstance(v, str)]
        if any(v.strip() for v in values):
            rows.append((line, {k.strip(): (v or "").strip() for k, v in record.items() if k}))
        line = reader.line_num + 1
    return [c.strip() for c in reader.fieldnames or []], rows


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    if not path.exists():
        raise InputError(path, "feedback file not found")
    suffix = path.suffix.lower()
    if suffix == ".gpkg":
        columns, rows = _rows_of_geopackage(path)
    elif suffix in (".csv", ".txt"):
        columns, rows = _rows_of_csv(path)
    else:
        raise InputError(path, "give the published .gpkg or a .csv export of the flags")
    for column in ("flag_id", "status"):
        if column not in columns:
            raise InputError(
                path, f"no column {column!r} (columns: {', '.join(columns) or 'none'})"
            )
    return rows


def _status(word: str) -> str:
    status = word.strip().lower().replace(" ", "_").replace("-", "_") or "new"
    return STATUS_ALIASES.get(status, status)


def _problem(source: Path, line: int, field: str, problem: str) -> RecordProblem:
    return RecordProblem(str(source), line, field, problem)


def _checked(
    path: Path, line: int, row: dict[str, str], flag_ids: Collection[str] | None
) -> Decision | RecordProblem:
    fid, status = row["flag_id"].strip(), _status(row["status"])
    note = csv_unquoted(next((row[c] for c in NOTE_COLUMNS if row.get(c)), ""))
    if not fid:
        return _problem(path, line, "flag_id", "empty; copy the flag_id of the published flag")
    if parse_flag_id(fid) is None:
        return _problem(path, line, "flag_id", f"{fid!r} is not a flag id (DATE:REASON:PARCEL)")
    if flag_ids is not None and fid not in flag_ids:
        return _problem(path, line, "flag_id", f"unknown flag {fid!r}: not among the flags given")
    if status not in STATUSES:
        return _problem(
            path, line, "status", f"unknown status {row['status']!r}; use {', '.join(STATUSES)}"
        )
    return Decision(fid, status, note, str(path), line)


def _without_duplicates(
    path: Path, decisions: list[Decision]
) -> tuple[list[Decision], list[RecordProblem]]:
    """One decision per flag: repeats of the same decision kept once, conflicting ones
    refused (which one the inspector meant cannot be guessed)."""
    kept, problems = [], []
    by_flag: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_flag.setdefault(decision.flag_id, []).append(decision)
    for fid, group in by_flag.items():
        first, *repeats = group
        if all((d.status, d.note) == (first.status, first.note) for d in repeats):
            kept.append(first)
            problems += [
                _problem(path, d.line, "flag_id", f"duplicate of line {first.line}; kept once")
                for d in repeats
            ]
            continue
        lines = ", ".join(str(d.line) for d in group)
        problems += [
            _problem(
                path,
                d.line,
                "status",
                f"flag {fid!r} has conflicting decisions on lines {lines}; keep one row",
            )  # fmt: skip
            for d in group
        ]
    return kept, problems


def read_feedback(path: Path, *, flag_ids: Collection[str] | None = None) -> FeedbackResult:
    """Inspectors' decisions of the published GeoPackage (layer ``flagged_parcels``,
    ``status`` and ``inspector_note`` edited in QGIS) or of a CSV (``flag_id``, ``status``,
    ``note``; comma or semicolon, UTF-8). With ``flag_ids`` (the published flags), unknown
    ids are reported too. An empty status means no decision yet (``new``).
    """
    path = Path(path)
    known = None if flag_ids is None else {str(fid) for fid in flag_ids}
    decisions, problems = [], []
    for line, row in _read_rows(path):
        checked = _checked(path, line, row, known)
        (decisions if isinstance(checked, Decision) else problems).append(checked)
    kept, duplicates = _without_duplicates(path, decisions)
    for problem in (*problems, *duplicates):
        log.warning("feedback not taken: %s", problem)
    ordered = sorted([*problems, *duplicates], key=lambda p: p.line)
    return FeedbackResult(tuple(kept), tuple(ordered))


def _has_flag_ids(path: Path) -> bool:
    """Whether a GeoPackage's flags were published with ids (older epochs' were not)."""
    fields = pyogrio.read_info(path, layer=FEEDBACK_LAYER)["fields"]
    return "flag_id" in fields


def collect_feedback(sources: Iterable[Path]) -> FeedbackResult:
    """The decisions of several feedback files (e.g. the previous epoch's GeoPackage, this
    epoch's before a rerun, a CSV); on the same flag the later source wins. Missing files
    and GeoPackages without a flags layer or flag ids (published before ids existed) are
    skipped."""
    decisions: dict[str, Decision] = {}
    problems: list[RecordProblem] = []
    for path in map(Path, sources):
        if not path.exists():
            continue
        if path.suffix.lower() == ".gpkg":
            layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
            if FEEDBACK_LAYER not in layers or not _has_flag_ids(path):
                log.info("%s: no flags with ids to take feedback from", path)
                continue
        result = read_feedback(path)
        decisions |= {d.flag_id: d for d in result.decisions}
        problems += result.problems
    return FeedbackResult(tuple(decisions.values()), tuple(problems))


def _earlier_decision(
    fid: str, standing: dict[tuple[str, str], list[tuple[date, Decision]]]
) -> Decision | None:
    """The latest decision of an earlier date on the same parcel and reason, if one holds."""
    parsed = parse_flag_id(fid)
    if parsed is None or not parsed[2]:
        return None
    day, reason, parcel_id = parsed
    earlier = [(d, decision) for d, decision in standing.get((reason, parcel_id), []) if d < day]
    return max(earlier, key=lambda pair: pair[0])[1] if earlier else None


def carry_feedback(flags: gpd.GeoDataFrame, decisions: Iterable[Decision]) -> gpd.GeoDataFrame:
    """``flags`` with the inspectors' ``status`` and ``inspector_note`` on them.

    The decision on the same ``flag_id`` wins (a rerun keeps what the inspector said); else a
    *confirmed* or *regularised* decision from an earlier date on the same parcel and reason
    holds, and ``carried_from`` names its flag. Other flags are ``new``.
    """
    decisions = list(decisions)
    by_id = {d.flag_id: d for d in decisions}
    standing: dict[tuple[str, str], list[tuple[date, Decision]]] = {}
    for decision in decisions:
        parsed = parse_flag_id(decision.flag_id)
        if parsed and parsed[2] and decision.status in CARRIED_TO_LATER_DATES:
            standing.setdefault((parsed[1], parsed[2]), []).append((parsed[0], decision))
    statuses, notes, origins = [], [], []
    for fid in flags["flag_id"]:
        decision, origin = by_id.get(fid), ""
        if decision is None:
            decision = _earlier_decision(fid, standing)
            origin = decision.flag_id if decision else ""
        statuses.append(decision.status if decision else "new")
        notes.append(decision.note if decision else "")
        origins.append(origin)
    return flags.assign(status=statuses, inspector_note=notes, carried_from=origins)


def _ids(structures: pd.DataFrame) -> pd.Index:
    ids = structures["building_id"] if "building_id" in structures else structures.index
    return pd.Index(ids).astype(str)


def feedback_samples(
    decisions: Iterable[Decision], flags: gpd.GeoDataFrame, structures: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Footprints the inspectors judged, labelled for the next building model fit:
    ``building`` (confirmed or regularised: it stands there) or ``not_building`` (false
    positive). A footprint is the flagged structures (``building_ids`` of ``structures``,
    e.g. the ``new_buildings`` layer) on the flag's parcel. A footprint given both labels
    (two flags on it judged differently) is left out, with a warning.
    """
    status_of = {d.flag_id: d.status for d in decisions}
    ids = _ids(structures)
    structures = structures.to_crs(flags.crs)
    rows = []
    for flag in flags.itertuples():
        label = SAMPLE_LABELS.get(status_of.get(flag.flag_id, ""))
        if label is None:
            continue
        chosen = structures.geometry[ids.isin(str(flag.building_ids).split(","))].values
        footprint = shapely.intersection(shapely.union_all(chosen), flag.geometry)
        if not footprint.is_empty:
            rows.append({"flag_id": flag.flag_id, "label": label, "status": status_of[flag.flag_id],
                         "geometry": footprint})  # fmt: skip
    samples = gpd.GeoDataFrame(
        rows, columns=["flag_id", "label", "status", "geometry"], crs=flags.crs
    )
    key = samples.geometry.normalize().to_wkb()
    both = samples.groupby(key)["label"].transform("nunique") > 1
    if both.any():
        log.warning("footprints judged both built and not built left out: %s",
                    ", ".join(samples.loc[both, "flag_id"]))  # fmt: skip
    return samples[~both & ~key.duplicated()].reset_index(drop=True)


def write_feedback_csv(flags: pd.DataFrame, path: Path) -> Path:
    """The flags as a CSV for inspectors who work in a spreadsheet (UTF-8 with BOM, so
    Excel shows Arabic; text that a spreadsheet would run as a formula quoted), atomically.
    :func:`read_feedback` reads it back."""
    table = flags.rename(columns={"inspector_note": "note"})
    columns = [c for c in CSV_EXPORT_COLUMNS if c in table.columns]
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in table[columns].itertuples(index=False):
                writer.writerow(["" if _missing(v) else csv_safe(_text(v)) for v in row])
    return Path(path)


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _text(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value
