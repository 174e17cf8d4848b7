"""Per-parcel health history and declining parcels, on seeded NDVI epochs of one pixel grid
measured by models.zonal.parcel_statistics."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from shapely.geometry import box

from core.errors import InputError
from core.io import write_geopackage
from models.health_trend import (
    DECLINING,
    HISTORY_TABLE,
    NOT_COMPARABLE,
    NOT_DECLINING,
    declining_parcels,
    parcel_history,
    read_history,
    write_history,
)
from models.zonal import parcel_statistics

CRS = "EPSG:32630"
PIXEL_M = 0.5
X0, Y0 = 600000.0, 3870000.0
TRANSFORM = from_origin(X0, Y0, PIXEL_M, PIXEL_M)
PARCEL_M, TRACK_M = 20.0, 1.0
COLUMNS, ROWS = 4, 3
WIDTH = int((COLUMNS * (PARCEL_M + TRACK_M) + TRACK_M) / PIXEL_M)
HEIGHT = int((ROWS * (PARCEL_M + TRACK_M) + TRACK_M) / PIXEL_M)
CROP_OF_ROW = ("orchard", "orchard", "cereal")
TREE_SPACING_M, CROWN_RADIUS_M = 5.5, 2.2
SOIL_NDVI = 0.12
SPRING, SUMMER, AUTUMN = date(2024, 3, 12), date(2024, 7, 2), date(2024, 10, 8)


def _parcels() -> gpd.GeoDataFrame:
    """A 4 x 3 block of 20 m parcels between 1 m tracks, off the pixel grid by a quarter pixel:
    two rows of clementine orchards, one of cereals."""
    rows = []
    for r in range(ROWS):
        for c in range(COLUMNS):
            left = X0 + TRACK_M + c * (PARCEL_M + TRACK_M) + 0.125
            top = Y0 - TRACK_M - r * (PARCEL_M + TRACK_M) - 0.125
            rows.append(
                {
                    "parcel_id": f"P{r}{c}",
                    "land_use": CROP_OF_ROW[r],
                    "geometry": box(left, top - PARCEL_M, left + PARCEL_M, top),
                }
            )
    return gpd.GeoDataFrame(rows, crs=CRS)


def _orchard_canopy(stressed: bool) -> np.ndarray:
    """Tree crowns on a 5.5 m grid; a stressed orchard has lost half of its trees (seeded)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    x_m, y_m = (xs + 0.5) * PIXEL_M, (ys + 0.5) * PIXEL_M
    tree_x, tree_y = np.round(x_m / TREE_SPACING_M), np.round(y_m / TREE_SPACING_M)
    distance = np.hypot(x_m - tree_x * TREE_SPACING_M, y_m - tree_y * TREE_SPACING_M)
    canopy = distance < CROWN_RADIUS_M
    if stressed:
        missing = np.random.default_rng(7).random((HEIGHT, WIDTH)) < 0.5
        canopy &= ~missing[tree_y.astype(int), tree_x.astype(int)]
    return canopy


def _write_epoch(
    path: Path,
    *,
    seed: int,
    shift: Mapping[str, float] | float = 0.0,
    stressed: Collection[str] = (),
    clouded: Collection[str] = (),
    width: int = WIDTH,
) -> Path:
    """An NDVI raster of the parcels: soil and tracks around, crowns (orchards) or a full
    cover (cereals) at each parcel's own vigour, the season's ``shift`` (per crop) over the
    whole parcel with a little scatter between parcels, ``stressed`` parcels thinned and
    yellowed, ``clouded`` ones nodata over 60% of their width. ``width`` < WIDTH images only
    the left of the grid."""
    rng = np.random.default_rng(seed)
    vigour = np.random.default_rng(0).uniform(0.65, 0.8, COLUMNS * ROWS)
    ndvi = SOIL_NDVI + rng.normal(0.0, 0.02, (HEIGHT, WIDTH))
    for k, parcel in enumerate(_parcels().itertuples()):
        inside = ~geometry_mask([parcel.geometry], (HEIGHT, WIDTH), TRANSFORM)
        season = shift.get(parcel.land_use, 0.0) if isinstance(shift, Mapping) else shift
        season += rng.normal(0.0, 0.01)
        ndvi[inside] += season
        is_stressed = parcel.parcel_id in stressed
        if parcel.land_use == "orchard":
            canopy = inside & _orchard_canopy(is_stressed)
        else:
            canopy = inside & ~(is_stressed & (rng.random((HEIGHT, WIDTH)) < 0.5))
        canopy_ndvi = vigour[k] + season - 0.1 * is_stressed
        ndvi[canopy] = canopy_ndvi + rng.normal(0.0, 0.03, canopy.sum())
        if parcel.parcel_id in clouded:
            minx, _, maxx, _ = parcel.geometry.bounds
            cloud_x = (X0 + (np.arange(WIDTH) + 0.5) * PIXEL_M) < minx + 0.6 * (maxx - minx)
            ndvi[inside & cloud_x[None, :]] = math.nan
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": HEIGHT,
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": TRANSFORM,
        "nodata": math.nan,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(ndvi[:, :width].astype(np.float32), 1)
        dst.set_band_description(1, "ndvi")
    return path


def _statistics(path: Path) -> pd.DataFrame:
    return parcel_statistics(path, _parcels()).table


def _history(tmp_path: Path, summer: dict[str, object]) -> pd.DataFrame:
    """History of a plain spring epoch and a summer epoch made with ``summer`` options."""
    spring = _statistics(_write_epoch(tmp_path / "spring.tif", seed=1))
    late = _statistics(_write_epoch(tmp_path / "summer.tif", seed=2, **summer))
    return parcel_history({SPRING: spring, SUMMER: late}, _parcels())


def _flagged(trend: pd.DataFrame) -> list[str]:
    return trend.loc[trend["status"] == DECLINING, "parcel_id"].tolist()


def test_a_parcel_losing_trees_is_flagged_declining_with_the_dates_compared(tmp_path):
    history = _history(tmp_path, {"stressed": ["P11"]})

    trend = declining_parcels(history)

    assert _flagged(trend) == ["P11"]
    assert set(trend.loc[trend["parcel_id"] != "P11", "status"]) == {NOT_DECLINING}
    row = trend.set_index("parcel_id").loc["P11"]
    assert (row["date_before"], row["date_after"]) == (SPRING, SUMMER)
    spring_mean = history.query("parcel_id == 'P11' and date == @SPRING")["mean"].item()
    assert row["value_before"] == spring_mean
    assert row["drop"] == pytest.approx(row["value_before"] - row["value_after"])
    assert row["drop"] > 0.15
    assert "from 0.4" in row["explanation"] and "on 2024-03-12" in row["explanation"]
    assert "on 2024-07-02" in row["explanation"] and "above the 0.10 allowed" in row["explanation"]
    assert _flagged(declining_parcels(history, normalise="all")) == ["P11"]
    assert _flagged(declining_parcels(history, normalise="crop")) == ["P11"]


def test_a_relative_drop_flags_the_same_parcel(tmp_path):
    history = _history(tmp_path, {"stressed": ["P11"]})

    trend = declining_parcels(history, relative=0.25).set_index("parcel_id")

    assert trend.index[trend["status"] == DECLINING].tolist() == ["P11"]
    assert trend.loc["P11", "change"] == pytest.approx(
        trend.loc["P11", "value_after"] / trend.loc["P11", "value_before"] - 1
    )
    assert "%" in trend.loc["P11", "explanation"]


def test_a_seasonal_shift_of_every_parcel_flags_all_of_them_unless_normalised(tmp_path):
    history = _history(tmp_path, {"shift": -0.2})

    raw = declining_parcels(history, normalise="none")
    against_all = declining_parcels(history, normalise="all")
    against_crop = declining_parcels(history, normalise="crop")

    assert len(_flagged(raw)) == COLUMNS * ROWS
    assert _flagged(against_all) == [] and _flagged(against_crop) == []
    changes = against_all.set_index("parcel_id")["change"]
    for parcel, reference in against_all.set_index("parcel_id")["reference_change"].items():
        assert reference == pytest.approx(changes.drop(parcel).median())
    assert against_all["reference_change"].between(-0.22, -0.18).all()
    assert "while the 11 other parcels changed by -0.2" in against_all["explanation"].iloc[0]


def test_normalising_by_crop_keeps_a_cereal_harvest_from_flagging_and_still_finds_a_sick_orchard(
    tmp_path,
):
    history = _history(tmp_path, {"shift": {"cereal": -0.35}, "stressed": ["P01"]})

    by_crop = declining_parcels(history, normalise="crop")
    by_all = declining_parcels(history, normalise="all")

    assert _flagged(by_crop) == ["P01"]
    assert _flagged(by_all) == ["P01", "P20", "P21", "P22", "P23"]  # harvested cereals too
    p01 = by_crop.set_index("parcel_id").loc["P01", "explanation"]
    assert "the 7 other orchard parcels" in p01


def test_a_crop_with_too_few_parcels_is_compared_with_all_parcels(tmp_path):
    history = _history(tmp_path, {"shift": {"cereal": -0.35}, "stressed": ["P01"]})

    enough = declining_parcels(history, normalise="crop-or-all")
    cereals_fall_back = declining_parcels(history, normalise="crop-or-all", min_reference_parcels=4)

    assert _flagged(enough) == _flagged(declining_parcels(history, normalise="crop")) == ["P01"]
    assert _flagged(cereals_fall_back) == ["P01", "P20", "P21", "P22", "P23"]
    explained = cereals_fall_back.set_index("parcel_id")["explanation"]
    assert "the 7 other orchard parcels" in explained["P01"]
    assert "the 11 other parcels" in explained["P20"]
    assert (cereals_fall_back["status"] != "not comparable").all()


def test_partly_imaged_parcels_are_reported_not_comparable_instead_of_flagged(tmp_path):
    half_of_last_column = WIDTH - int(PARCEL_M / 2 / PIXEL_M)
    history = _history(
        tmp_path, {"stressed": ["P11"], "clouded": ["P11"], "width": half_of_last_column}
    )

    trend = declining_parcels(history).set_index("parcel_id")

    cut = ["P03", "P13", "P23"]
    assert trend.index[trend["status"] == NOT_COMPARABLE].tolist() == ["P03", "P11", "P13", "P23"]
    assert (trend.drop(index=[*cut, "P11"])["status"] == NOT_DECLINING).all()
    share = history.query("parcel_id == 'P11' and date == @SUMMER")["valid_share"].item()
    assert share == pytest.approx(0.4, abs=0.02)  # the cloud covers 60% of its width
    assert trend.loc["P11", "explanation"] == (
        f"only {share:.0%} of the parcel had valid pixels on 2024-07-02 (at least 80% needed)"
    )
    assert trend.loc[cut, "explanation"].str.startswith("only 5").all()
    assert trend.loc[["P11", *cut], ["change", "drop"]].isna().all().all()
    # The visible 40% of P11 did lose its trees: only the coverage rule kept it out.
    assert _flagged(declining_parcels(history, min_valid_share=0.3)) == ["P11"]


def test_a_parcel_missing_from_an_epoch_and_a_first_epoch_are_not_comparable(tmp_path):
    spring = _statistics(_write_epoch(tmp_path / "spring.tif", seed=1))
    summer = _statistics(_write_epoch(tmp_path / "summer.tif", seed=2))
    first = parcel_history({SPRING: spring}, _parcels())
    history = parcel_history(
        {SUMMER: summer[summer["parcel_id"] != "P00"]}, _parcels(), history=first
    )

    only_one = declining_parcels(first)
    trend = declining_parcels(history).set_index("parcel_id")

    assert set(only_one["status"]) == {NOT_COMPARABLE}
    assert only_one["explanation"].iloc[0] == "no survey before 2024-03-12 to compare with"
    assert trend.loc["P00", "status"] == NOT_COMPARABLE
    assert trend.loc["P00", "explanation"] == "not surveyed on 2024-07-02"


def test_adding_an_epoch_again_replaces_it_and_a_new_one_is_appended(tmp_path):
    parcels = _parcels()
    spring = _statistics(_write_epoch(tmp_path / "spring.tif", seed=1))
    summer = _statistics(_write_epoch(tmp_path / "summer.tif", seed=2))
    rerun = _statistics(_write_epoch(tmp_path / "rerun.tif", seed=3, stressed=["P11"]))
    autumn = _statistics(_write_epoch(tmp_path / "autumn.tif", seed=4))
    history = parcel_history({SPRING: spring, SUMMER: summer}, parcels)

    same = parcel_history({SUMMER: summer}, parcels, history=history)
    replaced = parcel_history({SUMMER: rerun}, parcels, history=history)
    extended = parcel_history({AUTUMN: autumn}, parcels, history=replaced)

    pd.testing.assert_frame_equal(same, history)
    assert len(replaced) == len(history) == 2 * len(parcels)
    summer_rows = replaced[replaced["date"] == SUMMER].set_index("parcel_id")["mean"]
    assert summer_rows.to_dict() == rerun.set_index("parcel_id")["ndvi_mean"].to_dict()
    assert _flagged(declining_parcels(replaced)) == ["P11"]
    assert len(extended) == 3 * len(parcels)
    assert extended[["parcel_id", "date"]].equals(
        extended[["parcel_id", "date"]].sort_values(["parcel_id", "date"], ignore_index=True)
    )
    assert declining_parcels(extended)["date_before"].eq(SUMMER).all()
    earlier = declining_parcels(extended, before=SPRING, after=SUMMER)
    assert _flagged(earlier) == ["P11"]


def test_history_round_trips_through_a_geopackage_keeping_its_other_layers(tmp_path):
    history = _history(tmp_path, {"stressed": ["P11"], "width": WIDTH - 20})
    history.loc[history["parcel_id"] == "P22", "crop"] = np.nan  # a parcel of unknown use
    path = write_geopackage(tmp_path / "raqib.gpkg", {"parcels": _parcels()})

    write_history(history, path)
    back = read_history(path)
    write_history(history[history["date"] == SPRING], path)

    pd.testing.assert_frame_equal(back, history)
    assert len(read_history(path)) == len(_parcels())
    assert sorted(pyogrio.list_layers(path)[:, 0]) == ["parcel_history", "parcels"]
    with sqlite3.connect(path) as db:
        kind = db.execute(
            "SELECT data_type FROM gpkg_contents WHERE table_name = ?", (HISTORY_TABLE,)
        ).fetchone()
        date_type = [
            r[2] for r in db.execute(f"PRAGMA table_info({HISTORY_TABLE})") if r[1] == "date"
        ]
        version = db.execute("PRAGMA user_version").fetchone()
    assert kind == ("attributes",) and date_type == ["DATE"] and version == (10300,)


def test_a_new_history_file_is_a_geopackage_1_3_and_a_missing_one_reads_empty(tmp_path):
    history = _history(tmp_path, {})
    path = tmp_path / "history.gpkg"

    assert read_history(path).empty
    write_history(history, path)

    pd.testing.assert_frame_equal(read_history(path), history)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (10300,)


def test_statistics_of_another_index_are_refused_naming_the_epoch(tmp_path):
    path = _write_epoch(tmp_path / "spring.tif", seed=1)
    with rasterio.open(path, "r+") as dst:
        dst.set_band_description(1, "vari")

    with pytest.raises(InputError, match=r"parcel statistics of 2024-03-12: no column\(s\) ndvi_"):
        parcel_history({SPRING: _statistics(path)}, _parcels())


def test_normalising_by_crop_needs_parcels_with_a_land_use(tmp_path):
    spring = _statistics(_write_epoch(tmp_path / "spring.tif", seed=1))
    summer = _statistics(_write_epoch(tmp_path / "summer.tif", seed=2))
    epochs = {SPRING: spring, SUMMER: summer}
    parcels = _parcels()
    parcels.loc[parcels["parcel_id"] == "P00", "land_use"] = None
    one_unknown = parcel_history(epochs, parcels)
    none_known = parcel_history(epochs, parcels.drop(columns="land_use"))

    trend = declining_parcels(one_unknown, normalise="crop").set_index("parcel_id")

    assert trend.loc["P00", ["status", "explanation"]].tolist() == [
        NOT_COMPARABLE,
        "no crop (land use) known to normalise by crop",
    ]
    assert (trend.drop(index="P00")["status"] == NOT_DECLINING).all()
    with pytest.raises(InputError, match="no crop known for any parcel"):
        declining_parcels(none_known, normalise="crop")


def test_an_absolute_and_a_relative_drop_together_are_refused(tmp_path):
    history = _history(tmp_path, {})

    with pytest.raises(InputError, match="not both"):
        declining_parcels(history, drop=0.1, relative=0.2)
