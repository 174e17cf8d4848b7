"""Buildings with the simulator world's surface models: at least as good as without, and a
flat yard painted like a roof is no longer a building."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from rasterio.windows import from_bounds
from shapely.geometry import box

from models.construction import detect_buildings
from models.evaluation import object_scores
from models.training import DEFAULT_BUILDINGS_MODEL, PixelModel, load_model
from sim.world import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, world_copy) -> World:
    return world_copy(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)


@pytest.fixture(scope="module")
def model() -> PixelModel:
    return load_model(DEFAULT_BUILDINGS_MODEL)


def painted_yard(world: World, out: Path) -> tuple[Path, box]:
    """Epoch 1 with a flat-roofed house's roof copied onto the middle of the bare field (flat
    ground in the DSM): the new orthophoto and where the copy lies."""
    houses = gpd.read_file(world.paths.truth, layer="buildings_epoch1")
    roof = houses[houses["roof"] == "concrete"].geometry.iloc[0]
    parcels = gpd.read_file(world.paths.parcels)
    field = parcels[parcels["land_use"] == "bare"].geometry.iloc[0].centroid
    with rasterio.open(world.paths.ortho("epoch1")) as src:
        profile, pixels = src.profile, src.read()
        source = from_bounds(*roof.bounds, src.transform).round_offsets().round_lengths()
        row = int(src.index(field.x, field.y)[0] - source.height // 2)
        col = int(src.index(field.x, field.y)[1] - source.width // 2)
        rows, cols = slice(row, row + source.height), slice(col, col + source.width)
        pixels[:, rows, cols] = src.read(window=source)
        (left, top), (right, bottom) = src.xy(row, col, "ul"), src.xy(rows.stop, cols.stop, "ul")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(pixels)
    return out, box(left, bottom, right, top)


@pytest.mark.slow
@pytest.mark.parametrize("epoch", ["epoch1", "epoch2"])
def test_the_dsm_does_not_lose_buildings(world: World, model: PixelModel, epoch: str) -> None:
    truth = gpd.read_file(world.paths.truth, layer=f"buildings_{epoch}")
    parcels = gpd.read_file(world.paths.parcels)  # as the flows detect: row houses cut apart
    image = world.paths.ortho(epoch)
    without = object_scores(detect_buildings(model, image, parcels=parcels), truth)
    found = detect_buildings(model, image, parcels=parcels, dsm=world.paths.dsm(epoch))
    with_dsm = object_scores(found, truth)
    assert with_dsm.f1 >= without.f1 and with_dsm.f1 >= 0.9, (with_dsm, without)


@pytest.mark.slow
def test_a_flat_yard_painted_like_a_roof_is_rejected_with_height(
    world: World, model: PixelModel, tmp_path: Path
) -> None:
    image, yard = painted_yard(world, tmp_path / "painted.tif")
    fooled = detect_buildings(model, image)
    assert fooled.intersects(yard).any()  # the colours alone make it a building
    found = detect_buildings(model, image, dsm=world.paths.dsm("epoch1"))
    assert not found.intersects(yard).any(), found[found.intersects(yard)]
    truth = gpd.read_file(world.paths.truth, layer="buildings_epoch1")
    assert object_scores(found, truth).recall == 1.0  # the real houses stay
