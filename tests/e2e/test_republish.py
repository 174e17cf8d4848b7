"""`raqib publish --epoch` on the small two-epoch survey: the derived outputs come back the same
from the stored results, no model runs, nothing else in the workspace is written; with
``publish.postgis_url`` set the epoch's layers land in PostGIS."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pyogrio
import pytest

import flows
from gis.publish import STYLES_TABLE
from gis.report import REPORT, REPORT_ASSETS
from gis.worklists import WORK_LIST_LAYER

sys.path.insert(0, str(Path(__file__).parents[1] / "gis"))  # postgis_server
from postgis_server import running_postgis  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _publish(epoch: str, workspace: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "publish", "--epoch", epoch,
         "--workspace", str(workspace)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip


def _layers(geopackage: Path) -> dict[str, pd.DataFrame]:
    """Every layer but the styles (compared by :func:`_styles`: their times change)."""
    names = [str(n) for n in pyogrio.list_layers(geopackage)[:, 0] if n != STYLES_TABLE]
    return {name: pyogrio.read_dataframe(geopackage, layer=name) for name in sorted(names)}


def _styles(geopackage: Path) -> dict[str, str]:
    rows = pyogrio.read_dataframe(geopackage, layer=STYLES_TABLE, read_geometry=False)
    return dict(zip(rows["f_table_name"], rows["styleQML"], strict=True))


def _derived(folder: Path) -> dict[str, bytes]:
    """The derived files' contents (the report without the time it was generated)."""
    paths = [*(folder / flows.WORK_LISTS).iterdir(), *(folder / REPORT_ASSETS).iterdir()]
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}
    with zipfile.ZipFile(folder / "raqib.qgz") as archive:
        files["raqib.qgs"] = archive.read("raqib.qgs")
    report = (folder / REPORT).read_text(encoding="utf-8")
    files[REPORT] = re.sub(r"report generated [^<]* by", "", report).encode()
    return files


def _mtimes(workspace: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}


def test_publish_rebuilds_the_derived_outputs_alike_without_recomputing(surveyed) -> None:
    last, workspace = surveyed.epochs[-1], surveyed.settings.workspace
    folder, geopackage = last.out_dir, last.geopackage
    layers, styles, derived = _layers(geopackage), _styles(geopackage), _derived(folder)
    assert len(layers[WORK_LIST_LAYER]) > 0 and derived, "the survey raised flags"
    # the derived outputs lost or out of date: styles and work list emptied, files deleted
    pyogrio.write_dataframe(layers[WORK_LIST_LAYER].iloc[:0], geopackage, layer=WORK_LIST_LAYER)
    empty_styles = pd.DataFrame({"f_table_name": pd.Series(dtype=str)})
    pyogrio.write_dataframe(empty_styles, geopackage, layer=STYLES_TABLE)
    for path in (folder / "raqib.qgz", folder / REPORT):
        path.unlink()
    for path in (folder / flows.WORK_LISTS, folder / REPORT_ASSETS):
        shutil.rmtree(path)
    before = _mtimes(workspace)

    done = _publish(last.epoch, workspace)

    assert done.returncode == 0, done.stderr
    assert f"{last.epoch}: {folder / 'raqib.qgz'}" in done.stdout
    assert _styles(geopackage) == styles
    republished = _layers(geopackage)
    assert republished.keys() == layers.keys()
    for name, frame in layers.items():
        pd.testing.assert_frame_equal(republished[name], frame, obj=name)
    assert _derived(folder) == derived
    written = {p for p, mtime in _mtimes(workspace).items() if before.get(p) != mtime}
    assert all(p.is_relative_to(folder) for p in written), "no other epoch, model or history"
    assert {p.relative_to(folder).parts[0] for p in written} <= {
        "raqib.gpkg", "raqib.qgz", REPORT, REPORT_ASSETS, flows.WORK_LISTS
    }, "only the derived outputs are written: no raster"  # fmt: skip
    assert (folder / "mosaic.tif") in before and (folder / "crop_health.tif") in before
    manifest = json.loads((workspace / flows.EPOCHS_MANIFEST).read_text())
    assert sorted(manifest) == sorted(e.epoch for e in surveyed.epochs), "older epochs kept"


def test_publish_of_an_unknown_epoch_names_the_known_ones(surveyed) -> None:
    done = _publish("epoch9", surveyed.settings.workspace)

    assert done.returncode == 2
    known = ", ".join(sorted(e.epoch for e in surveyed.epochs))
    assert f"no epoch 'epoch9'; known: {known}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def postgis() -> Iterator[str]:
    with running_postgis() as url:
        yield url


def test_publish_copies_each_epoch_into_its_postgis_schema(surveyed, postgis: str) -> None:
    workspace = surveyed.settings.workspace
    setting = json.dumps({"postgis_url": postgis})
    for result in surveyed.epochs:
        done = _publish(result.epoch, workspace, RAQIB_PUBLISH=setting)
        assert done.returncode == 0, done.stderr
        assert f"PostGIS schema raqib_{result.epoch}" in done.stdout

    with psycopg.connect(postgis) as conn:
        for result in surveyed.epochs:
            schema = f"raqib_{result.epoch}"
            for name, frame in _layers(result.geopackage).items():
                count = conn.execute(f"SELECT count(*) FROM {schema}.{name}").fetchone()
                assert count == (len(frame),), f"{schema}.{name}"
            srids = conn.execute(
                "SELECT DISTINCT srid FROM geometry_columns WHERE f_table_schema = %s", [schema]
            ).fetchall()
            assert srids == [(32630,)]
            flags = pyogrio.read_dataframe(result.geopackage, layer="flagged_parcels")
            urls = conn.execute(f"SELECT record_url FROM {schema}.flagged_parcels ORDER BY fid")
            assert [url for (url,) in urls] == list(flags["record_url"])
            styled = conn.execute(
                "SELECT count(*) FROM public.layer_styles WHERE f_table_schema = %s", [schema]
            ).fetchone()
            assert styled == (len(_styles(result.geopackage)),)


def test_a_postgis_server_that_is_down_fails_publish_naming_the_setting(surveyed) -> None:
    setting = json.dumps({"postgis_url": "postgresql://raqib:pw@127.0.0.1:9/raqib"})
    done = _publish(surveyed.epochs[0].epoch, surveyed.settings.workspace, RAQIB_PUBLISH=setting)

    assert done.returncode == 2
    assert "[publish] postgis_url: postgresql://raqib:***@127.0.0.1:9/raqib" in done.stderr
    assert "Traceback" not in done.stderr and ":pw@" not in done.stderr
