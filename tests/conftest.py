"""Shared test fixtures: the public sample data beside the repository, a temporary workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sim.world import World

# Prefect reads these at import time: offline, no telemetry, a throw-away home.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="raqib-prefect-")
# flows run outside the session harness start a temporary server: give it time on a busy machine
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session (each start costs seconds); flows run while
    it is up report to it, whichever test module started it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def world_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., World]:
    """``world_copy(out_dir, seed=7, width_m=200, height_m=160)``: a fresh copy of a simulator
    world in ``out_dir``. Worlds are seeded, so each one is generated once per session and
    copied (milliseconds) instead of generated again (seconds) by every module that needs it."""
    from sim.world import generate, load_world

    generated: dict[tuple[int, float, float], Path] = {}

    def copy(out_dir: Path, seed: int = 7, width_m: float = 200, height_m: float = 160) -> World:
        key = (seed, width_m, height_m)
        if key not in generated:
            folder = tmp_path_factory.mktemp(f"world{seed}-{width_m:g}x{height_m:g}")
            generated[key] = generate(folder, seed=seed, width_m=width_m, height_m=height_m).root
        shutil.copytree(generated[key], out_dir, dirs_exist_ok=True)
        return load_world(out_dir)

    return copy


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real drone photos, rasters and mission files (see its SOURCES.md)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"public sample data not found at {SHARED_DATA}: CI must provide it")
        pytest.skip(f"public sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@dataclass(frozen=True)
class RenderedPage:
    """What headless Chromium made of a page: its DOM after load and its console errors."""

    dom: str
    console_errors: list[str]


@pytest.fixture(scope="session")
def chromium() -> Callable[[Path, Path], RenderedPage]:
    """Render a local HTML page in headless Chromium (Debian ``chromium``; ``.ci/run`` installs
    it): a 1280 x 2000 screenshot to the given PNG, then its DOM and console errors."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: .ci/run must install it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")

    def render(page: Path, screenshot: Path) -> RenderedPage:
        with tempfile.TemporaryDirectory(prefix="raqib-chromium-") as profile:
            common = [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={profile}", "--window-size=1280,2000",
                "--enable-logging=stderr", "--v=0",
            ]  # fmt: skip
            shot = subprocess.run(
                [*common, f"--screenshot={screenshot}", page.resolve().as_uri()],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            dom = subprocess.run(
                [*common, "--dump-dom", page.resolve().as_uri()],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
        console = [
            line
            for line in (shot.stderr + dom.stderr).splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
        ]
        return RenderedPage(dom=dom.stdout, console_errors=console)

    return render


QGIS_PYTHON = "/usr/bin/python3"
"""The system Python: Debian's python3-qgis (``.ci/run`` installs it) is not in the venv."""
QGIS_CHECK = REPO / "tests" / "gis" / "qgis_check.py"


@pytest.fixture(scope="session")
def qgis() -> Callable[[Path, Path], dict]:
    """Open a ``.qgz`` in real QGIS, headless (``tests/gis/qgis_check.py`` under the system
    Python), render it to the given PNG and return what QGIS saw (its JSON report)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    probe = subprocess.run(
        [QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, env=env
    )
    if probe.returncode:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"QGIS unavailable: {QGIS_PYTHON} -c 'import qgis.core' failed ({why})")

    def check(project: Path, png: Path) -> dict:
        done = subprocess.run(
            [QGIS_PYTHON, str(QGIS_CHECK), str(project), str(png)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    return check


@dataclass(frozen=True)
class CliResult:
    """What one ``raqib`` command did: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def raqib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    """``raqib(*args)``: the command line run in this process with ``tmp_path`` as working
    folder, through ``cli.main`` as the console script runs it (user errors: one line, exit
    2). A subprocess costs 5-20 s of Python and Prefect start-up: keep those for what only a
    real process shows (the entry point, the log handlers of a fresh interpreter)."""
    import cli

    monkeypatch.chdir(tmp_path)

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()  # what the test printed before is not the command's
        code = cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
