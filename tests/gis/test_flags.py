"""Flag rules on a small hand-built scene: four parcels, their permits, new structures."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from core.io import write_geopackage
from core.settings import Settings
from gis.flags import FLAG_RULES, flag_new_buildings, to_flags
from gis.zoning import Zoning, read_zoning

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


def test_a_sliver_over_a_boundary_counts_on_the_parcel_of_largest_overlap():
    # 90 m² on BRK-0001 (valid permit), a 10 m² sliver (< 12 m²) on BRK-0002 (expired).
    mostly_on_first = box(X0 + 100 - 9, Y0 + 20, X0 + 100 + 1, Y0 + 30)
    assert _flag(_buildings([mostly_on_first])).empty
    # 10 m² on BRK-0003 (permit of 50 m²), 90 m² on BRK-0004 (none): all 100 m² there.
    across = box(X0 + 300 - 1, Y0 + 20, X0 + 300 + 9, Y0 + 30)
    flags = _flag(_buildings([across]))
    assert flags.index.tolist() == ["BRK-0004"]
    assert flags.loc["BRK-0004", "built_area_m2"] == 100.0


def test_a_structure_spanning_two_parcels_is_judged_piece_by_piece():
    # 75 m² on BRK-0001 (valid permit) and 25 m² on BRK-0002 (expired permit).
    spanning = box(X0 + 100 - 7.5, Y0 + 20, X0 + 100 + 2.5, Y0 + 30)
    flags = _flag(_buildings([spanning]))
    assert flags["reason"].to_dict() == {"BRK-0002": "permit_expired"}
    assert flags.loc["BRK-0002", "built_area_m2"] == 25.0
    assert flags.loc["BRK-0002", "building_ids"] == "0"
    assert flags.loc["BRK-0002", "explanation"].startswith(
        "New structure of 25 m² on parcel BRK-0002 (part of a 100 m² structure spanning "
        "parcel BRK-0001 and parcel BRK-0002); permit P-2 expired on 2024-01-01"
    )


def test_each_piece_of_a_spanning_structure_meets_its_own_parcels_permits():
    # 60 m² on BRK-0003 (permit of 50 m²: over) and 40 m² on BRK-0004 (no permit).
    spanning = box(X0 + 300 - 6, Y0 + 20, X0 + 300 + 4, Y0 + 30)
    flags = _flag(_buildings([spanning]))
    assert flags["reason"].to_dict() == {"BRK-0003": "over_footprint", "BRK-0004": "no_permit"}
    assert flags["built_area_m2"].to_dict() == {"BRK-0003": 60.0, "BRK-0004": 40.0}


def test_the_part_of_a_structure_on_no_parcel_is_flagged_with_that_part_only():
    # 100 m² west of the cadastre, 100 m² on BRK-0001 (valid permit).
    spanning = box(X0 - 10, Y0 + 20, X0 + 10, Y0 + 30)
    flags = flag_new_buildings(
        _buildings([spanning]), _parcels(), PERMITS, captured_on=CAPTURED_ON, settings=SETTINGS
    )
    assert flags["reason"].tolist() == ["off_cadastre"]
    assert flags.geometry.iloc[0].equals(box(X0 - 10, Y0 + 20, X0, Y0 + 30))
    assert flags["built_area_m2"].tolist() == [100.0]


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
    assert set(FLAG_RULES) == {
        "off_cadastre", "no_permit", "permit_expired", "over_footprint", "outside_buildable_zone"
    }  # fmt: skip


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


def _zoning() -> Zoning:
    """U1 (buildable) over the first 2.5 parcels, NA-1 (not) over the rest; none south of
    Y0 + 10 on the last parcel."""
    return Zoning(
        gpd.GeoDataFrame(
            {"zone": ["U1", "NA-1"], "buildable": [True, False]},
            geometry=[box(X0, Y0, X0 + 250, Y0 + 100), box(X0 + 250, Y0 + 10, X0 + 400, Y0 + 100)],
            crs=UTM,
        ),
        source="zoning.gpkg",
    )


def _flag_zoned(buildings, **options):
    return flag_new_buildings(
        buildings, _parcels(), PERMITS, captured_on=CAPTURED_ON, settings=SETTINGS,
        zoning=_zoning(), **options,
    ).set_index(["parcel_id", "reason"])  # fmt: skip


def test_a_structure_outside_the_buildable_zone_is_flagged_naming_the_zone():
    flags = _flag_zoned(_buildings([_building(0, 10.0), _building(3, 10.0)]))
    assert flags.index.tolist() == [
        ("BRK-0004", "no_permit"),
        ("BRK-0004", "outside_buildable_zone"),
    ]
    outside = flags.loc[("BRK-0004", "outside_buildable_zone")]
    assert outside["explanation"] == (
        "New structure of 100 m² on parcel BRK-0004; 100% of it lies outside the buildable "
        "zones, in zone NA-1 (not buildable)."
    )
    assert outside["severity"] == pytest.approx(1.0)
    assert outside["record_url"] == "https://cadastre.example/parcels/BRK-0004"
    assert outside["flag_id"] == "2025-03-10:outside_buildable_zone:BRK-0004"


def test_a_footprint_mostly_inside_the_buildable_zone_is_within_the_tolerance():
    # On BRK-0003 (permit of 50 m² in 2024-2026), 40 m² with 5 % or 50 % beyond x = 250 m.
    slightly = _buildings([_building(2, 4.0, x_m=46.2)], scores=[0.8])
    assert _flag_zoned(slightly).empty
    half = _buildings([_building(2, 4.0, x_m=48.0)], scores=[0.8])
    flags = _flag_zoned(half)
    assert flags.index.tolist() == [("BRK-0003", "outside_buildable_zone")]
    assert flags["severity"].iloc[0] == pytest.approx(0.4)  # half outside × score 0.8
    assert _flag_zoned(half, zoning_tolerance=0.6).empty


def test_land_no_zone_covers_counts_as_outside_and_is_said_so():
    # On BRK-0004 from y = 5 to 15 m: half on no zone, half in NA-1.
    south = _buildings([box(X0 + 320, Y0 + 5, X0 + 330, Y0 + 15)])
    outside = _flag_zoned(south).loc[("BRK-0004", "outside_buildable_zone")]
    assert outside["explanation"].endswith(
        "100% of it lies outside the buildable zones, in zone NA-1 (not buildable) and on "
        "land no zone of the plan covers."
    )


def test_zoning_read_from_a_file_in_lon_lat_applies_in_utm(tmp_path):
    path = write_geopackage(tmp_path / "zoning.gpkg", {"zoning": _zoning().zones.to_crs(4326)})
    zoning = read_zoning(path, UTM)
    flags = flag_new_buildings(
        _buildings([_building(3, 10.0)]), _parcels(), PERMITS, captured_on=CAPTURED_ON,
        settings=SETTINGS, zoning=zoning,
    )  # fmt: skip
    assert flags["reason"].tolist() == ["no_permit", "outside_buildable_zone"]


def test_every_flag_has_a_stable_id_and_starts_new():
    buildings = _buildings([_building(i, 10.0) for i in range(4)])
    first, again = _flag(buildings), _flag(buildings)
    assert first["flag_id"].tolist() == again["flag_id"].tolist()
    assert first["flag_id"].to_dict() == {
        "BRK-0002": "2025-03-10:permit_expired:BRK-0002",
        "BRK-0003": "2025-03-10:over_footprint:BRK-0003",
        "BRK-0004": "2025-03-10:no_permit:BRK-0004",
    }
    assert set(first["status"]) == {"new"}
    assert set(first["inspector_note"]) == {""}
