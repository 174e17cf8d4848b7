"""The province report the flows write for each epoch of the small two-epoch survey, rendered
in headless Chromium, and republished without recomputation."""

from __future__ import annotations

import html
import re

import geopandas as gpd
import pytest

import flows
from gis.report import REPORT

pytestmark = pytest.mark.slow


def _images(text: str) -> list[str]:
    return [html.unescape(src) for src in re.findall(r'<img [^>]*src="([^"]+)"', text)]


def test_each_epoch_has_a_report_of_its_own_outputs(surveyed) -> None:
    for result in surveyed.epochs:
        text = (result.out_dir / REPORT).read_text(encoding="utf-8")
        assert f"captured on <b>{result.captured_on.isoformat()}</b>" in text
        health = gpd.read_file(result.geopackage, layer="crop_health_parcels")
        for commune in set(health["commune"]):
            assert f'<td dir="auto">{html.escape(commune)}</td>' in text
        flagged = gpd.read_file(result.geopackage, layer="flagged_parcels")
        assert text.count('alt="Evidence for parcel') == len(flagged)
        assert text.count("open record") >= len(flagged)
        for source in _images(text):
            assert (result.out_dir / source).is_file(), source


def test_the_last_epochs_report_renders_in_chromium(surveyed, chromium, tmp_path) -> None:
    last = surveyed.epochs[-1]
    screenshot = tmp_path / "report.png"  # kept by pytest among its last runs' files
    rendered = chromium(last.out_dir / REPORT, screenshot)
    assert rendered.console_errors == []
    assert "Construction flags" in rendered.dom
    for source in _images(rendered.dom):
        assert (last.out_dir / source).is_file(), f"{source} would not load"
    assert screenshot.stat().st_size > 50_000


def test_republishing_the_first_epoch_leaves_the_second_untouched(surveyed) -> None:
    first, second = surveyed.epochs
    kept = {p: p.stat().st_mtime_ns for p in second.out_dir.rglob("*") if p.is_file()}
    published = first.geopackage.stat().st_mtime_ns
    (first.out_dir / REPORT).unlink()

    (report,) = flows.publish_derived(surveyed.settings.workspace, first.epoch)

    assert report == first.out_dir / REPORT and report.is_file()
    assert first.geopackage.stat().st_mtime_ns == published, "nothing recomputed"
    assert {p: p.stat().st_mtime_ns for p in second.out_dir.rglob("*") if p.is_file()} == kept
