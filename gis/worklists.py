"""Inspector work lists: per commune, the open flags by severity (highest first) with their
evidence chips and record links, as a GeoPackage layer, a CSV an inspector can fill in and
send back (``gis.feedback.read_feedback`` reads it), and an offline HTML page with a static map.

The HTML pages load nothing from the network: the map and the chips are files beside them
(relative links), the only external URLs are the permit / parcel record links.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

import geopandas as gpd
import pandas as pd
from jinja2 import Environment, FileSystemLoader
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from core.io import atomic_path, disk_full_named
from core.spreadsheet import csv_safe
from gis.flags import REASON_STYLES

WORK_LIST_LAYER = "work_list"
OPEN_STATUSES = frozenset({"new", "confirmed"})
"""Flags an inspector still acts on; false positives and regularised ones are closed."""
UNASSIGNED = "unassigned"
"""Commune of a flag that names none and has no parcel near it."""
WORK_LIST_COLUMNS = (
    "commune", "rank", "flag_id", "status", "severity", "reason", "parcel_id", "permit_id",
    "explanation", "record_url", "evidence", "captured_on", "inspector_note",
)  # fmt: skip
CSV_COLUMNS = (
    "rank", "flag_id", "status", "note", "severity", "reason", "parcel_id", "permit_id",
    "explanation", "record_url", "evidence", "captured_on", "commune",
)  # fmt: skip
"""``flag_id``, ``status`` and ``note`` first: the sheet doubles as a feedback CSV."""
MAP_WIDTH_IN = 8.0
MAP_DPI = 100
MAP_MARGIN_M = 40.0
"""Smallest ground shown around the flagged parcels on the map, each side."""
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    keep_trailing_newline=True,
)

Refer = Callable[[str], str]
"""How a page or sheet refers to an evidence file (a relative path, a ``cid:``...)."""


@dataclass(frozen=True)
class CommuneWorkList:
    """The files of one commune's work list."""

    commune: str
    flags: int
    csv: Path
    html: Path
    map_png: Path


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name not in frame:
        return pd.Series(default, index=frame.index, dtype=object)
    return frame[name].where(frame[name].notna(), default)


def _communes(flags: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame | None) -> pd.Series:
    """Each flag's commune; a flag without one (off cadastre) takes the nearest parcel's."""
    commune = _column(flags, "commune", "").astype(str).str.strip()
    missing = commune == ""
    if missing.any() and parcels is not None and not parcels.empty:
        nearest = gpd.sjoin_nearest(
            flags.loc[missing, ["geometry"]], parcels[["commune", "geometry"]].to_crs(flags.crs)
        )
        nearest = nearest[~nearest.index.duplicated()]
        commune[missing] = nearest["commune"].astype(str).str.strip()
    return commune.where(commune != "", UNASSIGNED)


def work_list(
    flagged: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame | None = None
) -> gpd.GeoDataFrame:
    """The open flags of ``flagged`` (the ``flagged_parcels`` layer; status new or
    confirmed) by commune, highest severity first, ``rank`` 1, 2... within each commune.
    Flags on no parcel go to the commune of the nearest of ``parcels`` (when given)."""
    flags = flagged[_column(flagged, "status", "new").isin(OPEN_STATUSES)]
    flags = flags.assign(
        commune=_communes(flags, parcels),
        status=_column(flags, "status", "new"),
        evidence=_column(flags, "evidence", ""),
        inspector_note=_column(flags, "inspector_note", ""),
    )
    flags = flags.sort_values(
        ["commune", "severity", "flag_id"], ascending=[True, False, True], kind="stable"
    )
    flags["rank"] = flags.groupby("commune").cumcount().astype(int) + 1
    columns = [*WORK_LIST_COLUMNS, flags.geometry.name]
    return flags[columns].reset_index(drop=True)


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def _cell(value: object) -> object:
    """A CSV cell: numbers as they are, text (dates as ISO) formula-safe."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not pd.isna(value):
        return value
    return csv_safe(_text(value))


def work_list_csv(flags: pd.DataFrame, refer: Refer = str) -> bytes:
    """``flags`` (rows of a work list) as a UTF-8 CSV with BOM (Excel then shows Arabic),
    text a spreadsheet would run as a formula quoted; evidence files as ``refer`` says."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in flags.to_dict("records"):
        evidence = _text(row.get("evidence"))
        row |= {"note": row.get("inspector_note"), "evidence": refer(evidence) if evidence else ""}
        writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")


def _link(url: str) -> str:
    """``url`` when it is a web address a browser may open, else empty (shown as text)."""
    return url if urlsplit(url).scheme in ("http", "https") else ""


def _rows(flags: pd.DataFrame, refer: Refer) -> list[dict[str, object]]:
    rows = []
    for row in flags.to_dict("records"):
        evidence, url = _text(row.get("evidence")), _text(row.get("record_url"))
        rows.append(
            {
                "rank": int(row["rank"]),
                "severity": float(row["severity"]),
                "reason_label": REASON_STYLES.get(row["reason"], (row["reason"], ""))[0],
                "parcel_id": _text(row.get("parcel_id")),
                "explanation": _text(row.get("explanation")),
                "permit_id": _text(row.get("permit_id")),
                "record_url": url,
                "record_link": _link(url),
                "evidence_src": refer(evidence) if evidence else "",
                "status": _text(row.get("status")),
                "flag_id": _text(row.get("flag_id")),
            }
        )
    return rows


def work_list_html(
    flags: pd.DataFrame,
    *,
    commune: str,
    title: str,
    map_src: str = "",
    refer: Refer = str,
    csv_href: str = "",
) -> str:
    """One commune's work list as an HTML page (every value escaped): the map ``map_src``,
    then a table of ``flags`` with record links and evidence images (``refer``)."""
    return _TEMPLATES.get_template("work_list.html.j2").render(
        title=title,
        commune=commune,
        flags=_rows(flags, refer),
        map_src=map_src,
        csv_href=csv_href,
    )


def work_list_title(commune: str, flags: pd.DataFrame) -> str:
    days = sorted({_text(d) for d in _column(flags, "captured_on", "")} - {""})
    return f"Raqib work list: {commune}" + (f", flights of {', '.join(days)}" if days else "")


def _rgb(text: str) -> tuple[float, float, float]:
    red, green, blue = (int(c) / 255 for c in text.split(","))
    return red, green, blue


def _scale_m(width_m: float) -> float:
    """A round scale-bar length near a fifth of the map width."""
    target = width_m / 5
    magnitude = 10 ** int(f"{target:e}".split("e")[1])
    return max(m * magnitude for m in (1, 2, 5) if m * magnitude <= target) if target >= 1 else 1


def write_map(flags: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame | None, path: Path) -> Path:
    """A PNG map of ``flags`` (work-list rows) coloured by reason and labelled with their
    rank, over the outlines of the ``parcels`` around them, with a legend and a scale bar."""
    minx, miny, maxx, maxy = flags.total_bounds
    margin = max(MAP_MARGIN_M, 0.1 * max(maxx - minx, maxy - miny))
    minx, miny, maxx, maxy = minx - margin, miny - margin, maxx + margin, maxy + margin
    aspect = min(1.5, max(0.5, (maxy - miny) / (maxx - minx)))
    figure = Figure(figsize=(MAP_WIDTH_IN, MAP_WIDTH_IN * aspect), dpi=MAP_DPI)
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    if parcels is not None and not parcels.empty:
        around = parcels.to_crs(flags.crs).cx[minx:maxx, miny:maxy]
        if not around.empty:
            around.plot(ax=ax, facecolor="#f4f4f4", edgecolor="#9a9a9a", linewidth=0.6)
    legend = []
    for reason, group in flags.groupby("reason", sort=True):
        label, rgb = REASON_STYLES.get(str(reason), (str(reason), "200,0,0"))
        colour = _rgb(rgb)
        group.plot(ax=ax, facecolor=(*colour, 0.35), edgecolor=colour, linewidth=2)
        legend.append(Patch(facecolor=(*colour, 0.35), edgecolor=colour, label=label))
    for _, same_place in flags.groupby(flags.geometry.to_wkb(), sort=False):
        point = same_place.geometry.iloc[0].representative_point()
        ax.annotate(
            ", ".join(str(r) for r in sorted(same_place["rank"])),
            (point.x, point.y),
            ha="center",
            va="center",
            fontsize=9,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "black", "lw": 0.8},
        )
    bar_m = _scale_m(maxx - minx)
    x0, y0 = minx + 0.04 * (maxx - minx), miny + 0.04 * (maxy - miny)
    ax.plot([x0, x0 + bar_m], [y0, y0], color="black", linewidth=3)
    ax.annotate(f"{bar_m:g} m", (x0 + bar_m / 2, y0), xytext=(0, 4),
                textcoords="offset points", ha="center", fontsize=8)  # fmt: skip
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3,
              fontsize=8, frameon=False)  # fmt: skip
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    ax.set_aspect("equal")
    ax.set_axis_off()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.05)
    return Path(path)


def file_stem(commune: str, taken: set[str]) -> str:
    """A file name for ``commune`` (letters of any script kept), unique among ``taken``."""
    stem = re.sub(r"[^\w-]+", "_", commune).strip("_") or UNASSIGNED
    unique, n = stem, 2
    while unique.lower() in taken:
        unique, n = f"{stem}_{n}", n + 1
    taken.add(unique.lower())
    return unique


def _relative_to(folder: Path) -> Refer:
    def refer(path: str) -> str:
        return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()

    return refer


def write_work_lists(
    work: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame | None, folder: Path
) -> dict[str, CommuneWorkList]:
    """Write each commune's work list of ``work`` (from :func:`work_list`) into ``folder``:
    ``<commune>.csv``, ``<commune>.html`` and its map ``<commune>.png``. The folder is
    built aside and swapped in whole, so a rerun leaves no list of an earlier run, and a
    full disk (:class:`core.errors.DiskFullError`) leaves the earlier lists as they were."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    refer = _relative_to(folder)
    lists: dict[str, CommuneWorkList] = {}
    taken: set[str] = set()
    try:
        for commune, flags in work.groupby("commune", sort=True):
            commune, stem = str(commune), file_stem(str(commune), taken)
            with disk_full_named(folder, staging / ".room-probe"):
                write_map(flags, parcels, staging / f"{stem}.png")
                (staging / f"{stem}.csv").write_bytes(work_list_csv(flags, refer))
                page = work_list_html(
                    flags,
                    commune=commune,
                    title=work_list_title(commune, flags),
                    map_src=quote(f"{stem}.png"),
                    refer=lambda path: quote(refer(path)),
                    csv_href=quote(f"{stem}.csv"),
                )
                (staging / f"{stem}.html").write_text(page, encoding="utf-8")
            files = (folder / f"{stem}.csv", folder / f"{stem}.html", folder / f"{stem}.png")
            lists[commune] = CommuneWorkList(commune, len(flags), *files)
        staging.chmod(0o755)
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lists


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the ``staging`` folder in place of ``folder`` (removing the old one)."""
    old = staging.with_name(staging.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)
