"""`raqib health` on a user's orthophoto: the simulator's in its UTM and in lon/lat agree, a
uint16 multispectral copy gives NDVI zones, the real WebODM orthophoto runs; bad input is one
line and exit 2."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from byo_images import multispectral_copy, reprojected, run

from models.crop_health import HEALTH_CLASSES


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, world_copy):
    return world_copy(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)


@pytest.fixture(scope="module")
def lonlat_ortho(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lonlat") / "ortho_4326.tif"
    return reprojected(world.paths.ortho("epoch1"), out, "EPSG:4326")


def health_of(image: Path, out: Path, parcels: Path, capsys, *extra: str) -> gpd.GeoDataFrame:
    code, stdout, stderr = run("health", image, "-o", out, "--parcels", parcels, *extra,
                               capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    assert stdout.startswith(f"{out}: 17 parcels, ") and len(stdout.splitlines()) == 1
    return gpd.read_file(out, layer="health_parcels")


@pytest.mark.slow
def test_utm_and_lon_lat_copies_agree(world, lonlat_ortho, tmp_path: Path, capsys) -> None:
    utm = health_of(world.paths.ortho("epoch1"), tmp_path / "utm.gpkg", world.paths.parcels,
                    capsys)  # fmt: skip
    lonlat = health_of(lonlat_ortho, tmp_path / "ll.gpkg", world.paths.parcels, capsys)
    assert utm.crs == world.crs and lonlat.crs == "EPSG:4326"
    shares = [f"{name}_pct" for name in HEALTH_CLASSES]
    both = utm.merge(lonlat.drop(columns="geometry"), on="parcel_id", suffixes=("", "_ll"))
    farmed = both[both["classified_m2"] > 500]
    assert len(farmed) >= 8
    for column in shares:  # the lon/lat copy was resampled twice: parcels' edges move
        difference = np.abs(farmed[column] - farmed[f"{column}_ll"])
        assert difference.median() < 3 and difference.max() < 20, column
    assert (farmed["dominant"] == farmed["dominant_ll"]).mean() >= 0.85
    assert np.abs(farmed["gli_mean"] - farmed["gli_mean_ll"]).max() < 0.02
    # classes against the simulator's health truth, in both CRSs
    truth = gpd.read_file(world.paths.truth, layer="health")
    for name in ("utm", "ll"):
        with rasterio.open(tmp_path / f"{name}_classes.tif") as src:
            assert src.crs == (world.crs if name == "utm" else "EPSG:4326")
            assert src.tags()["classes"] == ",".join(HEALTH_CLASSES)
        zones = gpd.read_file(tmp_path / f"{name}.gpkg", layer="health_zones")
        assert set(zones["zone"]) == {1, 2, 3}
        assert zones.crs == (utm.crs if name == "utm" else lonlat.crs)
    assert _agreement(tmp_path / "utm_classes.tif", truth) > 0.7
    assert _agreement(tmp_path / "ll_classes.tif", truth) > 0.7


def _agreement(classes: Path, truth: gpd.GeoDataFrame) -> float:
    """Share of truth polygons' area (sampled at their representative points' neighbourhoods)
    classified as the truth says: read at points inside each polygon."""
    with rasterio.open(classes) as src:
        truth = truth.to_crs(src.crs)
        points = truth.geometry.sample_points(40, rng=0).explode(index_parts=True)
        codes = np.array([v[0] for v in src.sample(zip(points.x, points.y, strict=True))])
    expected = truth["health"].map({n: i + 1 for i, n in enumerate(HEALTH_CLASSES)})
    expected = expected.loc[points.index.get_level_values(0)].to_numpy()
    classified = codes > 0
    return float((codes[classified] == expected[classified]).mean())


def test_multispectral_uint16_with_named_bands_gives_ndvi_zones(world, tmp_path: Path,
                                                                capsys) -> None:  # fmt: skip
    image = multispectral_copy(world.paths.ortho("epoch1"), tmp_path / "ms.tif")
    code, _, stderr = run("health", image, "-o", tmp_path / "x.gpkg", capsys=capsys)
    assert code == 2 and "unsupported band layout" in stderr and "--bands" in stderr
    stats = health_of(image, tmp_path / "ms.gpkg", world.paths.parcels, capsys,
                      "--bands", "nir=1,red=2,green=3,blue=4")  # fmt: skip
    assert "ndvi_mean" in stats and stats["ndvi_mean"].notna().sum() == 17
    assert (tmp_path / "ms_ndvi.tif").exists() and (tmp_path / "ms_classes.tif").exists()
    zones = gpd.read_file(tmp_path / "ms.gpkg", layer="health_zones")
    assert set(zones["index"]) == {"ndvi"}


def test_the_real_webodm_orthophoto_runs(shared_data: Path, tmp_path: Path, capsys) -> None:
    ortho = shared_data / "orthophotos" / "webodm_orthophoto.tif"
    code, stdout, stderr = run("health", ortho, "-o", tmp_path / "odm.gpkg", capsys=capsys)
    assert code == 0, stderr
    assert "1 parcels" in stdout
    layers = dict(pyogrio.list_layers(tmp_path / "odm.gpkg"))
    assert set(layers) == {"health_parcels", "health_zones"}
    stats = gpd.read_file(tmp_path / "odm.gpkg", layer="health_parcels")
    assert stats.crs == "EPSG:32615"
    assert stats[[f"{n}_pct" for n in HEALTH_CLASSES]].sum(axis=1).iloc[0] == pytest.approx(100)
    with rasterio.open(tmp_path / "odm_classes.tif") as src:
        assert src.crs == "EPSG:32615" and src.res == pytest.approx((0.4, 0.4))


def test_a_model_that_is_not_for_health_is_refused(world, tmp_path: Path, capsys) -> None:
    from models.training import DEFAULT_BUILDINGS_MODEL

    code, _, stderr = run("health", world.paths.ortho("epoch1"), "-o", tmp_path / "x.gpkg",
                          "--model", DEFAULT_BUILDINGS_MODEL, capsys=capsys)  # fmt: skip
    assert code == 2 and "not a crop health model" in stderr
    assert not (tmp_path / "x.gpkg").exists()
