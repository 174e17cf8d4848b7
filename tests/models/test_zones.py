"""Management zones on seeded synthetic index rasters whose vigour zones are known."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from models.zones import (
    MMU_HA,
    SHAPEFILE_FIELDS,
    smooth_classes,
    write_prescription,
    zones_of_parcels,
)

CRS = "EPSG:32630"
GSD_M = 0.25
LEFT_M, TOP_M = 600_000.0, 3_870_000.0
PARCEL_LEFT_M = LEFT_M + 10.1  # off the pixel grid: the parcel's edge cuts pixels
PARCEL_TOP_M = TOP_M - 10.1
PARCEL_HEIGHT_M = 45.0
OUTSIDE_VALUE = 0.95
"""The index around the parcel (a neighbour's lush field): must not leak into its zones."""


@dataclass(frozen=True)
class Field:
    """An index raster with one parcel of known vigour bands (west to east, rising vigour)."""

    raster: Path
    parcel: shapely.Polygon
    bands: tuple[shapely.Polygon, ...]
    island: Point
    """Centre of a 3 m x 3 m high-vigour patch in the lowest band, far below the MMU."""

    def parcels(self, *extra: shapely.Polygon) -> gpd.GeoDataFrame:
        geometries = [self.parcel, *extra]
        ids = [f"P{k}" for k in range(len(geometries))]
        return gpd.GeoDataFrame({"parcel_id": ids}, geometry=geometries, crs=CRS)


def vigour_field(
    path: Path,
    *,
    widths_m: Sequence[float] = (20.0, 20.0, 20.0),
    values: Sequence[float] = (0.3, 0.5, 0.7),
    gsd_m: float = GSD_M,
    seed: int = 0,
) -> Field:
    """Bands of ``values`` (NDVI), ``widths_m`` wide, with Gaussian noise, 5% salt and pepper,
    a nan hole and a small island, written at ``gsd_m`` with a 10 m margin around the parcel."""
    rng = np.random.default_rng(seed)
    width_px = round((sum(widths_m) + 20.2) / gsd_m)
    height_px = round((PARCEL_HEIGHT_M + 20.2) / gsd_m)
    x = LEFT_M + (np.arange(width_px) + 0.5) * gsd_m
    y = TOP_M - (np.arange(height_px) + 0.5) * gsd_m
    xx, yy = np.meshgrid(x, y)
    index = np.full((height_px, width_px), OUTSIDE_VALUE, np.float32)
    bands = []
    left = PARCEL_LEFT_M
    for width, value in zip(widths_m, values, strict=True):
        band = box(left, PARCEL_TOP_M - PARCEL_HEIGHT_M, left + width, PARCEL_TOP_M)
        index[
            (xx >= left) & (xx < left + width) & (yy > band.bounds[1]) & (yy < band.bounds[3])
        ] = value
        bands.append(band)
        left += width
    index += rng.normal(0, 0.05, index.shape).astype(np.float32)
    speckle = rng.random(index.shape) < 0.05
    index[speckle] = rng.uniform(0.0, 1.0, speckle.sum())
    island = Point(PARCEL_LEFT_M + 6, PARCEL_TOP_M - 20)
    index[(abs(xx - island.x) < 1.5) & (abs(yy - island.y) < 1.5)] = values[-1]
    index[(abs(xx - bands[1].centroid.x) < 0.5) & (abs(yy - bands[1].centroid.y) < 0.5)] = np.nan
    write_ndvi(path, index, gsd_m)
    parcel = box(PARCEL_LEFT_M, PARCEL_TOP_M - PARCEL_HEIGHT_M, left, PARCEL_TOP_M)
    return Field(path, parcel, tuple(bands), island)


def write_ndvi(path: Path, index: np.ndarray, gsd_m: float) -> Path:
    """A float32 NDVI GeoTIFF (nodata nan) with its top-left corner at (LEFT_M, TOP_M)."""
    height, width = index.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "crs": CRS}
    transform = from_origin(LEFT_M, TOP_M, gsd_m, gsd_m)
    with rasterio.open(
        path, "w", **profile, dtype="float32", transform=transform, nodata=np.nan
    ) as dst:
        dst.write(index.astype(np.float32), 1)
        dst.set_band_description(1, "ndvi")
    return path


def iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    return a.intersection(b).area / a.union(b).area


def zone_union(zones: gpd.GeoDataFrame, rank: int) -> shapely.Geometry:
    return shapely.union_all(zones.geometry[zones["zone"] == rank].to_numpy())


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Field:
    return vigour_field(tmp_path_factory.mktemp("zones") / "ndvi.tif")


@pytest.mark.parametrize("method", ["quantile", "kmeans"])
def test_three_vigour_bands_are_recovered_lowest_first(field: Field, method: str) -> None:
    zoning = zones_of_parcels(field.raster, field.parcels(), method=method)
    zones = zoning.zones
    assert zoning.notes == ()
    for rank, band in enumerate(field.bands, start=1):
        assert iou(zone_union(zones, rank), band) >= 0.9, rank
    means = zones.groupby("zone")["index_mean"].mean()
    assert means.is_monotonic_increasing and list(means.index) == [1, 2, 3]
    assert set(zones["index"]) == {"ndvi"}


def test_five_bands_give_five_zones(tmp_path: Path) -> None:
    field = vigour_field(
        tmp_path / "ndvi.tif", widths_m=(20.0,) * 5, values=(0.2, 0.35, 0.5, 0.65, 0.8)
    )
    zones = zones_of_parcels(field.raster, field.parcels(), n_zones=5).zones
    for rank, band in enumerate(field.bands, start=1):
        assert iou(zone_union(zones, rank), band) >= 0.9, rank


def test_zones_do_not_depend_on_the_gsd(field: Field, tmp_path: Path) -> None:
    fine = vigour_field(tmp_path / "ndvi_3cm.tif", gsd_m=0.03, seed=1)
    at_3cm = zones_of_parcels(fine.raster, fine.parcels()).zones
    at_25cm = zones_of_parcels(field.raster, field.parcels()).zones
    native = zones_of_parcels(field.raster, field.parcels(), cell_m=0.0).zones
    for rank in (1, 2, 3):
        assert iou(zone_union(at_3cm, rank), zone_union(at_25cm, rank)) >= 0.95
        assert iou(zone_union(native, rank), zone_union(at_25cm, rank)) >= 0.95


def test_kmeans_follows_unequal_bands_where_quantiles_cannot(tmp_path: Path) -> None:
    field = vigour_field(tmp_path / "ndvi.tif", widths_m=(12.0, 18.0, 40.0))
    kmeans = zones_of_parcels(field.raster, field.parcels(), method="kmeans").zones
    quantile = zones_of_parcels(field.raster, field.parcels(), method="quantile").zones
    assert min(iou(zone_union(kmeans, r), b) for r, b in enumerate(field.bands, 1)) >= 0.9
    assert min(iou(zone_union(quantile, r), b) for r, b in enumerate(field.bands, 1)) < 0.8


def test_every_zone_polygon_is_at_least_the_mmu_and_the_island_is_merged(field: Field) -> None:
    zones = zones_of_parcels(field.raster, field.parcels(), mmu_ha=MMU_HA).zones
    assert (zones["area_ha"] >= MMU_HA).all(), zones["area_ha"].min()
    assert np.allclose(zones["area_ha"], zones.area / 10_000)
    at_island = zones[zones.intersects(field.island)]
    assert list(at_island["zone"]) == [1]


@pytest.mark.parametrize("method", ["quantile", "kmeans"])
def test_patchy_vigour_gives_no_polygon_below_the_mmu(tmp_path: Path, method: str) -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1.0, (160, 240)).astype(np.float32)
    patches = cv2.GaussianBlur(noise, (0, 0), 24)  # blobs of ~12 m at 0.5 m
    index = 0.5 + 0.1 * patches / patches.std() + rng.normal(0, 0.02, patches.shape)
    raster = write_ndvi(tmp_path / "patchy.tif", index, 0.5)
    parcel = box(LEFT_M + 5.1, TOP_M - 75.3, LEFT_M + 114.7, TOP_M - 4.9)
    parcels = gpd.GeoDataFrame({"parcel_id": ["P"]}, geometry=[parcel], crs=CRS)
    zoning = zones_of_parcels(raster, parcels, n_zones=5, method=method)
    zones = zoning.zones
    assert set(zones["zone"]) == {1, 2, 3, 4, 5} and zoning.notes == ()
    assert (zones.area >= MMU_HA * 10_000).all(), zones.area.min()
    assert zones.area.sum() == pytest.approx(parcel.area, rel=1e-9)


def test_zones_cover_the_parcel_exactly(field: Field) -> None:
    zones = zones_of_parcels(field.raster, field.parcels()).zones
    covered = shapely.union_all(zones.geometry.to_numpy())
    assert zones["area_ha"].sum() * 10_000 == pytest.approx(field.parcel.area, rel=1e-9)
    assert covered.symmetric_difference(field.parcel).area < 1e-6
    overlaps = sum(
        a.intersection(b).area
        for i, a in enumerate(zones.geometry)
        for b in zones.geometry[i + 1 :]
    )
    assert overlaps < 1e-6


def test_parcels_in_another_crs_get_the_same_zones_in_their_crs(field: Field) -> None:
    utm = zones_of_parcels(field.raster, field.parcels()).zones
    lonlat = zones_of_parcels(field.raster, field.parcels().to_crs("EPSG:4326")).zones
    assert lonlat.crs == "EPSG:4326"
    back = lonlat.to_crs(CRS)
    for rank in (1, 2, 3):
        assert iou(zone_union(back, rank), zone_union(utm, rank)) > 0.999
    assert lonlat["area_ha"].sum() == pytest.approx(utm["area_ha"].sum(), rel=1e-6)


def test_a_parcel_outside_the_raster_is_noted_and_the_others_zoned(field: Field) -> None:
    far = box(LEFT_M + 5000, TOP_M - 100, LEFT_M + 5100, TOP_M)
    zoning = zones_of_parcels(field.raster, field.parcels(far))
    assert [(n.parcel_id, n.note) for n in zoning.notes] == [("P1", "outside the index raster")]
    assert set(zoning.zones["parcel_id"]) == {"P0"}


def test_a_parcel_half_outside_is_zoned_on_its_imaged_half(field: Field) -> None:
    west, _, _, top = field.parcel.bounds
    straddling = box(west - 40, top - 30, west + 20, top)  # 30 of its 60 m on the raster
    zoning = zones_of_parcels(field.raster, field.parcels(straddling))
    notes = [n.note for n in zoning.notes if n.parcel_id == "P1"]
    assert len(notes) == 1 and "inside the index raster" in notes[0], notes
    zoned = zoning.zones[zoning.zones["parcel_id"] == "P1"]
    with rasterio.open(field.raster) as src:
        imaged = straddling.intersection(box(*src.bounds))
    assert zoned["area_ha"].sum() * 10_000 == pytest.approx(imaged.area, rel=1e-9)


def test_a_parcel_smaller_than_the_mmu_is_one_middle_zone(field: Field) -> None:
    small = box(PARCEL_LEFT_M + 1, PARCEL_TOP_M - 21, PARCEL_LEFT_M + 21, PARCEL_TOP_M - 1)
    # 400 m2 < 500 m2, across the island and the low band
    zoning = zones_of_parcels(field.raster, field.parcels(small), n_zones=5)
    zoned = zoning.zones[zoning.zones["parcel_id"] == "P1"]
    assert list(zoned["zone"]) == [3]
    assert zoned.geometry.iloc[0].equals(small)
    assert 0.3 < zoned["index_mean"].iloc[0] < 0.45  # low band, raised by the island


def test_rates_are_mapped_by_zone_class_and_empty_by_default(field: Field) -> None:
    plain = zones_of_parcels(field.raster, field.parcels()).zones
    assert plain["rate"].isna().all()
    rates = {1: 120.0, 3: 60.0}
    zones = zones_of_parcels(field.raster, field.parcels(), rates=rates).zones
    expected = zones["zone"].map(rates)
    assert zones["rate"].equals(expected.astype(float))
    assert zones["rate"].isna().sum() == (zones["zone"] == 2).sum() > 0


def test_prescription_is_a_gpkg_and_a_shapefile_with_the_documented_fields(
    field: Field, tmp_path: Path
) -> None:
    zones = zones_of_parcels(
        field.raster, field.parcels(), rates={1: 120.0, 2: 90.0, 3: 60.0}
    ).zones
    gpkg, shp = write_prescription(zones, tmp_path / "out" / "prescription")
    assert (gpkg.name, shp.name) == ("prescription.gpkg", "prescription.shp")
    with sqlite3.connect(gpkg) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (10300,)  # GeoPackage 1.3
    info = pyogrio.read_info(shp)
    assert list(info["fields"]) == list(SHAPEFILE_FIELDS.values())
    assert all(len(name) <= 10 for name in info["fields"])
    assert shp.with_suffix(".prj").exists() and shp.with_suffix(".cpg").exists()
    read = pyogrio.read_dataframe(shp)
    assert read.crs == "EPSG:4326"
    assert read["RATE"].tolist() == zones["rate"].tolist()
    assert read["ZONE"].tolist() == zones["zone"].tolist()
    assert read.to_crs(CRS).area.sum() == pytest.approx(field.parcel.area, rel=1e-6)
    assert sorted(p.name for p in shp.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("gsd_m", [0.03, 0.5])
def test_majority_filter_removes_specks_at_any_gsd(gsd_m: float) -> None:
    size = round(30 / gsd_m)  # 30 m square
    classes = np.ones((size, size), np.uint8)
    classes[:, size // 2 :] = 2
    speck = max(1, round(0.5 / gsd_m))  # 0.5 m specks
    classes[size // 4 : size // 4 + speck, size // 4 : size // 4 + speck] = 2
    classes[size // 4 : size // 4 + speck, 3 * size // 4 : 3 * size // 4 + speck] = 1
    smoothed = smooth_classes(classes, pixel_size_m=gsd_m, kernel_m=3.0)
    expected = np.ones_like(classes)
    expected[:, size // 2 :] = 2
    assert np.array_equal(smoothed, expected)


def test_majority_filter_leaves_nodata_and_a_lone_class_alone() -> None:
    classes = np.zeros((40, 40), np.uint8)
    classes[10:30, 10:30] = 3
    classes[20, 20] = 1
    smoothed = smooth_classes(classes, pixel_size_m=0.5, kernel_m=2.0)
    assert (smoothed[classes == 0] == 0).all()
    assert (smoothed[10:30, 10:30] == 3).all()


@pytest.mark.parametrize("method", ["quantile", "kmeans"])
def test_an_even_parcel_is_one_middle_zone(tmp_path: Path, method: str) -> None:
    raster = write_ndvi(tmp_path / "even.tif", np.full((120, 200), 0.6), 0.5)
    parcel = box(LEFT_M + 5.1, TOP_M - 55.1, LEFT_M + 95.1, TOP_M - 5.1)
    parcels = gpd.GeoDataFrame({"parcel_id": ["P"]}, geometry=[parcel], crs=CRS)
    zones = zones_of_parcels(raster, parcels, n_zones=5, method=method).zones
    assert zones["zone"].tolist() == [3]
    assert zones["index_mean"].iloc[0] == pytest.approx(0.6)
