"""The province report: one offline HTML page per epoch, built from its published GeoPackage.

Coverage map, mosaic preview, crop health per commune, construction flags with their evidence,
stalled projects and the accuracy of the models used. Nothing is recomputed: the report reads
the outputs the flows published, so an older epoch's report can be rebuilt at any time. Text
is escaped by Jinja2; images are files beside the page (``report_files/``, named by content,
the evidence chips where the flows wrote them): no CDN, no script, nothing fetched online.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import pyogrio

from core.errors import InputError
from core.io import atomic_path
from core.types import Accuracy
from gis.flags import REASON_STYLES
from gis.layer_styles import SEVERITY_CLASSES
from gis.report_images import coverage_map_png, mosaic_preview_jpeg

REPORT = "report.html"
REPORT_ASSETS = "report_files"
"""Folder beside the page with its maps and the chips copied from outside the epoch."""
ACCURACY_FILE = "accuracy.json"
"""Workspace file of the classifiers' measured accuracy (written by ``raqib demo``)."""
NO_COMMUNE = "(commune not recorded)"
LAYERS = (
    "mission", "images", "skipped_images", "crop_health_parcels", "parcel_trend",
    "buildings", "new_buildings", "flagged_parcels", "projects", "record_problems",
)  # fmt: skip
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class EpochOutputs:
    """Where one epoch's published outputs are: its folder, GeoPackage and mosaic."""

    epoch: str
    captured_on: date
    folder: Path
    geopackage: Path
    mosaic: Path | None


@dataclass(frozen=True)
class MeasuredAccuracy:
    """Scores of the classifiers on held-out truth, and what they were measured on."""

    scores: tuple[Accuracy, ...]
    measured_on: str
    measured_at: date


def write_accuracy(path: Path, accuracy: MeasuredAccuracy) -> Path:
    """Write ``accuracy`` as JSON, atomically."""
    payload = {
        "measured_on": accuracy.measured_on,
        "measured_at": accuracy.measured_at.isoformat(),
        "scores": [asdict(score) for score in accuracy.scores],
    }
    with atomic_path(path) as scratch:
        scratch.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return path


def read_accuracy(path: Path) -> MeasuredAccuracy | None:
    """The accuracy written by :func:`write_accuracy` (None when there is no file)."""
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return MeasuredAccuracy(
            scores=tuple(Accuracy(**score) for score in payload["scores"]),
            measured_on=str(payload["measured_on"]),
            measured_at=date.fromisoformat(payload["measured_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not an accuracy file written by Raqib ({exc})") from exc


def read_layers(geopackage: Path) -> dict[str, pd.DataFrame]:
    """The report's layers among those published in ``geopackage`` (absent ones left out)."""
    if not geopackage.is_file():
        raise InputError(geopackage, "no published GeoPackage: process the epoch first")
    present = {str(name) for name in pyogrio.list_layers(geopackage)[:, 0]}
    return {
        name: pyogrio.read_dataframe(geopackage, layer=name) for name in LAYERS if name in present
    }


HEALTH_SHARES = ("healthy", "stressed", "bare")
"""Health classes whose share of the classified area the report gives per commune."""


def commune_health(health: gpd.GeoDataFrame, trend: pd.DataFrame | None) -> pd.DataFrame:
    """Per commune: parcels, area (ha), healthy / stressed / bare share of the classified
    area (%), and the parcels declining since the previous epoch; the last row, all of them."""
    if health.crs is not None and health.crs.is_geographic:
        health = health.to_crs(health.estimate_utm_crs())
    classified = _numbers(health, "classified_m2")
    frame = pd.DataFrame(
        {
            "commune": _communes(health),
            "parcel_id": health["parcel_id"].astype(str).to_numpy(),
            "area_m2": health.geometry.area.to_numpy(),
            "classified_m2": classified,
            **{f"{c}_m2": classified * _numbers(health, f"{c}_pct") / 100 for c in HEALTH_SHARES},
        }
    )
    declining = set()
    if trend is not None and {"status", "parcel_id"} <= set(trend.columns):
        declining = set(trend.loc[trend["status"] == "declining", "parcel_id"].astype(str))
    frame["declining"] = frame["parcel_id"].isin(declining)
    rows = [_health_row(name, group) for name, group in frame.groupby("commune", sort=True)]
    rows.append(_health_row("All communes", frame))
    return pd.DataFrame(rows)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _communes(frame: pd.DataFrame) -> np.ndarray:
    if "commune" not in frame:
        return np.full(len(frame), NO_COMMUNE, dtype=object)
    names = frame["commune"].fillna("").astype(str).str.strip()
    return names.where(names != "", NO_COMMUNE).to_numpy(dtype=object)


def _health_row(commune: str, group: pd.DataFrame) -> dict[str, object]:
    classified = group["classified_m2"].sum(min_count=1)
    shares = {
        f"{c}_pct": 100 * group[f"{c}_m2"].sum(min_count=1) / classified
        if classified and np.isfinite(classified)
        else math.nan
        for c in HEALTH_SHARES
    }
    return {
        "commune": commune,
        "parcels": len(group),
        "area_ha": group["area_m2"].sum() / 10_000,
        **shares,
        "declining": int(group["declining"].sum()),
        "declining_ids": ", ".join(sorted(group.loc[group["declining"], "parcel_id"])),
    }


def severity_class(severity: float) -> tuple[str, str]:
    """The class of a flag's severity and its RGB colour, as the QGIS style draws it."""
    name, rgb = SEVERITY_CLASSES[0][2:]
    for lower, _upper, name_above, rgb_above in SEVERITY_CLASSES:
        if severity >= lower:
            name, rgb = name_above, rgb_above
    return name, rgb


def ink_on(rgb: str) -> str:
    """Black or white, whichever reads better on the ``"R,G,B"`` background."""
    red, green, blue = (int(part) for part in rgb.split(","))
    return "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#fff"


def safe_url(value: object) -> str | None:
    """``value`` when it is an http(s) URL (a record link), else None: a record system's
    ``javascript:`` or relative link never becomes a clickable link in the report."""
    text = _text(value)
    return text if text.lower().startswith(("https://", "http://")) else None


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


class ReportAssets:
    """Files the page shows, as paths relative to it; files outside the epoch's folder are
    copied into ``report_files`` under a content-hash name (a rerun writes the same names)."""

    def __init__(self, epoch_folder: Path) -> None:
        self.folder = epoch_folder
        self.assets = epoch_folder / REPORT_ASSETS
        self.kept: set[Path] = set()

    def store(self, stem: str, suffix: str, data: bytes) -> str:
        name = f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"
        target = self.assets / name
        if not target.exists():
            with atomic_path(target) as scratch:
                scratch.write_bytes(data)
        self.kept.add(target)
        return f"{REPORT_ASSETS}/{name}"

    def link(self, path_text: object, fallback_dir: str) -> str | None:
        """A chip the flows wrote, relative to the page; None when the file is gone."""
        path = Path(_text(path_text))
        if not path.name:
            return None
        for candidate in (path, self.folder / fallback_dir / path.name):
            if not candidate.is_file():
                continue
            found, folder = candidate.resolve(), self.folder.resolve()
            if found.is_relative_to(folder):
                return found.relative_to(folder).as_posix()
            stem = f"{candidate.parent.name}-{candidate.stem}"  # e.g. PRJ-001-2026-07-10
            return self.store(stem, candidate.suffix, candidate.read_bytes())
        return None

    def remove_stale(self) -> None:
        """Delete the assets an earlier build wrote that this page no longer shows."""
        for old in self.assets.glob("*") if self.assets.is_dir() else ():
            if old.is_file() and old not in self.kept:
                old.unlink()


def flag_rows(flagged: pd.DataFrame, assets: ReportAssets) -> list[dict[str, object]]:
    """The construction flags, most severe first, as the report's table rows."""
    rows = []
    for flag in flagged.sort_values("severity", ascending=False, kind="stable").itertuples():
        reason = _text(flag.reason)
        severity = float(flag.severity)
        severity_name, severity_rgb = severity_class(severity)
        rows.append(
            {
                "severity": severity,
                "severity_class": severity_name,
                "severity_rgb": severity_rgb,
                "severity_ink": ink_on(severity_rgb),
                "reason": REASON_STYLES.get(reason, (reason,))[0],
                "parcel_id": _text(flag.parcel_id) or "outside every parcel",
                "commune": _text(getattr(flag, "commune", "")),
                "explanation": _text(flag.explanation),
                "permit_id": _text(getattr(flag, "permit_id", "")),
                "record_url": _text(getattr(flag, "record_url", "")),
                "record_link": safe_url(getattr(flag, "record_url", None)),
                "status": _text(getattr(flag, "status", "")) or "new",
                "evidence": assets.link(getattr(flag, "evidence", None), "evidence"),
            }
        )
    return rows


def project_rows(projects: pd.DataFrame, assets: ReportAssets) -> list[dict[str, object]]:
    """The stalled public projects as the report's table rows, with their latest photo."""
    stalled = projects[projects["status"] == "stalled"] if "status" in projects else projects[:0]
    return [
        {
            "project_id": _text(project.project_id),
            "name": _text(getattr(project, "name", "")),
            "progress": _percent(getattr(project, "progress", None)),
            "expected": _percent(getattr(project, "expected_progress", None)),
            "stalled_since": _text(getattr(project, "stalled_since", "")),
            "reasons": _text(getattr(project, "reasons", "")).replace(";", ", "),
            "explanation": _text(getattr(project, "explanation", "")),
            "record_url": _text(getattr(project, "record_url", "")),
            "record_link": safe_url(getattr(project, "record_url", None)),
            "photo": assets.link(
                _text(getattr(project, "chip_pair", "")) or getattr(project, "chip_after", None),
                "evidence",
            ),
        }
        for project in stalled.itertuples()
    ]


def _percent(value: object) -> str:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return "—" if pd.isna(number) else f"{100 * float(number):.0f} %"


def declining_rows(trend: pd.DataFrame | None, communes: dict[str, str]) -> list[dict[str, str]]:
    """Each declining parcel with its commune and the trend's explanation."""
    if trend is None or "status" not in trend:
        return []
    declining = trend[trend["status"] == "declining"]
    return [
        {
            "parcel_id": _text(row.parcel_id),
            "commune": communes.get(_text(row.parcel_id), NO_COMMUNE),
            "explanation": _text(getattr(row, "explanation", "")),
        }
        for row in declining.itertuples()
    ]


def models_used(layers: dict[str, pd.DataFrame]) -> list[dict[str, str]]:
    """Which classifier produced each kind of output in this epoch, as recorded in it."""
    used = []
    health = layers.get("crop_health_parcels")
    if health is not None and "health_model" in health:
        names = sorted({_text(name) for name in health["health_model"] if _text(name)})
        used.append({"output": "crop health classes", "model": "; ".join(names)})
    elif health is not None:
        used.append({"output": "crop health", "model": "vegetation index statistics only"})
    buildings = layers.get("buildings")
    if buildings is not None:
        files = sorted(set(buildings.get("building_model", pd.Series(dtype=str)).dropna()))
        model = ", ".join(files) if files else "the workspace's building classifier"
        used.append({"output": "buildings, new structures", "model": model})
    return used


def write_report(
    outputs: EpochOutputs, *, accuracy: MeasuredAccuracy | None = None, province: str = "Berkane"
) -> Path:
    """Write ``<epoch folder>/report.html`` (and its images) from the epoch's published
    outputs; ``accuracy`` is what was measured of the models (None: "not measured")."""
    layers = read_layers(outputs.geopackage)
    assets = ReportAssets(outputs.folder)
    health = layers.get("crop_health_parcels")
    trend = layers.get("parcel_trend")
    flagged = layers.get("flagged_parcels", pd.DataFrame(columns=["severity", "reason"]))
    projects = layers.get("projects", pd.DataFrame(columns=["status"]))
    communes = (
        dict(zip(health["parcel_id"].astype(str), _communes(health), strict=True))
        if health is not None
        else {}
    )
    flags = flag_rows(flagged, assets)
    page = _TEMPLATES.get_template("report.html").render(
        province=province,
        epoch=outputs.epoch,
        captured_on=outputs.captured_on.isoformat(),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        counts={name: len(frame) for name, frame in layers.items()},
        coverage_map=assets.store("coverage", ".png", coverage_map_png(layers)),
        mosaic_preview=(
            assets.store("mosaic", ".jpg", mosaic_preview_jpeg(outputs.mosaic))
            if outputs.mosaic is not None and outputs.mosaic.is_file()
            else None
        ),
        health=(commune_health(health, trend).to_dict("records") if health is not None else []),
        declining=declining_rows(trend, communes),
        flags=flags,
        severity_counts=[
            (name, rgb, ink_on(rgb), sum(f["severity_class"] == name for f in flags))
            for *_, name, rgb in reversed(SEVERITY_CLASSES)
        ],
        stalled=project_rows(projects, assets),
        project_status=projects["status"].value_counts().sort_index().to_dict(),
        models=models_used(layers),
        accuracy=accuracy,
    )
    target = outputs.folder / REPORT
    with atomic_path(target) as scratch:
        scratch.write_text(page, encoding="utf-8")
    assets.remove_stale()
    return target
