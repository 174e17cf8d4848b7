"""Flag rules on a small hand-built scene: four parcels, their permits, new structures."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from core.settings import Settings
from gis.flags import FLAG_RULES, flag_new_buildings, to_flags

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_000.0
CAPTURED_ON = date(2025, 3, 10)
SETTINGS = Settings(
    permit_url_template="https://rokhas.example/permits/{permit_id}",
    parcel_url_template="https://cadastre.example/parcels/{parcel_id}",
    footprint_tolerance=0.15,
)


def _parcels() -> gpd.GeoDataFrame:
    ids = ["BRK-0001", "BRK-0002", "BRK-0003", "BRK-0004"]
    return gpd.GeoDataFrame(
        {"parcel_id": ids, "commune": ["Berkane", "Berkane", "Madagh", "Aklim"]},
        geometry=[box(X0 + 100 * i, Y0, X0 + 100 * (i + 1), Y0 + 100) for i in range(4)],
        crs=UTM,
    )


def _permits(*rows: tuple) -> pd.DataFrame:
    columns = ["permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2"]
    return pd.DataFrame(list(rows), columns=columns)


PERMITS = _permits(
    ("P-1", "BRK-0001", "approved", date(2024, 1, 1), date(2026, 1, 1), 300.0),  # valid
    ("P-2", "BRK-0002", "approved", date(2022, 1, 1), date(2024, 1, 1), 300.0),  # expired
    ("P-3", "BRK-0003", "approved", date(2024, 6, 1), date(2026, 6, 1), 50.0),  # too small
)


def _building(parcel: int, width_m: float, depth_m: float = 10.0, x_m: float = 20.0):
    left = X0 + 100 * parcel + x_m
    return box(left, Y0 + 20, left + width_m, Y0 + 20 + depth_m)


def _buildings(geometries, scores=None) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"score": scores or [1.0] * len(geometries), "change": "new"},
        geometry=geometries,
        crs=UTM,
    )
    frame["area_m2"] = frame.geometry.area
    return frame


def _flag(buildings, permits=PERMITS):
    return flag_new_buildings(
        buildings, _parcels(), permits, captured_on=CAPTURED_ON, settings=SETTINGS
    ).set_index("parcel_id")


def test_each_parcel_gets_exactly_the_reason_its_permits_call_for():
    buildings = _buildings([_building(i, 10.0) for i in range(4)])  # 100 m² on each parcel

    flags = _flag(buildings)

    assert flags["reason"].to_dict() == {
        "BRK-0002": "permit_expired",
        "BRK-0003": "over_footprint",
        "BRK-0004": "no_permit",
    }
    assert flags["permit_id"].fillna("none").to_dict() == {
        "BRK-0002": "P-2",
        "BRK-0003": "P-3",
        "BRK-0004": "none",
    }
    assert flags["record_url"].to_dict() == {
        "BRK-0002": "https://rokhas.example/permits/P-2",
        "BRK-0003": "https://rokhas.example/permits/P-3",
        "BRK-0004": "https://cadastre.example/parcels/BRK-0004",
    }
    assert flags.loc["BRK-0004", "commune"] == "Aklim"
    assert flags.loc["BRK-0004", "explanation"] == (
        "New structure of 100 m² on parcel BRK-0004; "
        "no building permit is on record for this parcel."
    )
    assert "expired on 2024-01-01" in flags.loc["BRK-0002", "explanation"]
    assert flags.loc["BRK-0003", "permitted_footprint_m2"] == 50.0
    assert (flags["captured_on"] == CAPTURED_ON).all()


def test_the_flag_geometry_is_the_parcel_polygon():
    flags = _flag(_buildings([_building(3, 10.0)]))
    assert flags.geometry["BRK-0004"].equals(_parcels().geometry[3])
    assert flags.crs == UTM


def test_a_building_across_two_parcels_counts_on_the_larger_overlap():
    # 75 m² on BRK-0001 (valid permit) against 25 m² on BRK-0004 (none) -> no flag.
    across = box(X0 + 300 - 2.5, Y0 + 20, X0 + 300 + 7.5, Y0 + 30)
    assert _flag(_buildings([across])).index.tolist() == ["BRK-0004"]
    mostly_on_first = box(X0 + 100 - 7.5, Y0 + 20, X0 + 100 + 2.5, Y0 + 30)
    assert _flag(_buildings([mostly_on_first])).empty


def test_the_built_area_of_a_parcel_adds_up_before_comparing_with_the_permit():
    # Two structures of 40 m² on BRK-0003: 80 m² > 50 m² × 1.15.
    two = [_building(2, 4.0, x_m=10.0), _building(2, 4.0, x_m=60.0)]
    flags = _flag(_buildings(two))
    assert flags.loc["BRK-0003", "built_area_m2"] == 80.0
    assert flags.loc["BRK-0003", "building_count"] == 2
    assert flags.loc["BRK-0003", "severity"] == pytest.approx(0.6)  # 60 % over the permit


def test_explanations_say_whether_a_structure_is_new_or_extended():
    grown = _buildings([_building(3, 10.0)]).assign(change="grown")
    assert (
        _flag(grown)
        .loc["BRK-0004", "explanation"]
        .startswith("Extended structure of 100 m² on parcel BRK-0004")
    )
    two = _buildings([_building(3, 4.0, x_m=10.0), _building(3, 4.0, x_m=60.0)])
    assert _flag(two).loc["BRK-0004", "explanation"].startswith("2 new structures of 80 m²")


def test_within_the_footprint_tolerance_is_not_flagged():
    assert _flag(_buildings([_building(2, 5.5)])).empty  # 55 m² ≤ 50 m² × 1.15


def test_severity_of_a_missing_permit_scales_with_the_detection_score():
    flags = _flag(_buildings([_building(3, 10.0)], scores=[0.5]))
    assert flags.loc["BRK-0004", "severity"] == pytest.approx(0.45)


def test_a_permit_not_yet_valid_or_not_approved_counts_as_no_valid_permit():
    permits = _permits(
        ("P-7", "BRK-0001", "approved", date(2025, 6, 1), date(2027, 6, 1), 300.0),
        ("P-8", "BRK-0004", "rejected", date(2024, 1, 1), date(2026, 1, 1), 300.0),
    )
    flags = _flag(_buildings([_building(0, 10.0), _building(3, 10.0)]), permits)
    assert flags["reason"].tolist() == ["permit_expired", "permit_expired"]
    assert "only valid from 2025-06-01" in flags.loc["BRK-0001", "explanation"]
    assert "status 'rejected'" in flags.loc["BRK-0004", "explanation"]


def test_a_structure_on_no_parcel_is_flagged_with_its_own_outline():
    outside = box(X0 - 50, Y0 - 50, X0 - 40, Y0 - 40)
    flags = flag_new_buildings(
        _buildings([outside]), _parcels(), PERMITS, captured_on=CAPTURED_ON, settings=SETTINGS
    )
    assert flags["reason"].tolist() == ["off_cadastre"]
    assert flags.geometry.iloc[0].equals(outside)
    assert flags["record_url"].tolist() == [""]


def test_no_new_buildings_gives_an_empty_layer_with_every_column():
    flags = _flag(_buildings([]))
    assert flags.empty
    assert {"reason", "severity", "record_url", "building_ids"} <= set(flags.columns)


def test_flags_convert_to_core_flag_values():
    flags = flag_new_buildings(
        _buildings([_building(3, 10.0)]), _parcels(), PERMITS,
        captured_on=CAPTURED_ON, settings=SETTINGS,
    )  # fmt: skip
    (flag,) = to_flags(flags)
    assert (flag.parcel_id, flag.reason, flag.commune) == ("BRK-0004", "no_permit", "Aklim")
    assert flag.record_url == "https://cadastre.example/parcels/BRK-0004"
    assert flag.permit_id is None


def test_rules_are_a_registry_of_named_functions():
    assert set(FLAG_RULES) == {"off_cadastre", "no_permit", "permit_expired", "over_footprint"}


def _projects(start: date) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"project_id": ["PRJ-1"], "name": ["École"], "start": [start],
         "planned_end": [date(2026, 12, 31)]},
        geometry=[box(X0 + 300, Y0, X0 + 400, Y0 + 100)],
        crs=UTM,
    )  # fmt: skip


def test_a_structure_inside_a_started_public_project_is_not_flagged():
    school = _buildings([_building(3, 10.0)])
    flags = flag_new_buildings(
        school, _parcels(), PERMITS, captured_on=CAPTURED_ON, settings=SETTINGS,
        projects=_projects(start=date(2024, 9, 1)),
    )  # fmt: skip
    assert flags.empty


def test_a_project_not_started_yet_does_not_cover_a_structure():
    school = _buildings([_building(3, 10.0)])
    flags = flag_new_buildings(
        school, _parcels(), PERMITS, captured_on=CAPTURED_ON, settings=SETTINGS,
        projects=_projects(start=date(2025, 9, 1)),
    )  # fmt: skip
    assert flags["reason"].tolist() == ["no_permit"]
