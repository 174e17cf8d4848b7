"""Reading a zoning plan: configurable columns, repaired polygons, clear errors; and how much
of a footprint lies outside its buildable zones."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import Polygon, box

from core.errors import InputError
from core.io import write_geopackage
from gis.zoning import read_zoning, zone_overlap

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0
ZONE_YES_NO = {"zone": ["U1", "NA-1"], "buildable": ["yes", "no"]}
BOWTIE = Polygon([(X0, Y0 + 200), (X0 + 100, Y0 + 300), (X0 + 100, Y0 + 200), (X0, Y0 + 300)])


def _plan(path: Path, *, columns: dict | None = None, crs: str | None = UTM, **extra) -> Path:
    columns = columns or {"code_zone": ["U1", "NA-1"], "constructible": ["Oui", "non"]}
    frame = gpd.GeoDataFrame(
        columns | extra,
        geometry=[box(X0, Y0, X0 + 100, Y0 + 100), box(X0 + 100, Y0, X0 + 200, Y0 + 100)],
        crs=crs,
    )
    pyogrio.write_dataframe(frame, path, layer="plan_amenagement", driver="GPKG")
    return path


def test_column_names_are_configurable_and_yes_no_words_read_in_french(tmp_path):
    zoning = read_zoning(
        _plan(tmp_path / "pa.gpkg"), UTM, zone_column="code_zone", buildable_column="constructible"
    )
    assert zoning.zones["zone"].tolist() == ["U1", "NA-1"]
    assert zoning.zones["buildable"].tolist() == [True, False]
    assert zoning.repaired == ()


def test_an_invalid_polygon_is_repaired_and_named(tmp_path):
    frame = gpd.GeoDataFrame({"zone": ["U2"], "buildable": ["yes"]}, geometry=[BOWTIE], crs=UTM)
    zoning = read_zoning(write_geopackage(tmp_path / "z.gpkg", {"zoning": frame}), UTM)
    assert zoning.repaired == ("U2",)
    assert zoning.zones.geometry.iloc[0].is_valid
    assert zoning.zones.geometry.iloc[0].area == pytest.approx(5000.0)


def test_zone_overlap_measures_the_share_outside_and_names_the_zones(tmp_path):
    zoning = read_zoning(
        _plan(tmp_path / "pa.gpkg"), UTM, zone_column="code_zone", buildable_column="constructible"
    )
    # 10 × 10 m: 3 m in U1, 5 m in NA-1, 2 m north of every zone.
    overlap = zone_overlap(box(X0 + 97, Y0 + 92, X0 + 107, Y0 + 102), zoning)
    assert overlap.outside_share == pytest.approx(0.76)  # 1 − 3 × 8 / 100
    assert overlap.zones == ("NA-1",)
    assert overlap.unzoned_share == pytest.approx(0.2)
    assert overlap.where == "in zone NA-1 (not buildable) and on land no zone of the plan covers"
    assert zone_overlap(box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), zoning).outside_share == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _plan(p), r"pa\.gpkg: no column 'zone' \(columns: code_zone, constructible"),
        (lambda p: _plan(p, columns=ZONE_YES_NO, crs=None), r"pa\.gpkg: has no CRS"),
        (
            lambda p: _plan(p, columns={"zone": ["U1", "U2"], "buildable": ["yes", "peut-être"]}),
            r"column 'buildable' must say yes or no; it says U2: 'peut-être'",
        ),
        (lambda p: p.with_name("absent.gpkg"), r"absent\.gpkg: zoning file not found"),
    ],
    ids=["missing column", "no crs", "not yes or no", "no file"],
)
@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_a_bad_zoning_file_is_an_input_error_naming_it(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        read_zoning(make(tmp_path / "pa.gpkg"), UTM)


def test_a_line_among_zones_is_refused(tmp_path):
    frame = gpd.GeoDataFrame(
        {"zone": ["U1", "road"], "buildable": ["yes", "no"]},
        geometry=[box(X0, Y0, X0 + 100, Y0 + 100), box(X0, Y0, X0 + 1, Y0 + 1).boundary],
        crs=UTM,
    )
    pyogrio.write_dataframe(frame, tmp_path / "z.gpkg", layer="zoning", driver="GPKG")
    with pytest.raises(
        InputError, match=r"zones without a usable polygon: road \((LinearRing|LineString)\)"
    ):
        read_zoning(tmp_path / "z.gpkg", UTM)
