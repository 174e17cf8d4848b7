"""Public-project tracking: progress per project and epoch, a dated photo archive, a history
table, and *stalled* alerts that say why in words.

Progress of a project on a survey date is measured inside its polygon: the share covered by
detected structures (``built_fraction``) and by bare earth works not under a structure
(``earthwork_fraction``), combined as ``(built + EARTHWORK_CREDIT × earthwork) / target``
capped at 1, where ``target`` is the built-up share of a finished project (column
``target_built_fraction`` of the project, else ``TARGET_BUILT_FRACTION``). Each measurement
is archived as a chip ``<archive>/<project_id>/<YYYY-MM-DD>.png`` whose path the history keeps.
Stall rules are pure functions of a :class:`ProjectCase` held in ``STALL_RULES`` by reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio import features as rio_features
from rasterio.windows import from_bounds
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from core.io import read_attribute_table, write_attribute_table
from gis.evidence import (
    MARGIN_M,
    MAX_PX,
    Chip,
    chip_grid,
    outlined_chip,
    read_png,
    side_by_side,
    write_png,
)

HISTORY_TABLE = "project_history"
HISTORY_COLUMNS: tuple[str, ...] = (
    "project_id",
    "date",
    "covered_share",
    "built_m2",
    "built_fraction",
    "earthwork_fraction",
    "progress",
    "change",
    "chip",
    "note",
)
"""``covered_share``: share of the project with mosaic pixels; ``progress`` NaN when the
project was not measured (``note`` says why); ``change``: progress since the previous
measured epoch; ``chip``: the archived PNG."""
_TEXT, _FLOAT = ("project_id", "chip", "note"), HISTORY_COLUMNS[2:8]
STATUS_COLUMNS: tuple[str, ...] = (
    "project_id",
    "name",
    "date",
    "status",
    "reasons",
    "explanation",
    "progress",
    "expected_progress",
    "stalled_since",
    "record_url",
    "chip_before",
    "chip_after",
    "chip_pair",
)
STALLED, ON_TRACK, NOT_STARTED, FINISHED, NOT_ASSESSED = (
    "stalled",
    "on track",
    "not started",
    "finished",
    "not assessed",
)
PROJECT_COLUMNS = ("project_id", "name", "start", "planned_end")
TARGET_BUILT_FRACTION = 0.5
"""Built-up share of a project's polygon when it is finished (unless the project says)."""
EARTHWORK_CREDIT = 0.25
"""Bare earth works count for this much of the same area built (a first stage of works)."""
MIN_COVERED_SHARE = 0.5
"""Share of a project's area the mosaic must cover for its progress to be measured."""
STALL_DAYS = 90
MIN_CHANGE = 0.05
SCHEDULE_TOLERANCE = 0.25
URL_TEMPLATE = "https://projects.example/projects/{project_id}"


# -- measuring one epoch -------------------------------------------------------------------


def project_progress(
    projects: gpd.GeoDataFrame,
    day: date,
    *,
    mosaic: str | Path,
    structures: gpd.GeoDataFrame,
    archive: str | Path,
    earthworks: gpd.GeoDataFrame | str | Path | None = None,
    target_built_fraction: float = TARGET_BUILT_FRACTION,
    earthwork_credit: float = EARTHWORK_CREDIT,
    min_covered_share: float = MIN_COVERED_SHARE,
    margin_m: float = MARGIN_M,
    max_px: int = MAX_PX,
) -> pd.DataFrame:
    """One ``HISTORY_COLUMNS`` row per project for the survey of ``day``.

    ``structures`` are the epoch's detected building polygons (a projected CRS: the working
    one); ``projects`` (any CRS) are moved to it. ``earthworks`` is a bare-soil mask raster
    (non-zero = bare) or bare-soil polygons. A project the mosaic covers for less than
    ``min_covered_share``, or with no geometry, gets NaN progress and a ``note``; every
    project the mosaic touches gets a chip in ``archive``. ``change`` is left NaN
    (:func:`add_epoch` computes it).
    """
    crs = _working_crs(structures)
    for name, value in (
        ("earthwork_credit", earthwork_credit),
        ("min_covered_share", min_covered_share),
    ):
        if not 0 <= value <= 1:
            raise InputError(name, f"must be within 0..1, got {value}")
    survey = _Survey(
        day=_as_date(day, "day"),
        mosaic=mosaic,
        structures=structures[~(structures.geometry.isna() | structures.geometry.is_empty)],
        earthworks=_bare_polygons(earthworks, crs),
        archive=Path(archive),
        earthwork_credit=earthwork_credit,
        min_covered_share=min_covered_share,
        margin_m=margin_m,
        max_px=max_px,
    )
    projects = _checked_projects(projects).to_crs(crs)
    rows = [
        _measure(project, survey, _target(project, target_built_fraction))
        for project in projects.itertuples(index=False)
    ]
    return _typed(pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def archive_path(archive: str | Path, project_id: str, day: date) -> Path:
    """Where the chip of ``project_id`` on ``day`` is archived (id made safe as a folder)."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", str(project_id)).strip(".") or "_"
    return Path(archive) / folder / f"{day.isoformat()}.png"


@dataclass(frozen=True)
class _Survey:
    """One epoch's inputs and the measuring parameters."""

    day: date
    mosaic: str | Path
    structures: gpd.GeoDataFrame
    earthworks: gpd.GeoDataFrame | Path | None
    archive: Path
    earthwork_credit: float
    min_covered_share: float
    margin_m: float
    max_px: int


def _measure(project: Any, survey: _Survey, target: float) -> dict[str, object]:
    pid, day = str(project.project_id), survey.day
    row: dict[str, object] = {"project_id": pid, "date": day, "chip": "", "note": ""}
    geometry = project.geometry
    polygon = None if geometry is None else shapely.make_valid(geometry)
    if polygon is None or not polygon.area > 0:
        return row | {"note": "the project has no polygon (empty or missing geometry)"}
    structures = survey.structures
    outline = gpd.GeoSeries([polygon], crs=structures.crs)
    grid = chip_grid(survey.mosaic, outline, margin_m=survey.margin_m, max_px=survey.max_px)
    near = structures.iloc[structures.sindex.query(shapely.box(*grid.bounds))]
    chip = outlined_chip(survey.mosaic, outline, second=near, grid=grid)
    covered = _covered_share(polygon, chip)
    row["covered_share"] = covered
    if covered == 0:
        return row | {"note": f"the mosaic of {day} does not cover the project"}
    built = _union_inside(structures, polygon)
    earthwork_fraction = _earthwork_fraction(survey.earthworks, polygon, built)
    row |= {
        "built_m2": built.area,
        "built_fraction": built.area / polygon.area,
        "earthwork_fraction": earthwork_fraction,
    }
    credited = survey.earthwork_credit * (earthwork_fraction or 0.0)
    progress = min(1.0, (built.area / polygon.area + credited) / target)
    if covered < survey.min_covered_share:
        row["note"] = (
            f"only {covered:.0%} of the project is on the mosaic of {day} "
            f"(at least {survey.min_covered_share:.0%} needed to measure progress)"
        )
    else:
        row["progress"] = progress
    caption = f"{day}  " + (
        f"progress {progress:.0%}" if "progress" in row else f"{covered:.0%} surveyed"
    )
    path = archive_path(survey.archive, pid, day)
    row["chip"] = str(write_png(side_by_side([chip.rgb], [caption]), path))
    return row


def _covered_share(polygon: BaseGeometry, chip: Chip) -> float:
    """Share of the polygon's chip pixels that hold mosaic data (all touched pixels for a
    polygon smaller than one)."""
    grid = chip.grid
    for all_touched in (False, True):
        inside = rio_features.geometry_mask(
            [polygon], out_shape=grid.shape, transform=grid.transform, invert=True,
            all_touched=all_touched,
        )  # fmt: skip
        if inside.any():
            return float(chip.valid[inside].mean())
    return 0.0


def _union_inside(shapes: gpd.GeoDataFrame, polygon: BaseGeometry) -> BaseGeometry:
    """The union of ``shapes`` clipped to ``polygon`` (overlaps counted once)."""
    hits = shapes.geometry.values[shapes.sindex.query(polygon, predicate="intersects")]
    if not len(hits):
        return shapely.Polygon()
    return shapely.intersection(shapely.union_all(shapely.make_valid(hits)), polygon)


def _earthwork_fraction(
    earthworks: gpd.GeoDataFrame | Path | None, polygon: BaseGeometry, built: BaseGeometry
) -> float | None:
    """Share of ``polygon`` that is bare earth works and not under a structure (``built``)."""
    if earthworks is None:
        return None
    if isinstance(earthworks, gpd.GeoDataFrame):
        return shapely.difference(_union_inside(earthworks, polygon), built).area / polygon.area
    return _bare_share_of_mask(earthworks, polygon, built)


def _bare_share_of_mask(mask_path: Path, polygon: BaseGeometry, built: BaseGeometry) -> float:
    """Share of ``polygon``'s pixels of the bare-soil mask (in the polygon's CRS) that are
    non-zero and not under ``built``; read by one window around the polygon."""
    with rasterio.open(mask_path) as src:
        window = from_bounds(*polygon.bounds, transform=src.transform)
        window = window.round_offsets(op="floor").round_lengths(op="ceil")
        bare = src.read(1, window=window, boundless=True, fill_value=0) != 0
        transform = src.window_transform(window)
    inside = rio_features.geometry_mask(
        [polygon], out_shape=bare.shape, transform=transform, invert=True
    )
    area_px = inside.sum()
    if not built.is_empty:
        inside &= rio_features.geometry_mask([built], out_shape=bare.shape, transform=transform)
    return float((inside & bare).sum() / area_px) if area_px else 0.0


def _bare_polygons(
    earthworks: gpd.GeoDataFrame | str | Path | None, crs: Any
) -> gpd.GeoDataFrame | Path | None:
    """Bare-soil polygons in ``crs``, or the path of a bare-soil mask in that CRS."""
    if earthworks is None:
        return None
    if not isinstance(earthworks, gpd.GeoDataFrame):
        path = Path(earthworks)
        try:
            with rasterio.open(path) as src:
                mask_crs = src.crs
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(path, f"cannot open the bare-soil mask ({exc})") from exc
        if mask_crs is None or mask_crs != crs:
            raise InputError(
                path, f"the bare-soil mask is in {mask_crs}, not in the structures' CRS {crs}"
            )
        return path
    if earthworks.crs is None:
        raise InputError("earthworks", "has no CRS: say where its polygons are (set_crs)")
    present = earthworks[~(earthworks.geometry.isna() | earthworks.geometry.is_empty)]
    return present.to_crs(crs)


def _target(project: Any, default: float) -> float:
    value = getattr(project, "target_built_fraction", None)
    target = default if value is None or pd.isna(value) else float(value)
    if not 0 < target <= 1:
        raise InputError(
            f"project {project.project_id}",
            f"target_built_fraction must be in (0, 1], got {target}",
        )
    return target


# -- the history ---------------------------------------------------------------------------


def add_epoch(history: pd.DataFrame | None, progress: pd.DataFrame) -> pd.DataFrame:
    """``history`` with the rows of ``progress`` (one or more epochs) added; a project's
    row for a date already there is replaced, so reruns never duplicate rows. ``change`` is
    recomputed: progress since the project's previous measured epoch."""
    new = _typed(_checked(progress, "progress"))
    kept = empty_history() if history is None else _typed(_checked(history, "history"))
    keys = set(zip(new["project_id"], new["date"], strict=True))
    replaced = [k in keys for k in zip(kept["project_id"], kept["date"], strict=True)]
    frames = [f for f in (kept[~np.asarray(replaced, dtype=bool)], new) if len(f)]
    combined = pd.concat(frames, ignore_index=True) if frames else empty_history()
    combined = combined.sort_values(["project_id", "date"], ignore_index=True)
    measured = combined[combined["progress"].notna()]
    combined["change"] = measured.groupby("project_id")["progress"].diff()
    return combined


def empty_history() -> pd.DataFrame:
    """A project history with no rows yet."""
    return _typed(pd.DataFrame({column: [] for column in HISTORY_COLUMNS}))


def write_history(history: pd.DataFrame, gpkg_path: str | Path) -> Path:
    """Write ``history`` as the attribute table ``HISTORY_TABLE`` of a GeoPackage,
    atomically, keeping the file's other layers; dates are a DATE column."""
    history = _typed(_checked(history, "history"))
    path = Path(gpkg_path)
    arrays = [
        history["date"].to_numpy(dtype="datetime64[D]")
        if column == "date"
        else history[column].to_numpy(dtype=float)
        if column in _FLOAT
        else np.array([str(v) for v in history[column]], dtype=object)
        for column in HISTORY_COLUMNS
    ]
    return write_attribute_table(path, HISTORY_TABLE, HISTORY_COLUMNS, arrays)


def read_history(gpkg_path: str | Path) -> pd.DataFrame:
    """The history written by :func:`write_history`; empty when the file or table does not
    exist yet (the first epoch of a workspace)."""
    frame = read_attribute_table(gpkg_path, HISTORY_TABLE)
    if frame is None:
        return empty_history()
    return _typed(_checked(frame, f"{gpkg_path} table {HISTORY_TABLE}"))


# -- stalled projects ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectCase:
    """One project's measured epochs up to ``on`` (sorted by date) and its schedule."""

    project_id: str
    start: date
    planned_end: date
    on: date
    epochs: pd.DataFrame
    stall_days: int = STALL_DAYS
    min_change: float = MIN_CHANGE
    schedule_tolerance: float = SCHEDULE_TOLERANCE

    @property
    def progress(self) -> float:
        return float(self.epochs["progress"].iloc[-1])

    @property
    def expected_progress(self) -> float:
        """Progress of a linear schedule from ``start`` (0) to ``planned_end`` (1) on ``on``."""
        total_days = (self.planned_end - self.start).days
        if total_days <= 0:
            return 1.0
        return float(np.clip((self.on - self.start).days / total_days, 0.0, 1.0))

    @property
    def stalled_since(self) -> date:
        """The earliest date (not before ``start``) after which progress never rose by
        ``min_change`` up to ``on``."""
        values, dates = self.epochs["progress"].to_numpy(), list(self.epochs["date"])
        since = len(values) - 1
        while since > 0 and values[since:].max() - values[since - 1] < self.min_change:
            since -= 1
        return max(dates[since], self.start)


def no_progress(case: ProjectCase) -> str | None:
    """Progress has not risen by ``min_change`` for ``stall_days`` or more."""
    since = case.stalled_since
    days = (case.on - since).days
    if days < case.stall_days:
        return None
    first = case.epochs[case.epochs["date"] <= since]
    before = float(first["progress"].iloc[-1]) if len(first) else 0.0
    when = "at the start on" if since == case.start else "on"
    return (
        f"no measurable progress for {days} days: {before:.0%} {when} {since}, "
        f"{case.progress:.0%} on {case.on} ({(case.progress - before) * 100:+.0f} points; "
        f"at least {case.min_change * 100:.0f} points expected within {case.stall_days} days)"
    )


def behind_schedule(case: ProjectCase) -> str | None:
    """Before its planned end, progress trails a linear schedule by more than the tolerance."""
    if case.on > case.planned_end:
        return None
    expected, gap = case.expected_progress, case.expected_progress - case.progress
    if gap <= case.schedule_tolerance:
        return None
    return (
        f"far behind schedule: on {case.on}, {expected:.0%} of the time from {case.start} to "
        f"the planned end {case.planned_end} has passed but progress is {case.progress:.0%} "
        f"({gap * 100:.0f} points behind; tolerance {case.schedule_tolerance * 100:.0f})"
    )


def overdue(case: ProjectCase) -> str | None:
    """Past its planned end and not finished."""
    if case.on <= case.planned_end:
        return None
    days = (case.on - case.planned_end).days
    return (
        f"overdue: planned to end on {case.planned_end}; on {case.on}, {days} days later, "
        f"progress is {case.progress:.0%}"
    )


STALL_RULES: dict[str, Callable[[ProjectCase], str | None]] = {
    "no_progress": no_progress,
    "behind_schedule": behind_schedule,
    "overdue": overdue,
}


def assess_projects(
    history: pd.DataFrame,
    projects: gpd.GeoDataFrame,
    *,
    on: date | None = None,
    stall_days: int = STALL_DAYS,
    min_change: float = MIN_CHANGE,
    schedule_tolerance: float = SCHEDULE_TOLERANCE,
    url_template: str = URL_TEMPLATE,
) -> gpd.GeoDataFrame:
    """Every project's status on ``on`` (default: the latest date in ``history``), one row
    each (``STATUS_COLUMNS`` + the project's geometry): ``stalled`` with the reasons of
    ``STALL_RULES`` in words, or ``on track``, ``not started``, ``finished``,
    ``not assessed`` (not measured on that date). A stalled project also gets a before /
    after PNG (``chip_pair``) beside its latest chip.
    """
    if stall_days < 1 or not min_change > 0 or not schedule_tolerance >= 0:
        raise InputError(
            "stall rules",
            f"need stall_days >= 1, min_change > 0 and schedule_tolerance >= 0 (got "
            f"{stall_days}, {min_change}, {schedule_tolerance})",
        )
    history = _typed(_checked(history, "history"))
    projects = _checked_projects(projects)
    on = _as_date(on, "on") if on is not None else _latest(history)
    rows = []
    for project in projects.itertuples(index=False):
        rows.append(
            _status_row(
                project, history, on, stall_days, min_change, schedule_tolerance, url_template
            )
        )
    status = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    return gpd.GeoDataFrame(status, geometry=projects.geometry.values, crs=projects.crs)


def _status_row(
    project: Any,
    history: pd.DataFrame,
    on: date,
    stall_days: int,
    min_change: float,
    tolerance: float,
    url_template: str,
) -> dict[str, object]:
    pid = str(project.project_id)
    start = _as_date(project.start, f"project {pid} start")
    planned_end = _as_date(project.planned_end, f"project {pid} planned_end")
    mine = history[(history["project_id"] == pid) & (history["date"] <= on)]
    today = mine[mine["date"] == on]
    row: dict[str, object] = {
        "project_id": pid,
        "name": str(project.name),
        "date": on,
        "reasons": "",
        "record_url": url_template.format(project_id=pid),
        "chip_after": today["chip"].iloc[0] if len(today) and today["chip"].iloc[0] else None,
    }
    if today.empty or pd.isna(today["progress"].iloc[0]):
        why = today["note"].iloc[0] if len(today) else f"no survey of the project on {on}"
        return row | {"status": NOT_ASSESSED, "explanation": f"not measured on {on}: {why}"}
    epochs = mine[mine["progress"].notna()]
    case = ProjectCase(pid, start, planned_end, on, epochs, stall_days, min_change, tolerance)
    row |= {"progress": case.progress, "expected_progress": case.expected_progress}
    if on < start:
        return row | {"status": NOT_STARTED, "explanation": f"starts on {start}"}
    if case.progress >= 1.0:
        return row | {"status": FINISHED, "explanation": f"finished: progress 100% on {on}"}
    found = {reason: rule(case) for reason, rule in STALL_RULES.items()}
    found = {reason: text for reason, text in found.items() if text}
    if not found:
        return row | {
            "status": ON_TRACK,
            "explanation": f"progress {case.progress:.0%} on {on}, "
            f"{case.expected_progress:.0%} expected by the schedule",
        }
    row |= {"status": STALLED, "reasons": ";".join(found)}
    row["explanation"] = f"Project {pid} ({project.name}) is stalled: " + "; ".join(found.values())
    row["stalled_since"] = case.stalled_since if "no_progress" in found else None
    before = _before_epoch(epochs, case.stalled_since if "no_progress" in found else None, on)
    if before is not None and before["chip"] and row["chip_after"]:
        row["chip_before"] = before["chip"]
        row["chip_pair"] = str(_write_pair(Path(before["chip"]), Path(row["chip_after"]),
                                           before["date"], on))  # fmt: skip
    return row


def _before_epoch(epochs: pd.DataFrame, since: date | None, on: date) -> pd.Series | None:
    """The epoch to show as "before": the stall's start, else the first measured one."""
    earlier = epochs[epochs["date"] < on]
    if earlier.empty:
        return None
    if since is not None and (earlier["date"] <= since).any():
        return earlier[earlier["date"] <= since].iloc[-1]
    return earlier.iloc[0]


def _write_pair(before: Path, after: Path, before_day: date, after_day: date) -> Path:
    """The two archived chips (captioned with their dates) side by side, beside ``after``."""
    out = after.with_name(f"{before_day.isoformat()}_{after_day.isoformat()}.png")
    return write_png(side_by_side([read_png(before), read_png(after)], [None, None]), out)


def _latest(history: pd.DataFrame) -> date:
    if history.empty:
        raise InputError("history", "is empty: add an epoch with project_progress first")
    return max(history["date"])


# -- checks and types ----------------------------------------------------------------------


def _as_date(value: object, source: str) -> date:
    if isinstance(value, datetime):  # pandas.Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InputError(source, f"{value!r} is not a date (YYYY-MM-DD)") from exc


def _working_crs(structures: gpd.GeoDataFrame) -> object:
    if structures.crs is None:
        raise InputError("structures", "have no CRS: areas cannot be measured (set_crs)")
    if not structures.crs.is_projected:
        raise InputError(
            "structures", f"are in {structures.crs.name}: give them in a projected CRS (metres)"
        )
    return structures.crs


def _checked_projects(projects: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    missing = [c for c in PROJECT_COLUMNS if c not in projects.columns]
    if missing:
        raise InputError("projects", f"missing column(s) {', '.join(missing)} (see read_projects)")
    if projects.crs is None:
        raise InputError("projects", "have no CRS: project polygons must say where they are")
    repeated = projects["project_id"][projects["project_id"].duplicated()].unique()
    if len(repeated):
        raise InputError("projects", f"project id(s) listed twice: {', '.join(map(str, repeated))}")
    if projects.geometry.name != "geometry":  # rows are read as named tuples
        projects = projects.rename_geometry("geometry")
    return projects


def _checked(table: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in HISTORY_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(source, f"not a project history: no column(s) {', '.join(missing)}")
    return table


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """``HISTORY_COLUMNS`` with one set of dtypes, whatever the source (so tables compare)."""
    out = pd.DataFrame(index=pd.RangeIndex(len(table)))
    for column in HISTORY_COLUMNS:
        if column == "date":
            out[column] = pd.Series([_as_date(d, "date") for d in table[column]], dtype=object)
        elif column in _FLOAT:
            out[column] = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        else:
            values = ["" if v is None or pd.isna(v) else str(v) for v in table[column]]
            out[column] = pd.Series(values, dtype=object)
    return out
