"""Inspector feedback into the building model: which model an epoch uses.

A workspace holds one published summer epoch (a simulator world's summer orthophoto as its
mosaic, its new houses and a greenhouse taken for a house flagged); inspectors judge the flags
in the CSV export; the autumn epoch then uses a model refitted on those judgements, saved
under a name from their hash and reused while they stay the same. The default model file here
is a small real model: a refit never reads it, its bytes only enter the hash.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from prefect import flow

import flows
from core.settings import Settings, load_settings
from gis.feedback import write_feedback_csv
from gis.flags import flag_new_buildings
from gis.publish import publish_geopackage
from models.construction import BUILDING_CLASSES
from models.features import BUILDING_FEATURES
from models.training import fit_pixel_model, load_model, save_model
from sim.world import World

SUMMER, AUTUMN = date(2026, 7, 10), date(2026, 10, 1)
NO_PERMITS = pd.DataFrame(
    columns=["permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2"]
)


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    models: flows.Models
    flags: gpd.GeoDataFrame
    mosaic: Path
    greenhouse_flag: str
    house_flag: str


def _new_structures(world: World) -> gpd.GeoDataFrame:
    """The summer's unpermitted houses and one greenhouse, as a detector that took it for a
    house would report them."""
    truth = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    houses = truth[truth["case"] == "unpermitted"].geometry
    greenhouse = gpd.read_file(world.paths.truth, layer="greenhouses").geometry.iloc[:1]
    structures = gpd.GeoDataFrame(geometry=[*houses, *greenhouse], crs=truth.crs)
    return structures.assign(score=0.9, change="new", area_m2=structures.geometry.area)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, world_copy) -> Workspace:
    root = tmp_path_factory.mktemp("feedback")
    settings = load_settings(workspace=root / "workspace")
    folder = settings.workspace / "models"
    models = flows.Models(
        health=folder / "crop_health.joblib", buildings=folder / "buildings.joblib"
    )
    rows = np.random.default_rng(0).random((40, len(BUILDING_FEATURES.names)))
    classes = np.repeat(np.array([1, 2], np.int16), 20)
    save_model(
        fit_pixel_model(rows, classes, BUILDING_CLASSES, features=BUILDING_FEATURES),
        models.buildings,
    )
    world = world_copy(root / "world", seed=7, width_m=200, height_m=160)
    structures = _new_structures(world)
    parcels = gpd.read_file(world.paths.parcels)
    flags = flag_new_buildings(
        structures, parcels, NO_PERMITS, captured_on=SUMMER, settings=settings
    )
    geopackage = publish_geopackage(
        settings.workspace / "summer" / flows.GEOPACKAGE,
        {"new_buildings": structures, "flagged_parcels": flags},
    )
    mosaic = world.paths.ortho("epoch2")
    flows.record_epoch(settings.workspace, "summer", SUMMER, geopackage, mosaic)
    greenhouse_row = str(len(structures) - 1)
    greenhouse_flag = flags.loc[flags["building_ids"] == greenhouse_row, "flag_id"].iloc[0]
    house_flag = flags.loc[flags["building_ids"] != greenhouse_row, "flag_id"].iloc[0]
    return Workspace(settings, models, flags, mosaic, greenhouse_flag, house_flag)


def _judged_csv(ws: Workspace, path: Path, statuses: dict[str, str]) -> Path:
    """The flags' CSV export with the inspectors' statuses typed in."""
    write_feedback_csv(ws.flags, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["status"] = statuses.get(row["flag_id"], row["status"])
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _decided(ws: Workspace, path: Path) -> Path:
    return _judged_csv(ws, path, {ws.greenhouse_flag: "false positive", ws.house_flag: "confirmed"})


def test_without_decisions_the_epoch_keeps_the_default_model(workspace, tmp_path):
    undecided = _judged_csv(workspace, tmp_path / "flags.csv", {})
    judged = flows.judged_footprints(workspace.settings.workspace, AUTUMN, undecided)
    assert judged == []
    chosen = flows.building_model_for(workspace.models, judged, workspace.settings.workspace)
    assert chosen == workspace.models.buildings


def test_judged_flags_become_labelled_footprints_on_the_mosaic_they_were_raised_on(
    workspace, tmp_path
):
    judged = flows.judged_footprints(
        workspace.settings.workspace, AUTUMN, _decided(workspace, tmp_path / "flags.csv")
    )
    ((mosaic, samples),) = judged
    assert mosaic == workspace.mosaic
    assert samples.set_index("flag_id")["label"].to_dict() == {
        workspace.greenhouse_flag: "not_building",
        workspace.house_flag: "building",
    }
    assert (samples.geometry.area > 50).all()


def test_decisions_on_the_epoch_itself_do_not_train_its_model(workspace, tmp_path):
    """A rerun of the summer epoch keeps the model it was published with."""
    decided = _decided(workspace, tmp_path / "flags.csv")
    assert flows.judged_footprints(workspace.settings.workspace, SUMMER, decided) == []


def test_the_hash_changes_with_the_decisions_not_with_their_order(workspace, tmp_path):
    ws = workspace.settings.workspace
    decided = flows.judged_footprints(ws, AUTUMN, _decided(workspace, tmp_path / "a.csv"))
    other = flows.judged_footprints(
        ws, AUTUMN, _judged_csv(workspace, tmp_path / "b.csv", {workspace.house_flag: "confirmed"})
    )
    reordered = [(m, s.iloc[::-1]) for m, s in decided]
    digest = flows.feedback_digest(workspace.models, decided)
    assert flows.feedback_digest(workspace.models, reordered) == digest
    assert flows.feedback_digest(workspace.models, other) != digest


def test_a_model_trained_elsewhere_is_kept_and_the_unused_feedback_named(
    workspace, tmp_path, caplog
):
    ws = workspace.settings.workspace
    judged = flows.judged_footprints(ws, AUTUMN, _decided(workspace, tmp_path / "flags.csv"))
    own = flows.Models(workspace.models.health, tmp_path / "own_buildings.joblib")
    shutil.copy(workspace.models.buildings, own.buildings)
    assert flows.building_model_for(own, judged, ws) == own.buildings
    assert "judged footprints" in caplog.text and "not used" in caplog.text
    assert not list((ws / "models").glob("buildings-feedback-*"))


@pytest.mark.slow
def test_the_epoch_after_judged_flags_uses_a_refitted_model_made_once(
    workspace, tmp_path, prefect_server, world_copy
):
    training_folder = workspace.models.buildings.parent / flows.TRAINING_WORLDS / "101"
    world_copy(training_folder, seed=101, width_m=200, height_m=160)  # a small one: cheap refit
    settings = workspace.settings.model_copy(
        update={"feedback": _decided(workspace, tmp_path / "flags.csv")}
    )

    @flow(name="choose-building-model", validate_parameters=False)
    def choose() -> flows.Models:
        return flows.building_model_task(workspace.models, AUTUMN, settings)

    models = choose()
    chosen = models.buildings
    assert models.health == workspace.models.health
    assert chosen.parent == settings.workspace / "models"
    assert chosen.name.startswith("buildings-feedback-") and chosen.suffix == ".joblib"
    assert load_model(chosen).classes == ("building", "background")
    assert chosen.read_bytes() != workspace.models.buildings.read_bytes()
    made = chosen.stat().st_mtime_ns

    started = time.monotonic()
    assert choose().buildings == chosen  # the same feedback: the same file, not refitted
    assert chosen.stat().st_mtime_ns == made
    assert time.monotonic() - started < 30
