"""`raqib schedule` on a real local Prefect server: a commune's survey registered with its cron
in Africa/Casablanca, listed with its next runs, run through the server until Completed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
import rasterio

import cli
import flows
from gis.communes import commune_area
from sim.world import World

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
COMMUNE = "Madagh"
DEPLOYMENT = f"{flows.SCHEDULED_FLOW}/survey-madagh"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


@dataclass(frozen=True)
class Server:
    url: str
    home: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAQIB_"))}
    return env | QUIET | {"PREFECT_HOME": str(home)} | extra


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
    """Signal the process group we started, wait, and kill it if it does not stop."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=30)


def _wait_until(check, what: str, timeout_s: float, alive: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            pytest.fail(f"{what}: process exited {alive.returncode}\n{log.read_text()[-3000:]}")
        try:
            if result := check():
                return result
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prefect server start` on a free loopback port, with its own PREFECT_HOME."""
    root = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    log = root / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(root / "home", PREFECT_UI_ENABLED="false"),
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_until(
            lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
            "prefect server /api/health", 150, process, log,
        )  # fmt: skip
        yield Server(url=url, home=root / "home")
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("schedule") / "world", width_m=200, height_m=160)


@pytest.fixture()
def api(server: Server) -> Iterator[str]:
    """This test process talks to the test's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        yield server.url


def _deployment(name: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


def _deployment_names() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {d.name for d in client.read_deployments()}


def test_a_served_commune_survey_is_scheduled_and_runs_to_completion(
    server: Server, api: str, world: World, tmp_path: Path, capsys
) -> None:
    from prefect.deployments import run_deployment

    workspace = tmp_path / "workspace"
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        serving = subprocess.Popen(
            [BIN / "raqib", "schedule", "serve", "--world", str(world.root),
             "--commune", COMMUNE, "--workspace", str(workspace)],
            env=_env(server.home, PREFECT_API_URL=server.url, RAQIB_SIM_SPEEDUP="40"),
            cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deployment = _wait_until(
            lambda: _deployment(DEPLOYMENT), "deployment registered", 180, serving, log
        )
        (schedule,) = deployment.schedules
        assert schedule.active and not deployment.paused
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (
            "0 6 * * 1",
            "Africa/Casablanca",
        )
        assert deployment.parameters["commune"] == COMMUNE
        assert deployment.parameters["workspace"] == str(workspace.resolve())

        # the server's scheduler has planned the next runs: Mondays, 06:00 in Morocco
        listed = _wait_until(
            lambda: [s for s in flows.registered_schedules() if s.next_runs],
            "next runs scheduled", 90, serving, log,
        )  # fmt: skip
        (entry,) = listed
        assert (entry.commune, entry.cron, entry.timezone, entry.active) == (
            COMMUNE, "0 6 * * 1", "Africa/Casablanca", True,
        )  # fmt: skip
        for run in entry.next_runs:
            assert (run.weekday(), run.hour, run.minute) == (0, 6, 0)
            assert run.utcoffset() == run.astimezone(ZoneInfo("Africa/Casablanca")).utcoffset()
        assert cli.main(["schedule", "list"]) == 0
        printed = capsys.readouterr().out
        assert DEPLOYMENT in printed and "active" in printed and "06:00" in printed

        # a bad request against the same server registers nothing
        unknown = ["schedule", "serve", "--world", str(world.root), "--commune", "Oujda"]
        assert cli.main(unknown) == 2
        assert "no parcel in commune 'Oujda'" in capsys.readouterr().err
        assert _deployment_names() == {"survey-madagh"}

        run = run_deployment(DEPLOYMENT, timeout=600)
        assert run.state is not None and run.state.is_completed(), (
            f"{run.state}\n{log.read_text()[-3000:]}"
        )
        assert run.state.name == "Completed"
    finally:
        stopped_with = _stop(serving)
    assert stopped_with == 0, log.read_text()[-3000:]

    epoch = world.epochs[-1][0]
    out_dir = workspace / flows.commune_slug(COMMUNE) / epoch
    for name in ("raqib.gpkg", "mosaic.tif", "mission.plan", "report.html"):
        assert (out_dir / name).is_file(), name
    assert epoch in flows.read_manifest(workspace / "madagh")
    published = gpd.read_file(out_dir / "raqib.gpkg", layer="parcels")
    assert set(published["commune"]) == {COMMUNE}
    health = gpd.read_file(out_dir / "raqib.gpkg", layer="crop_health_parcels")
    assert set(health["parcel_id"]) <= set(published["parcel_id"]) and len(health) > 0
    # the commune chose the area flown: the mosaic covers its parcels' hull, not the world
    area = commune_area(gpd.read_file(world.paths.parcels), COMMUNE, world.paths.parcels)
    with rasterio.open(out_dir / "mosaic.tif") as mosaic:
        left, bottom, right, top = mosaic.bounds
    assert abs(left - area.bounds[0]) < 1 and abs(top - area.bounds[3]) < 1
    assert right - left < 0.75 * (world.bounds[2] - world.bounds[0])

    # stopping the server's runner paused the schedule: no run piles up while nobody serves
    (paused,) = flows.registered_schedules()
    assert not paused.active and paused.next_runs == ()
