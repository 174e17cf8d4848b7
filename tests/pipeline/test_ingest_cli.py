"""``raqib ingest``: a real flight folder into the catalogue, once, bad photos reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyogrio
import pytest

import cli


def test_ingest_catalogues_a_real_flight_once_and_reports_bad_photos(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    flight = tmp_path / "flight"
    shutil.copytree(shared_data / "drone_photos/micasense_rededge", flight)
    (flight / "IMG_0002_1.tif").write_bytes(b"truncated")
    args = ["ingest", str(flight), "--ground-elevation", "0", "--workspace", str(tmp_path / "ws")]

    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "IMG_0002_1.tif" in printed and "10 added, 0 already there" in printed
    images = pyogrio.read_dataframe(tmp_path / "ws/catalog/images.gpkg", layer="images")
    assert len(images) == 10 and images["sha256"].is_unique

    assert cli.main(args) == 0
    assert "0 added, 10 already there" in capsys.readouterr().out
    assert len(pyogrio.read_dataframe(tmp_path / "ws/catalog/images.gpkg", layer="images")) == 10


def test_a_bad_time_zone_setting_is_one_line_naming_it(
    shared_data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAQIB_TIMEZONE", "Morocco/Berkane")
    flight = shared_data / "drone_photos/micasense_rededge"
    assert cli.main(["ingest", str(flight), "--workspace", str(tmp_path / "ws")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "RAQIB_TIMEZONE" in error and "Morocco/Berkane" in error
    assert not (tmp_path / "ws").exists()


def test_the_ground_elevation_setting_serves_when_the_option_is_not_given(
    shared_data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAQIB_GROUND_ELEVATION_M", "0")
    flight = shared_data / "drone_photos/micasense_rededge"
    assert cli.main(["ingest", str(flight), "--workspace", str(tmp_path / "ws")]) == 0
    assert "10 photos in 2 captures, none skipped" in capsys.readouterr().out
