"""Honest validation on the simulated Berkane world: train on one seed, score on another.

Slow (a couple of minutes): it generates two worlds and runs the real training, detection
and classification code paths. Floors sit a little below the scores measured when written.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from models.construction import train_buildings_on
from models.crop_health import train_health_on
from models.evaluation import evaluate_buildings, evaluate_health
from sim.world import World, generate

pytestmark = pytest.mark.slow
EPOCHS = ("epoch1", "epoch2")
F1_FLOOR = 0.6
AREA_IOU_FLOOR = 0.65
KAPPA_FLOOR = 0.7
RECALL_FLOOR = 0.5


@pytest.fixture(scope="module")
def training_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate(tmp_path_factory.mktemp("world101"), seed=101, width_m=300, height_m=240)


@pytest.fixture(scope="module")
def held_out_world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("world7"), seed=7, width_m=200, height_m=160)


def _layer(world: World, name: str) -> gpd.GeoDataFrame:
    return gpd.read_file(world.paths.truth, layer=name)


def _farms(world: World) -> gpd.GeoDataFrame:
    parcels = gpd.read_file(world.paths.parcels)
    return parcels[~parcels["land_use"].isin(["built", "project"])]


def test_buildings_of_a_held_out_world_are_found(training_world, held_out_world):
    model = train_buildings_on(
        [(training_world.paths.ortho(e), _layer(training_world, f"buildings_{e}")) for e in EPOCHS]
    )
    for epoch in EPOCHS:
        truth = _layer(held_out_world, f"buildings_{epoch}")
        scores = evaluate_buildings(model, held_out_world.paths.ortho(epoch), truth)
        assert scores.f1 >= F1_FLOOR, (epoch, scores)
        assert scores.extra["area_iou"] >= AREA_IOU_FLOOR, (epoch, scores)


def test_crop_health_of_a_held_out_world_is_classified(
    training_world, held_out_world, tmp_path: Path
):
    model = train_health_on(
        [(training_world.paths.ortho(e), _layer(training_world, "health")) for e in EPOCHS]
    )
    for epoch in EPOCHS:
        scores = evaluate_health(
            model,
            held_out_world.paths.ortho(epoch),
            _layer(held_out_world, "health"),
            tmp_path / f"health_{epoch}.tif",
            mask_polygons=_farms(held_out_world),
        )
        assert scores["healthy"].kappa >= KAPPA_FLOOR, (epoch, scores)
        assert min(s.recall for s in scores.values()) >= RECALL_FLOOR, (epoch, scores)
