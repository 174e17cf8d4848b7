"""The synthetic Berkane world: files, truth and records that agree, and deterministic pixels."""

from __future__ import annotations

import copy
import hashlib
from datetime import date
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import geometry_mask
from shapely.geometry import Point

from core.errors import InputError
from sim._render_extensions import EXTENSION_CASES, plant_extensions
from sim._render_layout import make_layout
from sim._render_ortho import EpochPainter, _sweep, render
from sim._render_paint import BAND_ROWS, smooth_noise
from sim.world import SEASONS, World, generate, load_world

SMALL = dict(width_m=200, height_m=160)
TRUTH_LAYERS = (
    "buildings_epoch1", "buildings_epoch2", "extensions", "health", "greenhouses", "trees",
)  # fmt: skip
"""Every layer of a world's truth.gpkg."""
EPOCH1, EPOCH2 = date(2026, 1, 15), date(2026, 7, 10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate(tmp_path_factory.mktemp("world"), seed=7, **SMALL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def buildings(world: World, epoch: str) -> gpd.GeoDataFrame:
    return gpd.read_file(world.paths.truth, layer=f"buildings_{epoch}")


def extensions(world: World) -> gpd.GeoDataFrame:
    return gpd.read_file(world.paths.truth, layer="extensions")


def permits(world: World) -> pd.DataFrame:
    return pd.read_csv(world.paths.permits, parse_dates=["issued", "expires"])


def test_same_seed_gives_same_bytes_and_records(world: World, tmp_path: Path) -> None:
    again = generate(tmp_path, seed=7, **SMALL)
    for name, _ in world.epochs:
        assert sha256(again.paths.ortho(name)) == sha256(world.paths.ortho(name))
    assert again.paths.permits.read_bytes() == world.paths.permits.read_bytes()
    for layer in TRUTH_LAYERS:
        a = gpd.read_file(world.paths.truth, layer=layer)
        b = gpd.read_file(again.paths.truth, layer=layer)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=1e-9).all()


def test_another_seed_gives_another_world(world: World, tmp_path: Path) -> None:
    other = generate(tmp_path, seed=8, **SMALL)
    assert sha256(other.paths.ortho("epoch1")) != sha256(world.paths.ortho("epoch1"))
    assert not buildings(other, "epoch2").geometry.equals(buildings(world, "epoch2").geometry)


def test_files_layers_and_columns(world: World) -> None:
    assert set(pyogrio.list_layers(world.paths.truth)[:, 0]) == set(TRUTH_LAYERS)
    parcels = gpd.read_file(world.paths.parcels, layer="parcels")
    assert {"parcel_id", "commune", "land_use"} <= set(parcels.columns)
    assert parcels.parcel_id.is_unique and parcels.parcel_id.str.match(r"BRK-\d{4}$").all()
    assert set(parcels.land_use) == {
        "built",
        "orchard",
        "vineyard",
        "cereal",
        "vegetables",
        "greenhouse",
        "bare",
        "project",
    }
    assert set(parcels.commune) <= {"Berkane", "Sidi Slimane Echcharraa", "Madagh"}
    assert list(pd.read_csv(world.paths.permits).columns) == [
        "permit_id",
        "parcel_id",
        "status",
        "issued",
        "expires",
        "permitted_footprint_m2",
    ]
    for layer in ("buildings_epoch1", "buildings_epoch2"):
        assert {"building_id", "parcel_id", "case", "roof", "height_m"} <= set(
            buildings(world, layer.split("_")[1]).columns
        )
    assert set(buildings(world, "epoch2")["change"]) == {"new", "grown", "unchanged"}
    assert list(extensions(world).columns) == [
        "building_id",
        "parcel_id",
        "case",
        "roof",
        "height_m",
        "change",
        "geometry",
    ]


def test_orthophotos_are_tiled_rgb_geotiffs_in_utm_30n(world: World) -> None:
    for name, _ in world.epochs:
        with rasterio.open(world.paths.ortho(name)) as src:
            assert src.crs.to_epsg() == 32630
            assert (src.count, src.dtypes[0], src.nodata) == (3, "uint8", None)
            assert src.block_shapes[0] == (512, 512)
            assert src.compression.name.lower() == "deflate"
            assert src.res == pytest.approx((0.1, 0.1))
            assert tuple(src.bounds) == pytest.approx(world.bounds)
            assert src.read(1).std() > 10  # a picture, not a flat fill


def test_world_sits_at_berkane_and_reloads(world: World) -> None:
    assert world.crs == "EPSG:32630"
    assert world.bounds[0] == round(world.bounds[0]) and world.bounds[1] == round(world.bounds[1])
    assert world.aoi_lonlat.contains(Point(-2.2995, 34.9285))
    assert world.aoi_lonlat.contains(Point(world.home_lonlat))
    assert world.ground_elevation_m == pytest.approx(120.0)
    assert world.epochs == (("epoch1", EPOCH1), ("epoch2", EPOCH2))
    assert load_world(world.root) == world


def test_load_world_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="world.json"):
        load_world(tmp_path)


def test_a_too_small_world_is_an_input_error_naming_the_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="width_m/height_m: 100 m x 160 m is too small"):
        generate(tmp_path / "tiny", width_m=100, height_m=160)
    assert not (tmp_path / "tiny").exists()


def test_epoch2_holds_every_case_on_its_own_parcel(world: World) -> None:
    new = buildings(world, "epoch2").query("change == 'new'")
    cases = new.case.value_counts()
    assert {"permitted", "over_footprint", "expired_permit", "project"} <= set(cases.index)
    assert cases["unpermitted"] >= 2
    assert new.parcel_id.is_unique
    houses = new.query("case != 'project'")
    assert houses.area.between(80, 250).all()


def test_permits_match_the_cases(world: World) -> None:
    records = permits(world)
    new = buildings(world, "epoch2").query("change == 'new'").set_index("parcel_id")
    by_parcel = records.set_index("parcel_id")
    for parcel_id, b in new.iterrows():
        built_m2 = b.geometry.area
        if b.case in ("unpermitted", "project"):
            assert parcel_id not in by_parcel.index
            continue
        permit = by_parcel.loc[parcel_id]
        if b.case == "permitted":
            assert permit.issued.date() < EPOCH2 < permit.expires.date()
            assert permit.permitted_footprint_m2 >= built_m2
        elif b.case == "over_footprint":
            assert permit.issued.date() < EPOCH2 < permit.expires.date()
            assert built_m2 >= 1.5 * permit.permitted_footprint_m2
        elif b.case == "expired_permit":
            assert permit.expires.date() < EPOCH1
        else:
            assert b.case == "existing"
            assert permit.status == "completed"


def test_existing_buildings_stand_unchanged_in_both_epochs_but_the_extended(world: World) -> None:
    before = buildings(world, "epoch1").set_index("building_id")
    after = buildings(world, "epoch2").set_index("building_id").loc[before.index]
    assert (before.case == "existing").all() and len(before) >= 3
    grown = (after.change == "grown").to_numpy()
    assert list(after.index[grown]) == list(extensions(world).building_id)
    assert before[~grown].geometry.geom_equals_exact(after[~grown].geometry, tolerance=1e-9).all()
    annexes = extensions(world).set_index("building_id").geometry
    added = after[grown].geometry.difference(before[grown].geometry)
    assert (added.symmetric_difference(annexes.loc[added.index]).area < 1e-6).all()


# Pixels of the small seed-7 world's first epoch, recorded before extensions were planted.
EPOCH1_PIXELS_SHA256 = "683dc6510d9426d5f6258f6b8e3191e4bf05542a31cb38c6ccf7c406c3abd3de"


def test_extensions_leave_the_first_epoch_as_it_was(world: World) -> None:
    with rasterio.open(world.paths.ortho("epoch1")) as src:
        assert hashlib.sha256(src.read().tobytes()).hexdigest() == EPOCH1_PIXELS_SHA256


def test_the_second_epoch_changes_only_at_the_annexes_and_their_shadows() -> None:
    seed = 7
    layout = make_layout(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))), 200, 160
    )
    planted = plant_extensions(
        layout, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,)))
    )
    _, _, summer = SEASONS[1]
    with_annexes, without = (
        render(
            lay,
            summer,
            0.1,
            seed,
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, 1))),
        )
        for lay in (planted, layout)
    )
    changed = (with_annexes != without).any(axis=2)
    near = shapely.union_all(
        [
            _sweep(e.annex.footprint, summer.shadow_offset_m(e.annex.height_m)).buffer(0.5)
            for e in planted.extensions
        ]
    )
    transform = Affine(0.1, 0, 0, 0, -0.1, 160.0)
    inside = ~geometry_mask([near], out_shape=changed.shape, transform=transform)
    assert changed[inside].mean() > 0.5
    assert not changed[~inside].any()


def test_the_photo_finished_in_row_bands_equals_the_whole_image_finish() -> None:
    """Bands save memory only: blur, texture, light and haze give the whole-image bytes."""
    seed, (_, _, winter) = 7, SEASONS[0]
    layout = make_layout(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))),
                         200, 160)  # fmt: skip
    painter = EpochPainter(layout, winter, 0.1, seed, np.random.default_rng(seed))
    finished = painter.paint()  # painted; the finish runs as the bands are taken
    canvas, rng = painter.canvas, copy.deepcopy(painter.rng)
    rgb, rough = cv2.GaussianBlur(canvas.rgb, (0, 0), 0.6), canvas.rough.copy()
    bands = list(finished)
    assert len(bands) == 4 and canvas.height_px % BAND_ROWS  # the last band is a short one

    shape = rgb.shape[:2]
    grain = rng.standard_normal(shape, dtype=np.float32)
    clumps, patches = smooth_noise(rng, shape, 5), smooth_noise(rng, shape, 40)
    texture = 1.0 + rough * (0.6 * grain + 0.5 * clumps + 0.35 * patches)
    light = 1.0 + 0.025 * smooth_noise(rng, shape, 600)
    rgb *= (texture * light * winter.gain)[..., None]
    haze = winter.haze * (1.0 + 0.4 * smooth_noise(rng, shape, 900))
    rgb += (np.array((205.0, 205.0, 212.0), np.float32) - rgb) * haze[..., None]
    whole = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(np.concatenate([band for _, band in bands]), whole)
    assert [rows.start for rows, _ in bands] == list(range(0, canvas.height_px, BAND_ROWS))


def test_the_annex_rises_in_the_second_epochs_surface_model(world: World) -> None:
    (annex,) = extensions(world).itertuples()
    centre = [(annex.geometry.centroid.x, annex.geometry.centroid.y)]
    heights = {}
    for name in ("epoch1", "epoch2"):
        with rasterio.open(world.paths.dsm(name)) as src:
            heights[name] = float(next(src.sample(centre))[0])
    assert heights["epoch2"] - heights["epoch1"] == pytest.approx(annex.height_m, abs=0.6)


@pytest.mark.parametrize("seed", [7, 23, 41])
def test_extensions_are_rooms_on_the_back_of_standing_houses(seed: int) -> None:
    layout = make_layout(np.random.default_rng(seed), 500, 400)
    planted = plant_extensions(layout, np.random.default_rng(seed + 1))
    assert len(planted.extensions) == 3
    assert planted.buildings == layout.buildings and planted.parcels == layout.parcels
    houses = {b.building_id: b for b in layout.buildings}
    lots = {p.parcel_id: p.geometry for p in layout.parcels}
    for extension in planted.extensions:
        house, annex = houses[extension.building_id], extension.annex.footprint
        assert house.in_epoch1 and house.parcel_id == extension.parcel_id
        x0, y0, x1, y1 = annex.bounds
        assert 3.0 <= x1 - x0 <= 8.0 and annex.area >= 30.0
        assert y1 == house.footprint.bounds[1]  # against the back wall, not over the house
        assert annex.intersection(house.footprint).area == 0
        assert house.footprint.union(annex).geom_type == "Polygon"
        lot = lots[extension.parcel_id]
        assert lot.contains(annex) and y0 >= lot.bounds[1] + 2.0  # a passage behind it
        assert extension.roof in ("same", "fresh")
        if extension.roof == "same":
            assert extension.annex.colour == house.colour
        assert extension.annex.height_m <= house.height_m


def test_extension_permits_match_their_cases() -> None:
    """Over many towns every case turns up, and each parcel's permits say what it calls for."""
    seen = set()
    for seed in range(12):
        layout = make_layout(np.random.default_rng(seed), 500, 400)
        planted = plant_extensions(layout, np.random.default_rng(seed + 1))
        ids = [p.permit_id for p in planted.permits]
        assert len(set(ids)) == len(ids)
        for extension in planted.extensions:
            seen.add(extension.case)
            before = [p for p in layout.permits if p.parcel_id == extension.parcel_id]
            after = [p for p in planted.permits if p.parcel_id == extension.parcel_id]
            valid = [p for p in after if p.issued <= EPOCH2 <= p.expires and p.status == "active"]
            built_m2 = extension.annex.footprint.area + next(
                b.footprint.area for b in layout.buildings if b.building_id == extension.building_id
            )
            if extension.case == "unpermitted":
                assert after == []
                continue
            assert after[: len(before)] == before  # the house's own record stays
            (works,) = after[len(before) :]
            if extension.case == "expired_permit":
                assert valid == [] and works.issued > EPOCH2
            elif extension.case == "over_footprint":
                assert valid == [works] and built_m2 >= 1.3 * works.permitted_footprint_m2
            else:
                assert valid == [works] and works.permitted_footprint_m2 >= built_m2
    assert seen == set(EXTENSION_CASES)


def test_project_site_is_a_slab_only_in_epoch2(world: World) -> None:
    projects = gpd.read_file(world.paths.projects, layer="projects")
    project = projects.set_index("project_id").loc["PRJ-001"]
    assert (project.start, project.planned_end) == ("2025-09-01", "2026-12-31")
    parcels = gpd.read_file(world.paths.parcels).set_index("parcel_id")
    assert parcels.loc[project.parcel_id, "land_use"] == "project"
    structures = buildings(world, "epoch2").query("case == 'project'")
    assert list(structures.parcel_id) == [project.parcel_id]
    assert project.parcel_id not in set(buildings(world, "epoch1").parcel_id)


def test_health_truth_partitions_crop_parcels_into_three_classes(world: World) -> None:
    health = gpd.read_file(world.paths.truth, layer="health")
    assert set(health.health) == {"healthy", "stressed", "bare"}
    parcels = gpd.read_file(world.paths.parcels).set_index("parcel_id")
    uses = parcels.loc[health.parcel_id, "land_use"]
    assert set(uses) <= {"orchard", "vineyard", "cereal", "vegetables", "bare"}
    for parcel_id, zones in health.groupby("parcel_id"):
        assert zones.area.sum() == pytest.approx(parcels.loc[parcel_id].geometry.area, rel=1e-6)
        assert zones.union_all().area == pytest.approx(zones.area.sum(), rel=1e-6)


def test_greenhouses_are_not_buildings(world: World) -> None:
    greenhouses = gpd.read_file(world.paths.truth, layer="greenhouses")
    assert len(greenhouses) >= 2
    assert not greenhouses.union_all().intersects(buildings(world, "epoch2").union_all())


def mean_rgb(world: World, epoch: str, shapes) -> np.ndarray:
    with rasterio.open(world.paths.ortho(epoch)) as src:
        inside = ~geometry_mask(shapes, out_shape=src.shape, transform=src.transform)
        return src.read()[:, inside].mean(axis=1)


def test_crops_change_with_the_season_but_roofs_do_not(world: World) -> None:
    parcels = gpd.read_file(world.paths.parcels)
    cereal = parcels.query("land_use == 'cereal'").geometry.buffer(-3)
    roofs = buildings(world, "epoch1").geometry.buffer(-2.5, join_style="mitre")
    crop_change = np.abs(mean_rgb(world, "epoch2", cereal) - mean_rgb(world, "epoch1", cereal))
    roof_change = np.abs(mean_rgb(world, "epoch2", roofs) - mean_rgb(world, "epoch1", roofs))
    assert crop_change.max() > 60  # green winter wheat, golden summer stubble
    assert roof_change.max() < crop_change.max() / 2


def test_tree_truth_lists_crowns_where_they_are_painted_and_gaps_where_they_are_not(
    world: World,
) -> None:
    trees = gpd.read_file(world.paths.truth, layer="trees")
    orchard = trees.query("planting == 'orchard'")
    assert {"alive", "removed"} <= set(orchard.status)
    assert orchard.query("status == 'alive'").crown_radius_m.between(0.8, 2.0).all()
    with rasterio.open(world.paths.ortho("epoch2")) as src:
        points = zip(orchard.geometry.x, orchard.geometry.y, strict=True)
        rgb = np.stack(list(src.sample(points))).astype(float)
    excess_green = (2 * rgb[:, 1] - rgb[:, 0] - rgb[:, 2]) / rgb.sum(axis=1)
    alive = (orchard.status == "alive").to_numpy()
    assert excess_green[alive].min() > excess_green[~alive].max()
