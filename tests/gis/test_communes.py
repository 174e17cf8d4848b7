"""Communes as survey areas: their names, parcels and hull."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import box

from core.errors import InputError
from gis.communes import commune_area, commune_names, commune_parcels


@pytest.fixture()
def parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "parcel_id": ["A", "B", "C", "D"],
            "commune": ["Madagh", " Madagh ", "Berkane", ""],
        },
        geometry=[box(0, 0, 10, 10), box(20, 20, 30, 30), box(40, 0, 50, 10), box(0, 40, 5, 45)],
        crs="EPSG:32630",
    )


def test_names_are_sorted_trimmed_and_leave_out_blanks(parcels: gpd.GeoDataFrame) -> None:
    assert commune_names(parcels) == ["Berkane", "Madagh"]


def test_the_area_is_the_hull_of_the_communes_parcels_across_a_gap(
    parcels: gpd.GeoDataFrame,
) -> None:
    assert list(commune_parcels(parcels, "Madagh", "p.gpkg")["parcel_id"]) == ["A", "B"]
    area = commune_area(parcels, "Madagh", "p.gpkg")
    assert area.geom_type == "Polygon" and area.bounds == (0, 0, 30, 30)
    assert area.covers(box(10, 10, 20, 20))  # the gap between its two parcels is flown too
    assert not area.intersects(box(40, 0, 50, 10))


def test_an_unknown_commune_names_the_file_and_the_communes(parcels: gpd.GeoDataFrame) -> None:
    with pytest.raises(InputError, match=r"p\.gpkg: no parcel in commune 'Oujda'; communes: "
                       r"Berkane, Madagh"):  # fmt: skip
        commune_area(parcels, "Oujda", "p.gpkg")
