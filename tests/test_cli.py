"""The command line: user mistakes give one clear line and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plan_writes_a_qgroundcontrol_plan(shared_data: Path, tmp_path: Path) -> None:
    done = run_cli(
        "plan",
        str(shared_data / "missions/qgc/PolygonGood.kml"),
        "-o",
        "survey",
        "--gsd",
        "2.5",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
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
def test_bad_aoi_is_one_clear_line(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "aoi.geojson").write_text(content)
    done = run_cli("plan", "aoi.geojson", "-o", "x.plan", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr.lower()
    assert not (tmp_path / "x.plan").exists()


def test_process_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "permits.csv").write_text("permit_id\n")
    done = run_cli(
        "process",
        "no_such_flight",
        "--parcels",
        "p.gpkg",
        "--permits",
        "permits.csv",
        "--date",
        "2026-07-10",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "p.gpkg" in done.stderr or "no_such_flight" in done.stderr


def test_process_refuses_an_epoch_name_unfit_for_a_folder(tmp_path: Path) -> None:
    for name in ("flight", "p.gpkg", "permits.csv"):
        (tmp_path / name).mkdir() if name == "flight" else (tmp_path / name).write_text("")
    done = run_cli(
        "process", "flight", "--parcels", "p.gpkg", "--permits", "permits.csv",
        "--date", "2026-07-10", "--epoch", "../outside", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "../outside" in done.stderr, done.stderr


def test_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "raqib.toml").write_text('crs = "EPSG:4326"\n')
    done = run_cli("survey", "--world", "nowhere", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "RAQIB_CRS" in done.stderr and "projected" in done.stderr


def test_too_small_world_is_refused(tmp_path: Path) -> None:
    done = run_cli("world", "generate", "w", "--width-m", "50", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr


def test_bad_date_is_refused(tmp_path: Path) -> None:
    done = run_cli(
        "process",
        ".",
        "--parcels",
        "p.gpkg",
        "--permits",
        "x.csv",
        "--date",
        "10/07/2026",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "--date" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [(), ("plan", "aoi.geojson")])
def test_usage_mistakes_print_help_not_a_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "Usage" in done.stderr + done.stdout
