"""Inspectors' decisions as training samples: a building model refitted with a footprint judged
a false positive scores it lower, one with a confirmed footprint scores it higher.

Slow (a minute or two): a model fitted on the winter epoch of a small simulator world, another
world's summer epoch scored, and the model refitted with two judged footprints on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio import features as rio_features
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from gis.feedback import SAMPLE_LABELS
from models.construction import JUDGED_CODES, BuildingModel, train_buildings_on
from models.features import BUILDING_FEATURES
from models.training import predict_blocks, sample_pixels
from sim.world import World

SAMPLES = 4000  # per class: enough to learn from, a quarter of the flows' training time
PATCH_M = 6.0


@dataclass(frozen=True)
class Judged:
    """The summer mosaic, the base model's worst false alarm and worst miss on it."""

    image: Path
    buildings: gpd.GeoDataFrame
    false_positive: BaseGeometry
    missed: BaseGeometry


def _examples(world: World) -> list[tuple[Path, gpd.GeoDataFrame]]:
    return [
        (world.paths.ortho("epoch1"), gpd.read_file(world.paths.truth, layer="buildings_epoch1"))
    ]


def _building_probability(model: BuildingModel, image: Path, footprint: BaseGeometry) -> float:
    """Mean probability ``model`` gives to built-up on the pixels of ``footprint``."""
    x, _ = sample_pixels(image, [(footprint, 1)], 1, features=BUILDING_FEATURES)
    proba = model.estimator.predict_proba(x)
    return float(proba[:, list(model.estimator.classes_).index(1)].mean())


def _most_building_like_ground(
    model: BuildingModel, image: Path, buildings: gpd.GeoDataFrame
) -> BaseGeometry:
    """The PATCH_M square, at least 3 m from every building, that ``model`` finds most built."""
    with rasterio.open(image) as src:
        probability = np.zeros((src.height, src.width), np.float32)
        for block, proba, _ in predict_blocks(model, src):
            window = block.window
            rows = slice(int(window.row_off), int(window.row_off + window.height))
            cols = slice(int(window.col_off), int(window.col_off + window.width))
            probability[rows, cols] = proba[0][block.inner]
        near = rio_features.rasterize(
            [(g.buffer(3.0 + PATCH_M / 2), 1) for g in buildings.geometry],
            out_shape=probability.shape,
            transform=src.transform,
        )
        size_px = int(round(PATCH_M / src.res[0]))
        mean = cv2.blur(probability, (size_px, size_px))
        mean[near.astype(bool)] = 0.0
        row, col = np.unravel_index(np.argmax(mean), mean.shape)
        x, y = src.transform @ (col + 0.5, row + 0.5)
    return box(x - PATCH_M / 2, y - PATCH_M / 2, x + PATCH_M / 2, y + PATCH_M / 2)


@pytest.fixture(scope="module")
def training_world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("world101"), seed=101, width_m=200, height_m=160)


@pytest.fixture(scope="module")
def surveyed_world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("world7"), seed=7, width_m=200, height_m=160)


@pytest.fixture(scope="module")
def base_model(training_world: World) -> BuildingModel:
    return train_buildings_on(_examples(training_world), max_samples_per_class=SAMPLES)


@pytest.fixture(scope="module")
def judged(surveyed_world: World, base_model: BuildingModel) -> Judged:
    image = surveyed_world.paths.ortho("epoch2")
    buildings = gpd.read_file(surveyed_world.paths.truth, layer="buildings_epoch2")
    missed = min(buildings.geometry, key=lambda g: _building_probability(base_model, image, g))
    return Judged(
        image, buildings, _most_building_like_ground(base_model, image, buildings), missed
    )


@pytest.fixture(scope="module")
def refitted(training_world: World, judged: Judged) -> BuildingModel:
    samples = gpd.GeoDataFrame(
        {"label": ["not_building", "building"]},
        geometry=[judged.false_positive, judged.missed],
        crs=judged.buildings.crs,
    )
    return train_buildings_on(
        _examples(training_world),
        judged=[(judged.image, samples)],
        max_samples_per_class=SAMPLES,
    )


@pytest.mark.slow
def test_a_footprint_judged_a_false_positive_scores_lower_after_the_refit(
    base_model, refitted, judged
):
    before = _building_probability(base_model, judged.image, judged.false_positive)
    after = _building_probability(refitted, judged.image, judged.false_positive)
    assert before > 0.05, "the base model should find this patch of ground somewhat built"
    assert after < before / 2


@pytest.mark.slow
def test_a_footprint_confirmed_by_an_inspector_scores_higher_after_the_refit(
    base_model, refitted, judged
):
    before = _building_probability(base_model, judged.image, judged.missed)
    after = _building_probability(refitted, judged.image, judged.missed)
    assert before < 0.5, "the base model should miss this building"
    assert after > before + 0.2


@pytest.mark.slow
def test_the_other_buildings_are_still_found_after_the_refit(base_model, refitted, judged):
    others = [g for g in judged.buildings.geometry if not g.equals(judged.missed)]
    before = np.mean([_building_probability(base_model, judged.image, g) for g in others])
    after = np.mean([_building_probability(refitted, judged.image, g) for g in others])
    # Measured 0.65 -> 0.54 since the shadow-direction feature (issue #7); within 10 % before.
    # The refit still leaves the others above 0.5 on average; a larger loss is a regression.
    assert after > 0.8 * before and after > 0.5


def test_a_judged_footprint_with_an_unknown_label_is_refused_before_any_training(tmp_path):
    samples = gpd.GeoDataFrame(
        {"label": ["building", "roof"]}, geometry=[box(0, 0, 5, 5)] * 2, crs="EPSG:32630"
    )
    with pytest.raises(
        InputError, match=r"mosaic\.tif: .*'roof'; use 'building' or 'not_building'"
    ):
        train_buildings_on(
            [(tmp_path / "absent.tif", samples.drop(columns="label"))],
            judged=[(tmp_path / "mosaic.tif", samples)],
        )
    with pytest.raises(InputError, match=r"mosaic\.tif: judged footprints have no 'label'"):
        train_buildings_on(
            [(tmp_path / "absent.tif", samples)],
            judged=[(tmp_path / "mosaic.tif", samples.drop(columns="label"))],
        )


def test_every_label_feedback_gives_is_one_the_trainer_takes():
    assert set(SAMPLE_LABELS.values()) == set(JUDGED_CODES)
