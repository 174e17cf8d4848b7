"""`raqib survey` killed (SIGKILL) in each stage in turn, rerun each time, ends exactly as an
uninterrupted run of the same flight: same layers, pixels and histories, nothing twice."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from aiosmtpd.controller import Controller
from smtp_inbox import Inbox, free_port

from core.stages import RESULTS_FOLDER, STAGES_FILE
from gis.publish import STYLES_TABLE
from sim.world import generate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
KILLED_IN = (
    "plan", "fly", "ingest", "coregister", "mosaic", "health",
    "buildings", "change", "flags", "publish", "derived", "notify",
)  # fmt: skip
"""Stage markers of the survey flow, in the order it logs them: every stage but vigour,
trees and projects, which sit between health and buildings and resume alike (each kill
costs a process start, and the suite has a time budget)."""
ALWAYS_RUN = {"flags", "notify"}
"""Stages with no record: cheap, or made idempotent by the notification ledger."""
INTO_STAGE_S = {"fly": 3.0, "coregister": 2.0, "buildings": 2.0, "change": 2.0}
"""How long a long stage runs before the kill (half-written frames, temp files); the others
are killed as soon as they log their start."""
RASTERS = ("mosaic.tif", "crop_health.tif", "vegetation_index.tif")


def _operator_folder(folder: Path, smtp_port: int | None) -> None:
    """The folder a survey runs from: its raqib.toml (fast simulator, mail to loopback)."""
    folder.mkdir(parents=True, exist_ok=True)
    notify = (
        f'\n[notify]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
        'default_recipients = ["urbanisme@example.ma"]\n'
        if smtp_port
        else ""
    )
    (folder / "raqib.toml").write_text(f"sim_speedup = 40.0\n{notify}", encoding="utf-8")


def _survey(folder: Path, world: Path, epoch: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "survey", "--world", str(world),
         "--epoch", epoch, "--workspace", "ws"],
        cwd=folder, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _to_the_end(folder: Path, world: Path, epoch: str, env: dict[str, str]) -> str:
    process = _survey(folder, world, epoch, env)
    log, _ = process.communicate(timeout=900)
    assert process.returncode == 0, log
    return log


def _killed_in(stage: str, folder: Path, world: Path, env: dict[str, str]) -> str:
    """Run the survey until ``stage`` logs its start, SIGKILL it :data:`INTO_STAGE_S` later
    or as soon as the next stage logs, whichever comes first (on a fast machine a stage can
    end sooner: killing later would let the following stages finish unseen)."""
    process = _survey(folder, world, "epoch2", env)
    assert process.stdout is not None
    arrived: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_forward, args=(process.stdout, arrived), daemon=True)
    reader.start()
    lines, deadline = [], None
    while True:
        wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            line = arrived.get(timeout=wait_s)
        except queue.Empty:
            break  # INTO_STAGE_S has passed inside the stage
        if line is None:
            break  # the run ended without reaching the stage: asserted below
        lines.append(line)
        if deadline is None and f"stage {stage}: running" in line:
            deadline = time.monotonic() + INTO_STAGE_S.get(stage, 0.0)
        elif deadline is not None and " - stage " in line:
            break  # the stage is over
        if deadline is not None and time.monotonic() >= deadline:
            break
    with contextlib.suppress(ProcessLookupError):  # already gone: asserted below
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    reader.join(timeout=30)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, f"never reached {stage}:\n{''.join(lines)}"
    return "".join(lines)


def _forward(stream: IO[str], into: queue.Queue[str | None]) -> None:
    """Every line of ``stream`` into ``into``, then None."""
    for line in stream:
        into.put(line)
    into.put(None)


def _same_flight(flown: Path, into: Path) -> None:
    """Give ``into`` (an epoch folder) the plan and flight recorded in ``flown``: a re-flown
    mission's photos differ (capture times), so the reference processes the same photos."""
    record = json.loads((flown / STAGES_FILE).read_text())
    kept = {name: record[name] for name in ("plan", "fly")}
    for entry in kept.values():
        for output in entry["outputs"]:
            source, target = flown / output, into / output
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
    (into / STAGES_FILE).write_text(json.dumps(kept))


def _layers(geopackage: Path) -> dict[str, pd.DataFrame]:
    """Every layer but the QGIS styles (they carry the time they were written)."""
    names = sorted(str(n) for n in pyogrio.list_layers(geopackage)[:, 0] if n != STYLES_TABLE)
    return {name: pyogrio.read_dataframe(geopackage, layer=name) for name in names}


def _no_duplicates(frame: pd.DataFrame, key: list[str], what: str) -> None:
    assert not frame.duplicated(subset=key).any(), f"{what}: duplicated {key}"


@pytest.mark.timeout(1800)  # 17 survey processes: slow on a busy machine
def test_a_survey_killed_stage_after_stage_resumes_to_the_uninterrupted_result(
    prefect_server: None, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONUNBUFFERED": "1"}
    world = generate(tmp_path / "world", width_m=150, height_m=140).root  # the smallest
    resumed, reference = tmp_path / "resumed", tmp_path / "reference"
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _operator_folder(resumed, port)
        _to_the_end(resumed, world, "epoch1", env)
        shutil.copytree(resumed, reference)
        _operator_folder(reference, None)  # the reference sends nothing
        killed = {stage: _killed_in(stage, resumed, world, env) for stage in KILLED_IN}
        final = _to_the_end(resumed, world, "epoch2", env)
    finally:
        controller.stop()
    _same_flight(resumed / "ws" / "epoch2", reference / "ws" / "epoch2")
    uninterrupted = _to_the_end(reference, world, "epoch2", env)

    # each rerun skipped what the runs before it finished; the last one skipped everything
    assert "stage fly: unchanged, skipped" in uninterrupted
    recorded = [stage for stage in KILLED_IN if stage not in ALWAYS_RUN]
    for k, stage in enumerate(KILLED_IN[2:], start=2):
        for done in set(KILLED_IN[: k - 1]) - ALWAYS_RUN:
            assert f"stage {done}: unchanged, skipped" in killed[stage], (stage, done)
    assert all(f"stage {stage}: unchanged, skipped" in final for stage in recorded), final

    # the same published layers, feature for feature, and the same pixels
    ours, theirs = resumed / "ws" / "epoch2", reference / "ws" / "epoch2"
    layers, expected = _layers(ours / "raqib.gpkg"), _layers(theirs / "raqib.gpkg")
    assert list(layers) == list(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(layers[name], frame, obj=f"layer {name}")
    flagged = layers["flagged_parcels"]
    assert len(flagged) > 0 and len(layers["new_buildings"]) > 0
    for raster in RASTERS:
        with rasterio.open(ours / raster) as a, rasterio.open(theirs / raster) as b:
            assert a.meta.keys() == b.meta.keys(), raster
            for name, value in a.meta.items():  # nodata may be NaN
                assert value == b.meta[name] or np.isnan(value) and np.isnan(b.meta[name]), name
            assert np.array_equal(a.read(), b.read(), equal_nan=True), raster
    for history in ("crop_health_history.gpkg", "project_history.gpkg"):
        table, other = (_layers(ws / "ws" / history) for ws in (resumed, reference))
        assert list(table) == list(other)
        for name in table:
            pd.testing.assert_frame_equal(table[name], other[name], obj=f"{history} {name}")

    # nothing twice: features, history rows, catalogued photos, notifications
    _no_duplicates(flagged, ["flag_id"], "flagged_parcels")
    _no_duplicates(layers["work_list"], ["flag_id"], "work_list")
    history = _layers(resumed / "ws" / "crop_health_history.gpkg")["parcel_history"]
    _no_duplicates(history, ["index", "parcel_id", "date"], "parcel_history")
    catalog = gpd.read_file(resumed / "ws" / "catalog" / "images.gpkg", layer="images")
    frames = {
        e: len(list((resumed / "ws" / e / "frames").glob("*.JPG"))) for e in ("epoch1", "epoch2")
    }
    assert catalog.groupby("collection").size().to_dict() == frames
    communes = layers["work_list"]["commune"].nunique()
    assert len(inbox.messages) == communes
    mailed = [
        flag_id
        for message in inbox.messages
        for flag_id in flagged["flag_id"]
        if flag_id in message.get_body(("html",)).get_content()
    ]
    assert sorted(mailed) == sorted(flagged["flag_id"])
    assert not list((resumed / "ws").rglob(".*.tmp*"))  # a killed write's leftovers are gone
    assert (ours / RESULTS_FOLDER).is_dir()
