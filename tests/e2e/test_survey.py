"""The whole survey flow on a small world: plan → fly (MAVLink) → ingest → mosaic → analyse →
publish, for two epochs, on the real Prefect engine."""

from __future__ import annotations

import json

import cv2
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window

import flows
from core.stages import STAGES_FILE
from gis.publish import list_layers
from models.change import MIN_COLOUR_CHANGE, MIN_HEIGHT_RISE_M
from pipeline.mosaic import validate_cog

pytestmark = pytest.mark.slow

REQUIRED_LAYERS = {"mission", "images", "crop_health_parcels", "buildings", "flagged_parcels"}


def test_every_epoch_publishes_the_required_layers(surveyed) -> None:
    for result in surveyed.epochs:
        assert REQUIRED_LAYERS <= set(list_layers(result.geopackage))
        images = gpd.read_file(result.geopackage, layer="images")
        assert len(images) == result.images > 20
        assert images.crs.to_epsg() == 32630


def test_crop_health_layers_zones_and_trend_are_published(surveyed) -> None:
    import flows
    from models.health_trend import read_history

    settings = surveyed.settings
    index = settings.health_index
    for number, result in enumerate(surveyed.epochs):
        for raster in ("crop_health.tif", flows.INDEX_RASTER):
            assert validate_cog(result.out_dir / raster), raster
        health = gpd.read_file(result.geopackage, layer="crop_health_parcels")
        assert health[f"{index}_mean"].notna().all()
        assert (health[f"{index}_p10"] <= health[f"{index}_p90"]).all()
        zones = gpd.read_file(result.geopackage, layer="management_zones")
        assert set(zones["zone"]) <= set(range(1, settings.management_zones + 1))
        assert set(zones["parcel_id"]) <= set(health["parcel_id"]) and len(zones) > len(health)
        assert (result.out_dir / "prescription.shp").exists()
        trend = gpd.read_file(result.geopackage, layer="parcel_trend")
        assert set(trend["parcel_id"]) == set(health["parcel_id"])
        if number == 0:
            assert (trend["status"] == "not comparable").all()
        else:
            assert (trend["date_before"] == surveyed.epochs[0].captured_on.isoformat()).any()
            assert (trend["status"] != "not comparable").any()
    history = read_history(settings.workspace / flows.HISTORY_GEOPACKAGE)
    assert history["date"].nunique() == len(surveyed.epochs)
    assert not history.duplicated(["index", "parcel_id", "date"]).any()


def test_orchard_trees_are_counted_close_to_the_planted_ones(surveyed) -> None:
    planted = gpd.read_file(surveyed.world.paths.truth, layer="trees")
    alive = planted[(planted["planting"] == "orchard") & (planted["status"] == "alive")]
    for result in surveyed.epochs:
        health = gpd.read_file(result.geopackage, layer="crop_health_parcels")
        orchards = health[health["tree_count"].notna()]
        assert not orchards.empty
        crowns = gpd.read_file(result.geopackage, layer="tree_crowns")
        assert set(crowns["parcel_id"]) <= set(orchards["parcel_id"])
        for parcel in orchards.itertuples():
            truth = alive.within(parcel.geometry).sum()
            assert truth > 20 and abs(parcel.tree_count - truth) <= 0.2 * truth, parcel.parcel_id
        assert gpd.read_file(result.geopackage, layer="missing_trees")["parcel_id"].notna().all()


def test_mosaics_are_valid_cogs_on_one_grid(surveyed) -> None:
    grids = []
    for result in surveyed.epochs:
        assert validate_cog(result.mosaic.path)
        with rasterio.open(result.mosaic.path) as src:
            grids.append((src.crs, src.transform, src.shape))
            assert src.overviews(1), "a COG has overviews"
    assert grids[0] == grids[1]


def _shift_m(a_path, b_path) -> float:
    """Phase-correlation shift (m) between the central 1024 px of two rasters on one grid."""
    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        assert (a.transform, a.shape) == (b.transform, b.shape)
        window = Window(a.width // 2 - 512, a.height // 2 - 512, 1024, 1024)
        (dx, dy), response = cv2.phaseCorrelate(
            a.read(2, window=window).astype(np.float32),
            b.read(2, window=window).astype(np.float32),
        )
        assert response > 0.1
        return float(np.hypot(dx, dy) * a.transform.a)


def test_mosaic_is_as_accurate_as_the_first_flights_gnss(surveyed) -> None:
    """Without ground control, absolute accuracy is the GNSS bias of the baseline flight
    (1-3 m in the simulator); the mosaic must add no error of its own to it."""
    first = surveyed.epochs[0]
    poses = pd.read_csv(first.out_dir / "frames" / "poses.csv")
    gnss_bias_m = np.hypot(
        (poses.reported_easting_m - poses.true_easting_m).mean(),
        (poses.reported_northing_m - poses.true_northing_m).mean(),
    )
    for result in surveyed.epochs:
        truth = surveyed.world.paths.ortho(result.epoch)
        assert abs(_shift_m(result.mosaic.path, truth) - gnss_bias_m) < 0.5


def test_epochs_are_coregistered_to_each_other(surveyed) -> None:
    first, last = surveyed.epochs
    assert _shift_m(first.mosaic.path, last.mosaic.path) < 0.3


def test_baseline_epoch_raises_no_construction_flag(surveyed) -> None:
    first = surveyed.epochs[0]
    assert first.flags == 0
    assert gpd.read_file(first.geopackage, layer="flagged_parcels").empty


def test_new_unpermitted_buildings_are_flagged_with_record_links(surveyed) -> None:
    last = surveyed.epochs[-1]
    flagged = gpd.read_file(last.geopackage, layer="flagged_parcels")
    truth = gpd.read_file(surveyed.world.paths.truth, layer="buildings_epoch2")
    unpermitted = set(truth.loc[truth["case"] == "unpermitted", "parcel_id"])
    flagged_no_permit = set(flagged.loc[flagged["reason"] == "no_permit", "parcel_id"])
    assert unpermitted & flagged_no_permit, "an unpermitted new house is flagged"
    assert (flagged.loc[flagged["parcel_id"].isna(), "reason"] == "off_cadastre").all()
    assert flagged["record_url"].str.startswith("https://").all()
    with_permit = flagged[flagged["permit_id"].notna()]
    assert not with_permit.empty, "an expired or exceeded permit is flagged"
    for row in with_permit.itertuples():
        assert row.record_url == f"https://rokhas.example/permits/{row.permit_id}"
    permitted = set(truth.loc[truth["case"] == "permitted", "parcel_id"])
    assert not permitted & flagged_no_permit, "a parcel with a valid permit is not 'no permit'"


def test_flags_carry_before_after_evidence_chips(surveyed) -> None:
    last = surveyed.epochs[-1]
    flagged = gpd.read_file(last.geopackage, layer="flagged_parcels")
    assert not flagged.empty
    for path in flagged["evidence"]:
        chip = cv2.imread(path)
        assert chip is not None and min(chip.shape[:2]) >= 256
        half = chip.shape[1] // 2  # before | after, on one grid: the new structure differs
        before, after = chip[:, : half - 4].astype(int), chip[:, half + 4 : 2 * half].astype(int)
        assert np.abs(before - after[:, : before.shape[1]]).mean() > 5


def test_the_public_project_is_tracked_epoch_by_epoch_with_dated_photos(surveyed) -> None:
    first, last = surveyed.epochs
    status = [
        gpd.read_file(result.geopackage, layer="projects").set_index("project_id").loc["PRJ-001"]
        for result in (first, last)
    ]
    assert status[1]["progress"] > status[0]["progress"]
    assert all(s["status"] in {"stalled", "on track"} for s in status)
    assert all(s["record_url"].endswith("/PRJ-001") for s in status)
    if status[0]["status"] == "stalled":
        assert status[0]["explanation"]
    archive = surveyed.settings.workspace / flows.PROJECT_ARCHIVE / "PRJ-001"
    for result in (first, last):
        assert (archive / f"{result.captured_on.isoformat()}.png").is_file()


def test_each_epoch_is_detected_with_its_surface_model(surveyed) -> None:
    """The DSM given to the survey is kept in its epoch folder and listed in the manifest, and
    confirms the annex roofed in its house's colour: a change only its height shows."""
    manifest = flows.read_manifest(surveyed.settings.workspace)
    for result in surveyed.epochs:
        kept = result.out_dir / flows.EPOCH_DSM
        assert result.dsm == kept and manifest[result.epoch]["dsm"] == str(kept)
        stages = json.loads((result.out_dir / STAGES_FILE).read_text(encoding="utf-8"))
        assert flows.EPOCH_DSM in stages["dsm"]["outputs"], "copied once, resumable"
        with (
            rasterio.open(kept) as copy,
            rasterio.open(surveyed.world.paths.dsm(result.epoch)) as dsm,
        ):
            assert (copy.crs, copy.transform) == (dsm.crs, dsm.transform)
            assert np.array_equal(copy.read(1), dsm.read(1))
    last = surveyed.epochs[-1]
    changed = gpd.read_file(last.geopackage, layer="new_buildings")
    annexes = gpd.read_file(surveyed.world.paths.truth, layer="extensions")
    same_colour = annexes[annexes["roof"] == "same"].to_crs(changed.crs)
    assert not same_colour.empty, "the small world has an annex in its house's colours"
    grown = changed[(changed["change"] == "grown") & changed.intersects(same_colour.union_all())]
    assert len(grown) == 1 and grown["height_rise_m"].iloc[0] >= MIN_HEIGHT_RISE_M
    assert grown["colour_change"].iloc[0] < MIN_COLOUR_CHANGE, "colour alone would drop it"
    flagged = gpd.read_file(last.geopackage, layer="flagged_parcels")
    assert set(same_colour["parcel_id"]) <= set(flagged["parcel_id"])
