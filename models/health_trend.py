"""Per-parcel health over time: a history of index statistics by survey date, and the parcels
whose index fell between two epochs ("declining").

The history is a long table, one row per index, parcel and date (``HISTORY_COLUMNS``), built
from :func:`models.zonal.parcel_statistics` tables of epochs on one pixel grid. A drop is
measured on one statistic (the coverage-weighted mean by default), either as is or against
the median change of the *other* parcels of the same crop (or of all parcels), so a change
that every parcel shares (season, sun angle, exposure) is not taken for a decline.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from core.errors import InputError
from core.io import read_attribute_table, write_attribute_table

HISTORY_TABLE = "parcel_history"
VALUE_STATISTICS: tuple[str, ...] = ("mean", "median", "p10", "p90")
HISTORY_COLUMNS: tuple[str, ...] = (
    "index",
    "parcel_id",
    "date",
    "crop",
    "count",
    "valid_share",
    *VALUE_STATISTICS,
)
"""``count``: valid pixels covered (zonal's); ``valid_share``: their area over the parcel's."""
TREND_COLUMNS: tuple[str, ...] = (
    "parcel_id",
    "crop",
    "status",
    "date_before",
    "date_after",
    "value_before",
    "value_after",
    "change",
    "reference_change",
    "drop",
    "explanation",
)
DECLINING, NOT_DECLINING, NOT_COMPARABLE = "declining", "not declining", "not comparable"
NORMALISATIONS = ("none", "crop", "all", "crop-or-all")
DEFAULT_DROP = 0.10
"""Absolute drop of the index (its own units) beyond which a parcel is declining."""
MIN_VALID_SHARE = 0.8
"""Share of a parcel's area with valid pixels (no cloud, shadow, nodata) needed in both epochs."""
MIN_REFERENCE_PARCELS = 3
"""Other comparable parcels a normalised change needs to be measured against."""


def parcel_history(
    stats_by_epoch: Mapping[date, pd.DataFrame],
    parcels: gpd.GeoDataFrame,
    *,
    index: str = "ndvi",
    id_column: str = "parcel_id",
    crop_column: str = "land_use",
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``history`` (default: none yet) with the ``index`` statistics of every epoch added.

    ``stats_by_epoch`` maps a survey date to its ``parcel_statistics(...).table`` (columns
    ``<index>_<statistic>``). An epoch already in ``history`` for this index is replaced, so
    reruns never duplicate rows. ``parcels`` give each parcel's area (for ``valid_share``) and,
    when they have ``crop_column``, its crop. Sorted by index, parcel and date.
    """
    areas_m2, crops = _areas_and_crops(parcels, id_column, crop_column)
    added = {_as_date(day): table for day, table in stats_by_epoch.items()}
    new_rows = [
        _epoch_rows(day, table, index, id_column, areas_m2, crops) for day, table in added.items()
    ]
    kept = empty_history() if history is None else _checked(history, "history")
    replaced = kept["index"].eq(index) & kept["date"].isin(list(added))
    frames = [frame for frame in (kept[~replaced], *new_rows) if len(frame)]
    combined = pd.concat(frames, ignore_index=True) if frames else empty_history()
    return _typed(combined).sort_values(["index", "parcel_id", "date"], ignore_index=True)


def empty_history() -> pd.DataFrame:
    """A history with no rows yet."""
    return _typed(pd.DataFrame({column: [] for column in HISTORY_COLUMNS}))


def declining_parcels(
    history: pd.DataFrame,
    *,
    index: str | None = None,
    statistic: str = "mean",
    drop: float | None = None,
    relative: float | None = None,
    min_valid_share: float = MIN_VALID_SHARE,
    normalise: str = "none",
    min_reference_parcels: int = MIN_REFERENCE_PARCELS,
    before: date | None = None,
    after: date | None = None,
) -> pd.DataFrame:
    """One row per parcel (``TREND_COLUMNS``): "declining", "not declining" or "not comparable",
    with the two dates, values, change and a sentence saying why.

    Compares epoch ``after`` (default: the latest) with ``before`` (default: the one before
    it). A parcel declines when its ``statistic`` fell by more than ``drop`` index units
    (default ``DEFAULT_DROP``) or, with ``relative``, by more than that share of its earlier
    value. With ``normalise="crop"`` (or ``"all"``) the drop is counted beyond the median
    change of the other comparable parcels of its crop (or of all parcels), so a shift every
    parcel shares flags nothing (``"crop-or-all"``: by crop, or by all parcels where a crop
    has too few others); a decline shared by most of a crop's parcels then goes
    unflagged too (``"none"`` shows it). Parcels with less than ``min_valid_share`` of their
    area valid in either epoch, or too few others to normalise by, are "not comparable".
    """
    threshold, is_relative = _threshold(drop, relative)
    _check_choice("normalise", normalise, NORMALISATIONS)
    _check_choice("statistic", statistic, VALUE_STATISTICS)
    if not 0 <= min_valid_share <= 1:
        raise InputError("min_valid_share", f"must be within 0..1, got {min_valid_share}")
    rows = _rows_of_index(_checked(history, "history"), index)
    name = str(rows["index"].iloc[0]).upper()
    after, before = _epochs_compared(rows, before, after)
    if normalise == "crop" and rows["crop"].isna().all():
        raise InputError(
            "history",
            "no crop known for any parcel: build the history from parcels with a land-use "
            "column (crop_column) to normalise by crop",
        )
    pairs = _pairs(rows, before, after, statistic)
    reasons = _incomparable(pairs, before, after, min_valid_share, is_relative, name, statistic)
    if is_relative:
        change = pairs["value_after"] / pairs["value_before"] - 1.0
    else:
        change = pairs["value_after"] - pairs["value_before"]
    groups = _groups(pairs, normalise)
    if normalise == "crop":
        reasons[reasons.isna() & groups.isna()] = "no crop (land use) known to normalise by crop"
    reference, others = _reference_change(change.where(reasons.isna()), groups, normalise)
    if normalise == "crop-or-all":  # a crop with too few parcels is compared with all
        everyone = pd.Series("all", index=pairs.index, dtype=object)
        all_reference, all_others = _reference_change(change.where(reasons.isna()), everyone, "all")
        fall_back = groups.isna() | (others < min_reference_parcels)
        reference = reference.where(~fall_back, all_reference)
        others = others.where(~fall_back, all_others)
        groups = groups.where(~fall_back, "all")
    too_few = reasons.isna() & (others < min_reference_parcels) & (normalise != "none")
    reasons[too_few] = [
        f"only {n} other comparable {_others_label(group, normalise)} "
        f"(at least {min_reference_parcels} needed to normalise)"
        for n, group in zip(others[too_few], groups[too_few], strict=True)
    ]
    comparable = reasons.isna()
    pairs["change"] = change.where(comparable)
    pairs["reference_change"] = reference.where(comparable)
    pairs["drop"] = pairs["reference_change"] - pairs["change"]
    pairs["status"] = np.where(
        comparable, np.where(pairs["drop"] > threshold, DECLINING, NOT_DECLINING), NOT_COMPARABLE
    )
    pairs["explanation"] = [
        reason
        if isinstance(reason, str)
        else _explain(row, name, statistic, threshold, is_relative, normalise, group, n)
        for reason, row, group, n in zip(reasons, pairs.itertuples(), groups, others, strict=True)
    ]
    return pairs[list(TREND_COLUMNS)].sort_values("parcel_id", ignore_index=True)


def write_history(history: pd.DataFrame, gpkg_path: str | Path) -> Path:
    """Write ``history`` as the attribute table ``HISTORY_TABLE`` of a GeoPackage, atomically.

    Other layers of an existing file are kept (the file is copied, the table replaced in the
    copy, the copy renamed over the file); a new file is GeoPackage ``GPKG_VERSION``. Dates
    are a GeoPackage DATE column.
    """
    history = _typed(_checked(history, "history"))
    path = Path(gpkg_path)
    arrays = [
        history["date"].to_numpy(dtype="datetime64[D]")
        if column == "date"
        else history[column].to_numpy(dtype=float)
        if column in ("count", "valid_share", *VALUE_STATISTICS)
        else np.array([None if pd.isna(v) else v for v in history[column]], dtype=object)
        for column in HISTORY_COLUMNS
    ]
    return write_attribute_table(path, HISTORY_TABLE, HISTORY_COLUMNS, arrays)


def read_history(gpkg_path: str | Path) -> pd.DataFrame:
    """The history written by :func:`write_history`; empty when the file or table is not
    there yet (the first epoch of a workspace)."""
    frame = read_attribute_table(gpkg_path, HISTORY_TABLE)
    if frame is None:
        return empty_history()
    return _typed(_checked(frame, f"{gpkg_path} table {HISTORY_TABLE}"))


# -- building the history ----------------------------------------------------------------


def _as_date(day: date, source: str = "stats_by_epoch") -> date:
    if isinstance(day, datetime):  # pandas.Timestamp too
        return day.date()
    if not isinstance(day, date):
        raise InputError(source, f"expected a survey date, got {day!r}")
    return day


def _areas_and_crops(
    parcels: gpd.GeoDataFrame, id_column: str, crop_column: str
) -> tuple[pd.Series, pd.Series]:
    """Area (m², of the repaired polygon, as zonal measures it) and crop of each parcel id."""
    if id_column not in parcels.columns:
        raise InputError("parcels", f"no column {id_column!r}")
    if parcels.crs is None:
        raise InputError("parcels", "no CRS: their areas cannot be measured")
    if parcels.crs.is_geographic:
        parcels = parcels.to_crs(parcels.estimate_utm_crs())
    geometries = shapely.make_valid(
        np.asarray(parcels.geometry.array, dtype=object), method="structure", keep_collapsed=False
    )
    ids = parcels[id_column].astype(str).to_numpy()
    areas = pd.Series(shapely.area(geometries), index=ids, dtype=float)
    if crop_column in parcels.columns:
        crops = pd.Series(parcels[crop_column].to_numpy(), index=ids).astype("str")
    else:
        crops = pd.Series(np.nan, index=ids, dtype="str")
    return areas, crops


def _epoch_rows(
    day: date,
    table: pd.DataFrame,
    index: str,
    id_column: str,
    areas_m2: pd.Series,
    crops: pd.Series,
) -> pd.DataFrame:
    source = f"parcel statistics of {day}"
    needed = [f"{index}_{stat}" for stat in ("count", "area_m2", *VALUE_STATISTICS)]
    missing = [c for c in [id_column, *needed] if c not in table.columns]
    if missing:
        raise InputError(
            source,
            f"no column(s) {', '.join(missing)}: expected parcel_statistics of the {index} "
            f"raster (has {', '.join(map(str, table.columns))})",
        )
    ids = table[id_column].astype(str)
    repeated = ids[ids.duplicated()].unique()
    if len(repeated):
        raise InputError(source, f"parcel(s) listed twice: {', '.join(repeated)}")
    unknown = ids[~ids.isin(areas_m2.index)]
    if len(unknown):
        raise InputError(source, f"parcel(s) not among the parcels given: {', '.join(unknown)}")
    area_m2 = areas_m2[ids].to_numpy()
    valid_m2 = table[f"{index}_area_m2"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(area_m2 > 0, np.minimum(valid_m2 / area_m2, 1.0), np.nan)
    return pd.DataFrame(
        {
            "index": index,
            "parcel_id": ids.to_numpy(),
            "date": [day] * len(ids),
            "crop": crops[ids].to_numpy(),
            "count": table[f"{index}_count"].to_numpy(dtype=float),
            "valid_share": share,
            **{stat: table[f"{index}_{stat}"].to_numpy(dtype=float) for stat in VALUE_STATISTICS},
        }
    )


def _checked(history: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise InputError(source, f"not a parcel history: no column(s) {', '.join(missing)}")
    return history


def _typed(history: pd.DataFrame) -> pd.DataFrame:
    """``HISTORY_COLUMNS`` with one set of dtypes, whatever the source (so tables compare)."""
    out = pd.DataFrame(index=pd.RangeIndex(len(history)))
    for column in ("index", "parcel_id", "crop"):
        values = history[column].to_numpy(dtype=object)
        out[column] = pd.Series(values, dtype="str")
    out["date"] = pd.Series([_as_date(d) for d in history["date"]], dtype=object)
    for column in ("count", "valid_share", *VALUE_STATISTICS):
        out[column] = history[column].to_numpy(dtype=float)
    return out[list(HISTORY_COLUMNS)]


# -- comparing two epochs ------------------------------------------------------------------


def _threshold(drop: float | None, relative: float | None) -> tuple[float, bool]:
    if drop is not None and relative is not None:
        raise InputError("drop", "give an absolute drop or a relative one, not both")
    value, is_relative = (relative, True) if relative is not None else (drop, False)
    value = DEFAULT_DROP if value is None else value
    if not value > 0:
        raise InputError("relative" if is_relative else "drop", f"must be > 0, got {value}")
    return float(value), is_relative


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(name, f"must be one of {', '.join(choices)}, got {value!r}")


def _rows_of_index(history: pd.DataFrame, index: str | None) -> pd.DataFrame:
    known = sorted(history["index"].dropna().unique())
    if not known:
        raise InputError("history", "is empty: add epochs with parcel_history first")
    if index is None:
        if len(known) != 1:
            raise InputError(
                "history",
                f"holds several indices ({', '.join(known)}): say which one",
            )
        index = known[0]
    rows = history[history["index"] == index]
    if rows.empty:
        raise InputError("history", f"no {index} statistics (has: {', '.join(known)})")
    return rows


def _epochs_compared(
    rows: pd.DataFrame, before: date | None, after: date | None
) -> tuple[date, date | None]:
    dates = sorted(rows["date"].unique())
    before = None if before is None else _as_date(before, "before")
    after = None if after is None else _as_date(after, "after")
    for name, day in (("after", after), ("before", before)):
        if day is not None and day not in dates:
            listed = ", ".join(map(str, dates))
            raise InputError("history", f"no epoch on {day} ({name}); epochs: {listed}")
    after = dates[-1] if after is None else after
    if before is None:
        earlier = [d for d in dates if d < after]
        before = earlier[-1] if earlier else None
    elif before >= after:
        raise InputError("before", f"{before} is not earlier than {after}")
    return after, before


def _pairs(rows: pd.DataFrame, before: date | None, after: date, statistic: str) -> pd.DataFrame:
    """Per parcel in either epoch: crop, both dates, values, valid shares, and in which
    epochs it was surveyed (``surveyed``: "both", "before_only", "after_only")."""
    columns = ["parcel_id", "crop", statistic, "valid_share"]
    early = rows.loc[rows["date"] == before, columns]
    late = rows.loc[rows["date"] == after, columns]
    pairs = early.merge(
        late, on="parcel_id", how="outer", suffixes=("_before", "_after"), indicator="surveyed"
    )
    pairs["surveyed"] = pairs["surveyed"].map(
        {"both": "both", "left_only": "before_only", "right_only": "after_only"}
    )
    pairs["crop"] = pairs["crop_after"].fillna(pairs["crop_before"])
    pairs["date_before"] = pd.Series([before] * len(pairs), dtype=object)
    pairs["date_after"] = pd.Series([after] * len(pairs), dtype=object)
    return pairs.rename(
        columns={f"{statistic}_before": "value_before", f"{statistic}_after": "value_after"}
    )


def _incomparable(
    pairs: pd.DataFrame,
    before: date | None,
    after: date,
    min_valid_share: float,
    is_relative: bool,
    name: str,
    statistic: str,
) -> pd.Series:
    """Why each parcel cannot be compared (nan where it can): the first reason found."""
    reasons = pd.Series(np.nan, index=pairs.index, dtype=object)
    if before is None:
        reasons[:] = f"no survey before {after} to compare with"
        return reasons
    reasons[pairs["surveyed"] == "after_only"] = f"not surveyed on {before}"
    reasons[pairs["surveyed"] == "before_only"] = f"not surveyed on {after}"
    for when, day in (("before", before), ("after", after)):
        share = pairs[f"valid_share_{when}"]
        poor = reasons.isna() & ~((share >= min_valid_share) & pairs[f"value_{when}"].notna())
        reasons[poor] = [
            f"only {s:.0%} of the parcel had valid pixels on {day} "
            f"(at least {min_valid_share:.0%} needed)"
            for s in share[poor].fillna(0.0)
        ]
    if is_relative:
        negative = reasons.isna() & (pairs["value_before"] <= 0)
        reasons[negative] = [
            f"{name} {statistic} was {v:.2f} on {before}: a relative drop needs a positive value"
            for v in pairs.loc[negative, "value_before"]
        ]
    return reasons


def _groups(pairs: pd.DataFrame, normalise: str) -> pd.Series:
    """The reference group of each parcel: its crop, one group for all, or none."""
    if normalise in ("crop", "crop-or-all"):
        return pairs["crop"].astype(object)
    return pd.Series("all" if normalise == "all" else None, index=pairs.index, dtype=object)


def _reference_change(
    change: pd.Series, groups: pd.Series, normalise: str
) -> tuple[pd.Series, pd.Series]:
    """The median change of the other comparable parcels of each parcel's group (0 without
    normalisation), and how many there are."""
    if normalise == "none":
        return pd.Series(0.0, index=change.index), pd.Series(0, index=change.index)
    reference = pd.Series(np.nan, index=change.index)
    others = pd.Series(0, index=change.index)
    comparable = change.notna() & groups.notna()
    for _, members in change[comparable].groupby(groups[comparable]):
        reference[members.index] = _median_of_others(members.to_numpy())
        others[members.index] = len(members) - 1
    return reference, others


def _median_of_others(values: np.ndarray) -> np.ndarray:
    """For each value, the median of all the other values (nan when there are none)."""
    n = len(values)
    if n < 2:
        return np.full(n, np.nan)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    def kth_of_others(k: int) -> np.ndarray:
        # The others, sorted, are ``ordered`` without the value's own rank.
        return np.where(k < rank, ordered[k], ordered[k + 1])

    return 0.5 * (kth_of_others((n - 2) // 2) + kth_of_others((n - 1) // 2))


def _others_label(group: object, normalise: str) -> str:
    return f"{group} parcels" if normalise != "all" and group != "all" else "parcels"


def _explain(
    row: Any,
    name: str,
    statistic: str,
    threshold: float,
    is_relative: bool,
    normalise: str,
    group: object,
    others: int,
) -> str:
    """One sentence: the values and dates, the change, the reference, the verdict."""

    def amount(x: float) -> str:
        return f"{x:+.0%}" if is_relative else f"{x:+.2f}"

    limit = f"{threshold:.0%}" if is_relative else f"{threshold:.2f}"
    text = (
        f"{name} {statistic} went from {row.value_before:.2f} on {row.date_before} "
        f"to {row.value_after:.2f} on {row.date_after} ({amount(row.change)})"
    )
    if normalise == "none":
        drop = f"a drop of {amount(row.drop)[1:]}" if row.drop > 0 else "no drop"
    else:
        text += (
            f" while the {others} other {_others_label(group, normalise)} changed by "
            f"{amount(row.reference_change)} (median)"
        )
        beyond = f"{row.drop * 100:.0f} percentage points" if is_relative else f"{row.drop:.2f}"
        drop = f"{beyond} more than theirs" if row.drop > 0 else "no more than theirs"
    verdict = "above" if row.status == DECLINING else "within"
    return f"{text}: {drop}, {verdict} the {limit} allowed."
