"""Inspector feedback closes the loop through the real `process` flow: after inspectors judge the
summer epoch's flags, the next epoch detects buildings with a model refitted on their
judgements, and says so in its `buildings` layer."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest

import flows
from gis.feedback import write_feedback_csv
from models.evaluation import EXPECTED_REASONS

pytestmark = pytest.mark.slow
AUTUMN = date(2026, 10, 1)


def _copy_of_workspace(surveyed, folder: Path) -> Path:
    """The surveyed workspace (epochs, models, training world) copied, its manifest moved too."""
    source = surveyed.settings.workspace
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("frames"))
    for result in surveyed.epochs:
        out_dir = folder / result.out_dir.name
        flows.record_epoch(
            folder, result.epoch, result.captured_on, out_dir / flows.GEOPACKAGE,
            out_dir / result.mosaic.path.name,
        )  # fmt: skip
    return folder


def _judged_by_the_truth(surveyed, flags: gpd.GeoDataFrame, path: Path) -> Path:
    """The flags' CSV with what an inspector would find: a flag on a parcel where the world
    built in breach of a permit is confirmed, any other is a false positive."""
    truth = gpd.read_file(surveyed.world.paths.truth, layer="buildings_epoch2")
    breaches = {
        pid for pid, case in zip(truth["parcel_id"], truth["case"], strict=True)
        if EXPECTED_REASONS.get(case)
    }  # fmt: skip
    write_feedback_csv(flags, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["status"] = "confirmed" if row["parcel_id"] in breaches else "false_positive"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_epoch_after_judged_flags_detects_with_a_refitted_model(surveyed, tmp_path):
    for result in surveyed.epochs:  # without feedback: the default model, as always
        used = gpd.read_file(result.geopackage, layer="buildings")["building_model"]
        assert set(used) <= {"buildings.joblib"}
    summer = surveyed.epochs[-1]
    flags = gpd.read_file(summer.geopackage, layer="flagged_parcels")
    assert len(flags) > 0, "the small world's summer epoch raises flags to judge"
    workspace = _copy_of_workspace(surveyed, tmp_path / "workspace")
    settings = surveyed.settings.model_copy(
        update={
            "workspace": workspace,
            "feedback": _judged_by_the_truth(surveyed, flags, tmp_path / "retour.csv"),
        }
    )

    autumn = flows.process(
        summer.out_dir / "frames",
        surveyed.world.paths.parcels,
        surveyed.world.paths.permits,
        "autumn",
        AUTUMN,
        settings,
        projects_path=surveyed.world.paths.projects,
    )

    (model_name,) = set(gpd.read_file(autumn.geopackage, layer="buildings")["building_model"])
    assert model_name.startswith("buildings-feedback-")
    assert (workspace / "models" / model_name).exists()
    assert autumn.buildings > 0
