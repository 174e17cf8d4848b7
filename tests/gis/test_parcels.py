"""Reading cadastral parcels and finding the parcel a structure stands on."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

from core.errors import InputError
from gis.parcels import parcel_of, read_parcels
from models.construction import split_by_parcels

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0  # near Berkane, UTM 30N


def _parcels(ids=("BRK-0001", "BRK-0002"), communes=("Berkane", "Madagh")) -> gpd.GeoDataFrame:
    geometries = [box(X0 + 100 * i, Y0, X0 + 100 * (i + 1), Y0 + 100) for i in range(len(ids))]
    return gpd.GeoDataFrame(
        {"parcel_id": list(ids), "commune": list(communes)}, geometry=geometries, crs=UTM
    )


def test_reads_parcels_and_reprojects_to_the_working_crs(tmp_path):
    path = tmp_path / "parcels.gpkg"
    _parcels().to_crs("EPSG:4326").to_file(path, layer="parcels")

    parcels = read_parcels(path, UTM)

    assert parcels.crs.to_epsg() == 32630
    assert list(parcels["parcel_id"]) == ["BRK-0001", "BRK-0002"]
    assert parcels.geometry.area.round().tolist() == [10_000.0, 10_000.0]


def test_reads_the_only_layer_whatever_its_name(tmp_path):
    path = tmp_path / "cadastre.gpkg"
    _parcels().to_file(path, layer="cadastre_2024")
    assert len(read_parcels(path, UTM)) == 2


def test_duplicate_parcel_ids_are_refused_naming_them(tmp_path):
    path = tmp_path / "parcels.gpkg"
    _parcels(ids=("BRK-7", "BRK-7")).to_file(path, layer="parcels")
    with pytest.raises(InputError, match="duplicate parcel_id: BRK-7") as error:
        read_parcels(path, UTM)
    assert error.value.source == str(path)


def test_missing_commune_column_is_refused_naming_it(tmp_path):
    path = tmp_path / "parcels.gpkg"
    _parcels().drop(columns="commune").to_file(path, layer="parcels")
    with pytest.raises(InputError, match="commune"):
        read_parcels(path, UTM)


def test_an_empty_parcel_layer_is_refused(tmp_path):
    path = tmp_path / "parcels.gpkg"
    _parcels().iloc[:0].to_file(path, layer="parcels")
    with pytest.raises(InputError, match="no parcels"):
        read_parcels(path, UTM)


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_parcels(tmp_path / "nowhere.gpkg", UTM)


def test_a_self_intersecting_parcel_is_repaired_into_a_polygon(tmp_path):
    path = tmp_path / "parcels.gpkg"
    bowtie = Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 50, Y0), (X0, Y0 + 50)])
    parcels = _parcels()
    parcels.loc[0, "geometry"] = bowtie
    parcels.to_file(path, layer="parcels")

    repaired = read_parcels(path, UTM)

    assert repaired.geometry.is_valid.all()
    assert repaired.geometry.iloc[0].geom_type in ("Polygon", "MultiPolygon")
    assert repaired.geometry.iloc[0].area == pytest.approx(1250.0)


def test_a_building_across_two_parcels_goes_to_the_larger_overlap():
    parcels = _parcels()
    # 30 m on BRK-0001, 10 m on BRK-0002 (the boundary is at X0 + 100).
    straddling = box(X0 + 70, Y0 + 10, X0 + 110, Y0 + 20)
    elsewhere = box(X0 - 50, Y0 - 50, X0 - 40, Y0 - 40)
    buildings = gpd.GeoDataFrame({"score": [0.8, 0.6]}, geometry=[straddling, elsewhere], crs=UTM)

    located = parcel_of(buildings, parcels)

    assert located.loc[0, "parcel_id"] == "BRK-0001"
    assert located.loc[0, "commune"] == "Berkane"
    assert located.loc[0, "overlap_share"] == pytest.approx(0.75)
    assert pd.isna(located.loc[1, "parcel_id"])
    assert located.loc[1, "overlap_share"] == 0.0
    assert list(located["score"]) == [0.8, 0.6]


def test_parcel_of_reprojects_parcels_to_the_geometries_crs():
    buildings = gpd.GeoDataFrame(geometry=[box(X0 + 120, Y0 + 10, X0 + 130, Y0 + 20)], crs=UTM)
    located = parcel_of(buildings, _parcels().to_crs("EPSG:4326"))
    assert located.loc[0, "parcel_id"] == "BRK-0002"
    assert located.crs == buildings.crs


def test_a_real_boundary_file_without_parcel_columns_is_refused(shared_data):
    path = shared_data / "vector" / "morocco" / "berkane_province.geojson"
    with pytest.raises(InputError, match="parcel_id, commune"):
        read_parcels(path, UTM)


def test_the_real_berkane_boundary_reads_as_one_parcel_in_utm(shared_data, tmp_path):
    province = gpd.read_file(shared_data / "vector" / "morocco" / "berkane_province.geojson")
    path = tmp_path / "province.gpkg"
    province.rename(columns={"id": "parcel_id", "name": "commune"}).to_file(path)

    (parcel,) = read_parcels(path, UTM).itertuples()

    assert parcel.parcel_id == "MA-BER"
    assert parcel.geometry.area / 1e6 == pytest.approx(1802, rel=0.01)  # km², see SOURCES.md
    city = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy([-2.32], [34.92], crs="EPSG:4326").to_crs(UTM).buffer(50)
    )
    assert parcel_of(city, read_parcels(path, UTM)).loc[0, "parcel_id"] == "MA-BER"


def test_a_parcel_file_that_is_not_vector_data_is_an_input_error(tmp_path):
    path = tmp_path / "parcels.gpkg"
    path.write_bytes(b"\x89PNG not a geopackage")
    with pytest.raises(InputError, match="not a readable vector file"):
        read_parcels(path, UTM)


def test_a_structure_over_two_parcels_is_split_and_slivers_dropped():
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["A", "B"], "commune": ["Berkane", "Berkane"]},
        geometry=[box(0, 0, 20, 20), box(20, 0, 40, 20)],
        crs="EPSG:32630",
    )
    structures = gpd.GeoDataFrame(
        {"change": ["new", "new"], "score": [0.9, 0.8], "area_m2": [300.0, 100.0]},
        geometry=[box(5, 5, 35, 15), box(10, 0, 20.5, 9.5)],  # over both; a 0.5 m overhang
        crs="EPSG:32630",
    )
    pieces = split_by_parcels(structures, parcels, min_area_m2=10.0)
    located = parcel_of(pieces, parcels)
    assert sorted(zip(located["parcel_id"], located["area_m2"].round(1), strict=True)) == [
        ("A", 95.0),
        ("A", 150.0),
        ("B", 150.0),
    ]
    assert list(pieces.columns) == list(structures.columns)
    assert set(pieces["change"]) == {"new"}
