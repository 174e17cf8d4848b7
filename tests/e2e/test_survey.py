"""The whole survey flow on a small world: plan → fly (MAVLink) → ingest → mosaic → analyse →
publish, for two epochs, on the real Prefect engine."""

from __future__ import annotations

import cv2
import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from gis.publish import list_layers
from pipeline.mosaic import validate_cog

pytestmark = pytest.mark.slow

REQUIRED_LAYERS = {"mission", "images", "crop_health_parcels", "buildings", "flagged_parcels"}


def test_every_epoch_publishes_the_required_layers(surveyed) -> None:
    for result in surveyed.epochs:
        assert REQUIRED_LAYERS <= set(list_layers(result.geopackage))
        images = gpd.read_file(result.geopackage, layer="images")
        assert len(images) == result.images > 20
        assert images.crs.to_epsg() == 32630


def test_mosaics_are_valid_cogs_on_one_grid(surveyed) -> None:
    grids = []
    for result in surveyed.epochs:
        assert validate_cog(result.mosaic.path)
        with rasterio.open(result.mosaic.path) as src:
            grids.append((src.crs, src.transform, src.shape))
            assert src.overviews(1), "a COG has overviews"
    assert grids[0] == grids[1]


def test_mosaic_lands_on_the_truth_orthophoto(surveyed) -> None:
    """Phase correlation between the mosaic and the truth ortho: sub-metre shift."""
    result = surveyed.epochs[-1]
    with rasterio.open(result.mosaic.path) as mosaic, rasterio.open(
        surveyed.world.paths.ortho(result.epoch)
    ) as truth:
        assert (mosaic.transform, mosaic.shape) == (truth.transform, truth.shape)
        window = Window(mosaic.width // 2 - 512, mosaic.height // 2 - 512, 1024, 1024)
        ours = mosaic.read(2, window=window).astype(np.float32)
        theirs = truth.read(2, window=window).astype(np.float32)
    (dx, dy), response = cv2.phaseCorrelate(ours, theirs)
    assert response > 0.2
    assert np.hypot(dx, dy) * result.mosaic.transform.a < 0.5


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
    assert flagged["parcel_id"].notna().all()
    assert flagged["record_url"].str.startswith("https://").all()
    with_permit = flagged[flagged["permit_id"].notna()]
    assert not with_permit.empty, "an expired or exceeded permit is flagged"
    for row in with_permit.itertuples():
        assert row.record_url == f"https://rokhas.example/permits/{row.permit_id}"
    permitted = set(truth.loc[truth["case"] == "permitted", "parcel_id"])
    assert not permitted & flagged_no_permit, "a parcel with a valid permit is not 'no permit'"
