"""The command line: user mistakes give one clear line and a non-zero exit, no traceback.

Most commands run in this process (the ``raqib`` fixture of tests/conftest.py); three run
the installed console script in a fresh interpreter: the entry point on a real flight, a
bad input, and a user mistake after Prefect's import (its log handlers must not print a
traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyogrio
import pytest

if TYPE_CHECKING:
    from conftest import CliResult

RAQIB = Path(sys.executable).parent / "raqib"
"""The console script ``[project.scripts]`` installs in the venv."""


REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``cli.py`` in a fresh interpreter (tests/test_cli_feedback.py, test_cli_publish.py)."""
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RAQIB), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_console_script_catalogues_a_real_flight(shared_data: Path, tmp_path: Path) -> None:
    flight = shared_data / "drone_photos/micasense_rededge"
    args = ("ingest", str(flight), "--ground-elevation", "0", "--workspace", "ws")
    done = run_script(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "10 photos in 2 captures, none skipped" in done.stdout
    assert "10 added, 0 already there" in done.stdout
    assert len(pyogrio.read_dataframe(tmp_path / "ws/catalog/images.gpkg", layer="images")) == 10


def test_the_console_script_names_a_missing_photo_folder(tmp_path: Path) -> None:
    done = run_script("ingest", "no_such_flight", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: no_such_flight: photo folder not found\n", done.stderr
    assert not (tmp_path / "workspace").exists()


def test_process_of_a_missing_folder_names_it_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "permits.csv").write_text("permit_id\n")
    done = run_script(
        "process", "no_such_flight", "--parcels", "p.gpkg", "--permits", "permits.csv",
        "--date", "2026-07-10", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "error: no_such_flight: photo folder not found\n", done.stderr
    assert "Traceback" not in done.stdout


def test_plan_writes_a_qgroundcontrol_plan(
    raqib: Callable[..., CliResult], shared_data: Path, tmp_path: Path
) -> None:
    done = raqib(
        "plan", shared_data / "missions/qgc/PolygonGood.kml", "-o", "survey", "--gsd", "2.5"
    )
    assert done.exit_code == 0, done.stderr
    plan = json.loads((tmp_path / "survey/PolygonGood.plan").read_text())
    assert plan["fileType"] == "Plan"
    assert len(plan["mission"]["items"]) > 4
    assert "waypoints" in done.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"type": "Point", "coordinates": [-2.3, 34.93]}', "polygon"),
        ("not json at all", "aoi.geojson"),
    ],
)
def test_bad_aoi_is_one_clear_line(
    raqib: Callable[..., CliResult], tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "aoi.geojson").write_text(content)
    done = raqib("plan", "aoi.geojson", "-o", "x.plan")
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr.lower()
    assert not (tmp_path / "x.plan").exists()


def test_process_refuses_an_epoch_name_unfit_for_a_folder(
    raqib: Callable[..., CliResult], tmp_path: Path
) -> None:
    (tmp_path / "flight").mkdir()
    for name in ("p.gpkg", "permits.csv"):
        (tmp_path / name).write_text("")
    done = raqib(
        "process", "flight", "--parcels", "p.gpkg", "--permits", "permits.csv",
        "--date", "2026-07-10", "--epoch", "../outside",
    )  # fmt: skip
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1 and "../outside" in done.stderr, done.stderr


def test_bad_setting_is_one_line_naming_the_variable(
    raqib: Callable[..., CliResult], tmp_path: Path
) -> None:
    (tmp_path / "raqib.toml").write_text('crs = "EPSG:4326"\n')
    done = raqib("survey", "--world", "nowhere")
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "RAQIB_CRS" in done.stderr and "projected" in done.stderr


def test_too_small_world_is_refused(raqib: Callable[..., CliResult], tmp_path: Path) -> None:
    done = raqib("world", "generate", "w", "--width-m", "50")
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "w").exists()


def test_bad_date_is_refused(raqib: Callable[..., CliResult]) -> None:
    done = raqib(
        "process", ".", "--parcels", "p.gpkg", "--permits", "x.csv", "--date", "10/07/2026"
    )
    assert done.exit_code == 2
    assert "--date" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [(), ("plan", "aoi.geojson")])
def test_usage_mistakes_print_help_not_a_traceback(
    raqib: Callable[..., CliResult], args: tuple[str, ...]
) -> None:
    done = raqib(*args)
    assert done.exit_code == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "Usage" in done.stderr + done.stdout
