"""The process flow writes the inspectors' work lists and mails them, each flag once."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pytest
from aiosmtpd.controller import Controller
from rasterio.warp import transform_bounds
from smtp_inbox import Inbox, free_port

import flows
from core.settings import NotifySettings
from core.types import Grid
from gis.notify import send_notifications
from gis.worklists import file_stem

pytestmark = pytest.mark.slow


def test_the_survey_writes_a_work_list_per_commune_and_sends_nothing_unconfigured(
    surveyed,
) -> None:
    last = surveyed.epochs[-1]
    flagged = gpd.read_file(last.geopackage, layer="flagged_parcels")
    work = gpd.read_file(last.geopackage, layer="work_list")
    assert not work.empty and sorted(work["flag_id"]) == sorted(flagged["flag_id"])
    for _, group in work.groupby("commune"):
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert group["severity"].is_monotonic_decreasing
    folder = last.out_dir / flows.WORK_LISTS
    taken: set[str] = set()
    stems = {file_stem(c, taken) for c in sorted(work["commune"].unique())}
    assert {p.stem for p in folder.glob("*.html")} == stems
    assert {p.stem for p in folder.glob("*.csv")} == {p.stem for p in folder.glob("*.png")} == stems
    assert not (surveyed.settings.workspace / flows.NOTIFICATIONS_LEDGER).exists()


def _rerun(surveyed, settings):
    """The last epoch processed again, as the survey did (same grid and records)."""
    world, last = surveyed.world, surveyed.epochs[-1]
    bounds = transform_bounds(world.crs, settings.crs, *world.bounds)
    return flows.process(
        settings.workspace / last.epoch / "frames",
        world.paths.parcels,
        world.paths.permits,
        last.epoch,
        last.captured_on,
        settings,
        projects_path=world.paths.projects,
        grid=Grid.from_bounds(bounds, flows.SURVEY_GSD_CM / 100.0, settings.crs),
        models=flows.default_models(surveyed.settings),
        dsm=world.paths.dsm(last.epoch),
    )


def test_a_process_run_mails_each_commune_its_flags_once(surveyed, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    shutil.copytree(surveyed.settings.workspace, workspace)
    inbox, port = Inbox(), free_port()
    notify = NotifySettings(
        smtp_host="127.0.0.1", smtp_port=port, default_recipients=["urbanisme@example.ma"]
    )
    settings = surveyed.settings.model_copy(update={"workspace": workspace, "notify": notify})
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        result = _rerun(surveyed, settings)
        work = gpd.read_file(result.geopackage, layer="work_list")
        again = send_notifications(work, {}, notify, workspace / flows.NOTIFICATIONS_LEDGER)
    finally:
        controller.stop()

    assert result.undelivered == () and again == ()  # the workspace ledger has them all
    assert len(inbox.messages) == work["commune"].nunique()
    sent = {}
    for message in inbox.messages:
        commune = message["Subject"].rsplit(" in ", 1)[1]
        html = message.get_body(("html",)).get_content()
        sent[commune] = {fid for fid in work["flag_id"] if fid in html}
        names = {part.get_filename() for part in message.walk() if part.get_filename()}
        assert f"{file_stem(commune, set())}.csv" in names
        flags = work[work["commune"] == commune]
        assert {Path(p).name for p in flags["evidence"]} <= names
        for url in flags["record_url"]:
            assert f'href="{url}"' in html
    assert sent == {c: set(g["flag_id"]) for c, g in work.groupby("commune")}
