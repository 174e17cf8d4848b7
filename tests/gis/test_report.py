"""The province report: an offline HTML page per epoch, from its published GeoPackage."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from shapely.geometry import LineString, box

import flows
from core.errors import InputError
from core.types import Accuracy
from gis.publish import publish_geopackage
from gis.report import (
    REPORT,
    REPORT_ASSETS,
    EpochOutputs,
    MeasuredAccuracy,
    commune_health,
    read_accuracy,
    safe_url,
    write_accuracy,
    write_report,
)

REPO = Path(__file__).resolve().parents[2]
UTM = "EPSG:32630"
X0, Y0 = 563_000.0, 3_865_000.0
ARABIC_COMMUNE = "بركان"
HOSTILE = "<script>alert('x')</script> & co"


def _parcel(i: int) -> box:
    return box(X0 + 50 * i, Y0, X0 + 50 * i + 40, Y0 + 40)


def _chip(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 32), colour).save(path)
    return path


def _mosaic(path: Path) -> Path:
    """A 512 px RGB COG with overviews and a no-data corner."""
    rgb = np.zeros((3, 512, 512), dtype=np.uint8)
    rgb[1] = np.linspace(40, 200, 512, dtype=np.uint8)[None, :]
    rgb[:, :64, :64] = 0
    profile = {
        "driver": "COG", "width": 512, "height": 512, "count": 3, "dtype": "uint8",
        "crs": UTM, "transform": from_origin(X0, Y0 + 60, 0.4, 0.4), "nodata": 0,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb)
    return path


def _epoch(workspace: Path, name: str, day: date, *, flags: bool = True) -> EpochOutputs:
    """A published epoch as the flows leave it: GeoPackage, mosaic COG, evidence chips, a
    project photo in the workspace archive, and its manifest entry."""
    folder = workspace / name
    health = gpd.GeoDataFrame(
        {
            "parcel_id": ["P1", "P2", "P3", "P4"],
            "commune": ["Madagh", "Madagh", ARABIC_COMMUNE, ""],
            "healthy_pct": [100.0, 50.0, 20.0, 80.0],
            "stressed_pct": [0.0, 50.0, 30.0, 20.0],
            "bare_pct": [0.0, 0.0, 50.0, 0.0],
            "classified_m2": [1000.0, 3000.0, 1000.0, 500.0],
            "health_model": ["trained on a synthetic world"] * 4,
        },
        geometry=[_parcel(i) for i in range(4)],
        crs=UTM,
    )
    trend = health[["parcel_id", "geometry"]].assign(
        status=["stable", "declining", "declining", "stable"],
        explanation=["", "GLI fell by 0.12 while its peers rose", "", ""],
    )
    evidence = _chip(folder / "evidence" / "P2_no_permit.png", (200, 0, 0))
    flagged = gpd.GeoDataFrame(
        {
            "parcel_id": ["P1", "P2", None],
            "commune": ["Madagh", "Madagh", ""],
            "reason": ["over_footprint", "no_permit", "off_cadastre"],
            "severity": [0.35, 0.81, 0.6],
            "explanation": ["Built 30 m² beyond the permit", HOSTILE, "On no parcel"],
            "permit_id": ['=HYPERLINK("http://evil")', None, None],
            "record_url": ["https://rokhas.example/permits/PC-1", "javascript:alert(1)", None],
            "evidence": [None, str(evidence), str(folder / "evidence" / "gone.png")],
        },
        geometry=[_parcel(0), _parcel(1), box(X0 - 30, Y0, X0 - 10, Y0 + 20)],
        crs=UTM,
    )
    chip = _chip(workspace / "project_archive" / "PRJ-1" / f"{day}.png", (0, 0, 200))
    projects = gpd.GeoDataFrame(
        {
            "project_id": ["PRJ-1", "PRJ-2"],
            "name": ["Ecole Madagh", "Route"],
            "status": ["stalled", "on track"],
            "reasons": ["no_progress;behind_schedule", ""],
            "explanation": ["no measurable progress for 120 days", ""],
            "progress": [0.2, 0.5],
            "expected_progress": [0.6, 0.5],
            "record_url": ["https://projets.example/PRJ-1", "https://projets.example/PRJ-2"],
            "chip_pair": [str(chip), None],
        },
        geometry=[_parcel(5), _parcel(6)],
        crs=UTM,
    )
    images = gpd.GeoDataFrame(
        {"file": ["a.JPG", "b.JPG"]},
        geometry=[
            box(X0 - 40, Y0 - 20, X0 + 120, Y0 + 60),
            box(X0 + 80, Y0 - 20, X0 + 260, Y0 + 60),
        ],
        crs=UTM,
    )
    layers = {
        "mission": gpd.GeoDataFrame(
            {"name": ["m"]}, geometry=[LineString([(X0, Y0), (X0 + 200, Y0 + 40)])], crs=UTM
        ),
        "images": images,
        "crop_health_parcels": health,
        "parcel_trend": trend,
        "buildings": flagged[["geometry"]],
        "new_buildings": flagged[["geometry"]].assign(change="new")[: 3 if flags else 0],
        "flagged_parcels": flagged if flags else flagged[:0],
        "projects": projects,
        "skipped_images": pd.DataFrame({"path": ["c.JPG"], "reason": ["no GPS"]}),
    }
    geopackage = publish_geopackage(folder / "raqib.gpkg", layers)
    mosaic = _mosaic(folder / "mosaic.tif")
    flows.record_epoch(workspace, name, day, geopackage, mosaic)
    return EpochOutputs(name, day, folder, geopackage, mosaic)


class _Page(HTMLParser):
    """Table rows (cell texts) by section id, image sources and link targets of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.sections: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.sections[values.get("id") or ""] = []
        elif tag == "tr":
            self.rows.append([])
            if self.sections:
                self.sections[list(self.sections)[-1]].append(self.rows[-1])
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
        elif tag == "img":
            self.images.append(values["src"] or "")
        elif tag == "a":
            self.links.append(values["href"] or "")

    def handle_data(self, data: str) -> None:
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data.strip()


def _report(tmp_path: Path, **options: object) -> tuple[Path, _Page]:
    path = write_report(_epoch(tmp_path, "2026-07-10", date(2026, 7, 10)), **options)
    return path, _Page(path.read_text(encoding="utf-8"))


def test_crop_health_is_summed_per_commune_by_classified_area(tmp_path: Path) -> None:
    outputs = _epoch(tmp_path, "e", date(2026, 7, 10))
    health = gpd.read_file(outputs.geopackage, layer="crop_health_parcels")
    trend = gpd.read_file(outputs.geopackage, layer="parcel_trend")
    summary = commune_health(health, trend).set_index("commune")
    madagh = summary.loc["Madagh"]
    assert madagh["parcels"] == 2
    assert madagh["area_ha"] == pytest.approx(2 * 1600 / 10_000)
    assert madagh["stressed_pct"] == pytest.approx(100 * 1500 / 4000)  # 0 of 1000 + 1500 of 3000
    assert madagh["healthy_pct"] == pytest.approx(100 * 2500 / 4000)
    assert (madagh["declining"], madagh["declining_ids"]) == (1, "P2")
    assert summary.loc[ARABIC_COMMUNE, "bare_pct"] == pytest.approx(50.0)
    assert summary.loc["(commune not recorded)", "parcels"] == 1
    assert summary.loc["All communes", "parcels"] == 4
    assert summary.loc["All communes", "declining"] == 2


def test_the_report_lists_communes_and_flags_most_severe_first(tmp_path: Path) -> None:
    path, page = _report(tmp_path)
    assert path == tmp_path / "2026-07-10" / REPORT
    communes = [row[0] for row in page.sections["health"] if len(row) == 8][1:]
    assert communes == ["(commune not recorded)", "Madagh", ARABIC_COMMUNE, "All communes"]
    assert ["P2", "Madagh", "GLI fell by 0.12 while its peers rose"] in page.sections["health"]
    flags = page.sections["flags"][1:]
    assert [row[0] for row in flags] == ["0.81 critical", "0.60 high", "0.35 medium"]
    assert [row[2] for row in flags] == ["P2", "outside every parcel", "P1"]
    assert "https://rokhas.example/permits/PC-1" in page.links
    stalled = page.sections["projects"][1:]
    assert [row[:4] for row in stalled] == [["PRJ-1", "Ecole Madagh", "20 %", "60 %"]]
    assert stalled[0][5] == "no_progress, behind_schedule"


def test_record_text_is_escaped_and_only_web_links_are_clickable(tmp_path: Path) -> None:
    path, page = _report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in text
    assert any(HOSTILE in row for row in page.rows), "shown as text, not run"
    assert not [link for link in page.links if "javascript" in link]
    assert "javascript:alert(1)" in text, "the bad link is shown as text"
    assert safe_url(" https://x.example/a") is None and safe_url(None) is None


def test_every_image_is_a_local_file_beside_the_report(tmp_path: Path) -> None:
    path, page = _report(tmp_path)
    folder = path.parent
    assert len(page.images) == 4  # coverage map, mosaic preview, one evidence chip, one photo
    for source in page.images:
        assert not source.startswith(("http:", "https:", "/", "file:")), source
        assert (folder / source).is_file(), source
    assert "evidence/P2_no_permit.png" in page.images
    copied = [s for s in page.images if s.startswith(f"{REPORT_ASSETS}/PRJ-1")]
    assert copied, "a chip outside the epoch folder is copied beside the report"
    preview = next(s for s in page.images if s.startswith(f"{REPORT_ASSETS}/mosaic"))
    with Image.open(folder / preview) as image:
        assert max(image.size) <= 1200
        assert image.getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=8), "no data: white"
    assert "no chip" in path.read_text(encoding="utf-8"), "a missing chip is said, not broken"


def test_a_rebuild_keeps_only_the_images_it_shows(tmp_path: Path) -> None:
    outputs = _epoch(tmp_path, "e", date(2026, 7, 10))
    write_report(outputs)
    stale = outputs.folder / REPORT_ASSETS / "coverage-000000000000.png"
    stale.write_bytes(b"old")
    first = sorted(p.name for p in (outputs.folder / REPORT_ASSETS).iterdir())
    write_report(outputs)
    assert sorted(p.name for p in (outputs.folder / REPORT_ASSETS).iterdir()) == [
        name for name in first if name != stale.name
    ]


def test_accuracy_is_shown_when_measured_and_said_not_measured_otherwise(tmp_path: Path) -> None:
    path, _ = _report(tmp_path)
    assert "Not measured." in path.read_text(encoding="utf-8")
    measured = MeasuredAccuracy(
        (
            Accuracy("buildings", 0.46, 0.84, 0.59, 25),
            Accuracy("health:bare", 0.99, 0.97, 0.98, 106_681, kappa=0.93),
        ),
        measured_on="epoch2 against the world's truth",
        measured_at=date(2026, 11, 26),
    )
    stored = read_accuracy(write_accuracy(tmp_path / "accuracy.json", measured))
    assert stored == measured
    page = _Page(
        write_report(_epoch(tmp_path, "e2", date(2026, 7, 10)), accuracy=stored).read_text()
    )
    assert ["health:bare", "0.99", "0.97", "0.98", "0.93", "106,681"] in page.rows
    assert ["buildings", "0.46", "0.84", "0.59", "—", "25"] in page.rows
    assert ["crop health classes", "trained on a synthetic world"] in page.rows


def test_a_damaged_accuracy_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "accuracy.json").write_text('{"scores": [{"nom": 1}]}')
    with pytest.raises(InputError, match="accuracy.json: not an accuracy file"):
        read_accuracy(tmp_path / "accuracy.json")


def test_a_missing_geopackage_is_named(tmp_path: Path) -> None:
    outputs = EpochOutputs("e", date(2026, 1, 1), tmp_path, tmp_path / "raqib.gpkg", None)
    with pytest.raises(InputError, match="raqib.gpkg: no published GeoPackage"):
        write_report(outputs)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_publish_rebuilds_one_epochs_report_and_leaves_the_others(tmp_path: Path) -> None:
    first = _epoch(tmp_path, "winter", date(2026, 1, 15), flags=False)
    second = _epoch(tmp_path, "summer", date(2026, 7, 10))
    second_report = write_report(second)
    before = second_report.read_bytes(), second_report.stat().st_mtime_ns
    mosaic_written = first.mosaic.stat().st_mtime_ns
    health = gpd.read_file(first.geopackage, layer="crop_health_parcels")

    done = _cli("publish", "--epoch", "winter", "--workspace", str(tmp_path))

    assert done.returncode == 0, done.stderr
    assert str(first.folder / REPORT) in done.stdout
    text = (first.folder / REPORT).read_text(encoding="utf-8")
    assert "captured on <b>2026-01-15</b>" in text and "No construction flag" in text
    assert (second_report.read_bytes(), second_report.stat().st_mtime_ns) == before
    assert first.mosaic.stat().st_mtime_ns == mosaic_written, "no raster recomputed"
    kept = gpd.read_file(first.geopackage, layer="crop_health_parcels")
    pd.testing.assert_frame_equal(kept, health)  # the analysis layers kept as published


def test_publish_of_an_unknown_epoch_lists_the_known_ones(tmp_path: Path) -> None:
    _epoch(tmp_path, "winter", date(2026, 1, 15))
    _epoch(tmp_path, "summer", date(2026, 7, 10))
    done = _cli("publish", "--epoch", "spring", "--workspace", str(tmp_path))
    assert done.returncode == 2
    assert "no epoch 'spring'; known: summer, winter" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_without_errors(tmp_path: Path, chromium) -> None:
    path, _ = _report(tmp_path)
    screenshot = tmp_path / "report.png"
    rendered = chromium(path, screenshot)
    assert rendered.console_errors == []
    dom = _Page(rendered.dom)
    assert any(row and row[0] == "Madagh" for row in dom.rows), "the tables are in the DOM"
    for source in dom.images:
        assert (path.parent / source).is_file(), f"{source} would not load"
    with Image.open(screenshot) as shot:
        assert shot.size == (1280, 2000)
        colours = np.asarray(shot.convert("RGB"))
    assert (np.abs(colours - [35, 69, 47]).sum(axis=2) < 10).any(), "the styled header shows"
