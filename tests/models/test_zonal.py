import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import LineString, Polygon, box

from core.errors import InputError
from models import zonal
from models.zonal import coverage_fractions, parcel_statistics, weighted_quantiles

CRS = "EPSG:32630"
PIXEL_M = 0.5
WIDTH, HEIGHT = 150, 120
X0, Y0 = 600000.0, 3870000.0
TRANSFORM = from_origin(X0, Y0, PIXEL_M, PIXEL_M)
EXACTEXTRACT_OPS = {
    "count": ("count", "count"),
    "area_m2": ("area_m2=count(coverage_weight=area_cartesian)", "area_m2"),
    "mean": ("mean", "mean"),
    "median": ("median", "median"),
    "p10": ("quantile(q=0.1)", "quantile_10"),
    "p90": ("quantile(q=0.9)", "quantile_90"),
}
"""Our statistic -> exactextract's operation and the column it writes."""


def _write_raster(path, *, nodata: float = math.nan, seed: int = 0) -> None:
    """A seeded NDVI-like float32 raster with nodata pixels and a block of repeated values."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-0.2, 0.9, (HEIGHT, WIDTH)).astype(np.float32)
    values[20:50, 30:60] = np.round(values[20:50, 30:60] * 4) / 4  # many equal values
    values[rng.random(values.shape) < 0.05] = nodata
    values[90:, 100:] = nodata  # a corner of the mosaic with no data
    profile = {
        "driver": "GTiff",
        "width": WIDTH,
        "height": HEIGHT,
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": TRANSFORM,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
        dst.set_band_description(1, "ndvi")


def _star(rng: np.random.Generator, cx: float, cy: float, radius_m: float, n: int) -> Polygon:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius_m * rng.uniform(0.4, 1.0, n)
    ring = Polygon(np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
    return shapely.make_valid(ring, method="structure", keep_collapsed=False)


def _random_parcels(seed: int, n: int = 60) -> gpd.GeoDataFrame:
    """Seeded parcels: star shapes, some with holes, some multi-part, some over the raster
    edge, slivers thinner than a pixel, one inside a single pixel, one off the raster."""
    rng = np.random.default_rng(seed)
    width_m, height_m = WIDTH * PIXEL_M, HEIGHT * PIXEL_M
    parcels = []
    for k in range(n):
        cx = X0 + rng.uniform(-5, width_m + 5)
        cy = Y0 - rng.uniform(-5, height_m + 5)
        parcel = _star(rng, cx, cy, rng.uniform(1, 15), int(rng.integers(3, 25)))
        if k % 3 == 0:
            parcel = parcel.difference(_star(rng, cx, cy, rng.uniform(0.3, 0.5) * 8, 7))
        if k % 4 == 0:
            parcel = parcel.union(_star(rng, cx + 25, cy - 5, 3, 6))
        if not parcel.is_empty:
            parcels.append(parcel)
    for k in range(5):
        x, y = X0 + rng.uniform(5, 60), Y0 - rng.uniform(5, 50)
        parcels.append(LineString([(x, y), (x + 12, y - 7 - k)]).buffer(0.01 + 0.02 * k))
    parcels.append(box(X0 + 10.1, Y0 - 10.4, X0 + 10.3, Y0 - 10.2))  # inside one pixel
    parcels.append(box(X0 - 30, Y0 - 20, X0 + 20, Y0 + 30))  # over the north-west corner
    parcels.append(box(X0 + 20, Y0 - 20, X0 + 30.5, Y0 - 10))  # edges on grid lines
    parcels.append(box(X0 + 500, Y0 - 20, X0 + 510, Y0 - 10))  # off the raster
    ids = [f"P{k:03d}" for k in range(len(parcels))]
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=parcels, crs=CRS)


def _exactextract(raster_path, parcels: gpd.GeoDataFrame, band: str = "ndvi") -> dict:
    """exactextract's statistics, named as ours (it cannot read empty geometries)."""
    ops = [op for op, _ in EXACTEXTRACT_OPS.values()]
    table = exact_extract(str(raster_path), parcels, ops, output="pandas")
    return {
        f"{band}_{stat}": table[column].to_numpy(dtype=float)
        for stat, (_, column) in EXACTEXTRACT_OPS.items()
    }


def _assert_equal_to_exactextract(ours, theirs, band: str = "ndvi") -> None:
    empty = ours[f"{band}_count"].to_numpy() == 0
    for stat in zonal.STATISTICS:
        column = f"{band}_{stat}"
        mine, reference = ours[column].to_numpy(), theirs[column]
        if stat in ("count", "area_m2"):
            np.testing.assert_allclose(mine, reference, rtol=1e-6, atol=1e-9, err_msg=column)
        else:
            assert np.isnan(mine[empty]).all(), column
            np.testing.assert_allclose(mine[~empty], reference[~empty], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def raster_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("zonal") / "ndvi.tif"
    _write_raster(path)
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_statistics_equal_exactextracts_on_seeded_parcels(raster_path, seed):
    parcels = _random_parcels(seed)
    result = parcel_statistics(raster_path, parcels)
    assert result.repaired == ()
    assert list(result.table["parcel_id"]) == list(parcels["parcel_id"])
    assert (result.table["ndvi_count"] > 0).sum() > 40
    _assert_equal_to_exactextract(result.table, _exactextract(raster_path, parcels))


def test_statistics_equal_exactextracts_with_a_nodata_value_and_row_chunks(tmp_path, monkeypatch):
    path = tmp_path / "nodata.tif"
    _write_raster(path, nodata=-9999.0, seed=4)
    monkeypatch.setattr(zonal, "CHUNK_CELLS", 64)  # windows of a row or two
    parcels = _random_parcels(5)
    result = parcel_statistics(path, parcels)
    _assert_equal_to_exactextract(result.table, _exactextract(path, parcels))


def test_a_parcel_off_the_raster_or_without_geometry_has_no_statistics(raster_path):
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["off", "none"]}, geometry=[box(0, 0, 1, 1), None], crs=CRS
    )
    table = parcel_statistics(raster_path, parcels).table
    assert (table["ndvi_count"] == 0).all() and (table["ndvi_area_m2"] == 0).all()
    assert table[["ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90"]].isna().all().all()


def test_parcels_in_another_crs_are_reprojected_to_the_rasters(raster_path):
    # Stars and slivers only: a box on grid lines comes back from lon/lat with nanometre
    # slivers over the next pixels, where rounding decides what counts (see models.zonal).
    parcels = _random_parcels(6, n=20).iloc[:-4]
    in_lonlat = parcels.to_crs("EPSG:4326")
    ours = parcel_statistics(raster_path, in_lonlat).table
    _assert_equal_to_exactextract(ours, _exactextract(raster_path, in_lonlat.to_crs(CRS)))
    in_utm = parcel_statistics(raster_path, parcels).table
    for column in ("ndvi_count", "ndvi_area_m2", "ndvi_mean"):
        np.testing.assert_allclose(ours[column], in_utm[column], rtol=1e-6, atol=1e-6)


def test_invalid_geometries_are_repaired_and_reported(raster_path):
    bow_tie = Polygon([(X0 + 5, Y0 - 5), (X0 + 25, Y0 - 25), (X0 + 25, Y0 - 5), (X0 + 5, Y0 - 25)])
    parcels = gpd.GeoDataFrame(
        {"parcel_id": [7, 8]}, geometry=[bow_tie, box(X0, Y0 - 9, X0 + 9, Y0)], crs=CRS
    )
    result = parcel_statistics(raster_path, parcels)
    assert [r.parcel_id for r in result.repaired] == ["7"]
    assert "Self-intersection" in result.repaired[0].reason
    repaired = parcels.set_geometry(shapely.make_valid(parcels.geometry.array, method="structure"))
    assert result.table["ndvi_area_m2"][0] == pytest.approx(200.0, rel=0.1)
    _assert_equal_to_exactextract(result.table, _exactextract(raster_path, repaired))


def test_bad_parcels_are_refused_with_the_parcel_named(raster_path):
    line = gpd.GeoDataFrame(
        {"parcel_id": ["A1"]}, geometry=[LineString([(X0, Y0), (X0 + 9, Y0)])], crs=CRS
    )
    with pytest.raises(InputError, match="parcel A1 is a LineString, not a polygon"):
        parcel_statistics(raster_path, line)
    no_crs = gpd.GeoDataFrame({"parcel_id": ["A2"]}, geometry=[box(X0, Y0 - 9, X0 + 9, Y0)])
    with pytest.raises(InputError, match="no CRS"):
        parcel_statistics(raster_path, no_crs)
    with pytest.raises(InputError, match="no column 'code'"):
        parcel_statistics(raster_path, line, id_column="code")


def test_every_band_gets_its_own_columns_and_nodata(tmp_path):
    path = tmp_path / "two.tif"
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 2,
        "count": 2,
        "dtype": "uint8",
        "crs": CRS,
        "transform": TRANSFORM,
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.array([[[1, 2, 3, 4], [5, 6, 7, 8]], [[0, 0, 9, 9], [9, 9, 9, 9]]], np.uint8))
    parcel = gpd.GeoDataFrame({"parcel_id": ["p"]}, geometry=[box(X0, Y0 - 1, X0 + 1, Y0)], crs=CRS)
    table = parcel_statistics(path, parcel).table
    assert list(table.columns) == ["parcel_id"] + [
        f"band{b}_{s}" for b in (1, 2) for s in zonal.STATISTICS
    ]
    assert table["band1_count"][0] == 4 and table["band1_mean"][0] == pytest.approx(3.5)
    assert table["band2_count"][0] == 2 and table["band2_median"][0] == 9  # two pixels nodata


def test_coverage_of_a_square_straddling_four_pixels_is_a_quarter_each():
    square = box(X0 + 0.25, Y0 - 0.75, X0 + 0.75, Y0 - 0.25)
    coverage = coverage_fractions(square, TRANSFORM, Window(0, 0, 3, 3))
    np.testing.assert_allclose(coverage, [[0.25, 0.25, 0], [0.25, 0.25, 0], [0, 0, 0]], atol=1e-12)


def test_coverage_adds_up_to_the_area_inside_the_window_with_holes_and_parts():
    rng = np.random.default_rng(9)
    window = Window(10, 5, 60, 40)
    window_box = box(X0 + 10 * PIXEL_M, Y0 - 45 * PIXEL_M, X0 + 70 * PIXEL_M, Y0 - 5 * PIXEL_M)
    for _ in range(20):
        cx, cy = X0 + rng.uniform(0, 40), Y0 - rng.uniform(0, 25)
        parcel = _star(rng, cx, cy, 12, 15).difference(_star(rng, cx, cy, 4, 5))
        parcel = parcel.union(_star(rng, cx + 20, cy, 4, 8))
        coverage = coverage_fractions(parcel, TRANSFORM, window)
        assert coverage.min() >= 0 and coverage.max() <= 1
        expected = parcel.intersection(window_box).area / PIXEL_M**2
        assert coverage.sum() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_weighted_quantiles_with_unit_weights_are_numpys_linear_quantiles():
    values = np.random.default_rng(3).normal(size=101)
    qs = [0.0, 0.1, 0.5, 0.9, 1.0]
    expected = np.quantile(values, qs, method="linear")
    np.testing.assert_allclose(weighted_quantiles(values, np.ones(101), qs), expected)


def test_weighted_quantiles_merge_equal_values():
    merged = weighted_quantiles(
        np.array([1.0, 2.0, 2.0, 5.0]), np.array([1.0, 0.5, 0.5, 1.0]), [0.5]
    )
    assert merged == weighted_quantiles(np.array([1.0, 2.0, 5.0]), np.ones(3), [0.5]) == [2.0]


def test_pixels_outside_the_mask_band_do_not_count(tmp_path):
    path = tmp_path / "masked.tif"
    mask = np.full((HEIGHT, WIDTH), 255, np.uint8)
    mask[:, :40] = 0  # e.g. outside the mosaic's footprint
    profile = {"driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 1, "dtype": "uint8"}
    with rasterio.open(path, "w", crs=CRS, transform=TRANSFORM, **profile) as dst:
        dst.write(np.full((HEIGHT, WIDTH), 7, np.uint8), 1)
        dst.write_mask(mask)
    masked, straddling = (
        box(X0 + 10.1, Y0 - 10.4, X0 + 10.3, Y0 - 10.2),
        box(X0, Y0 - 5, X0 + 25, Y0),
    )
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["in", "across"]}, geometry=[masked, straddling], crs=CRS
    )
    table = parcel_statistics(path, parcels).table
    assert list(table["band1_count"]) == [0, 10 * 10]  # columns 40-49 of rows 0-9
    assert table["band1_mean"][1] == 7
