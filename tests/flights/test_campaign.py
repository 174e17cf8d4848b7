"""Campaigns: a layer of AOIs becomes sorties within battery and daylight, ordered, written."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date, time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.transform
import shapely
from pyproj import Transformer
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from core.errors import InputError, PlanError
from core.types import SurveySpec
from flights.aoi_layer import load_aois, load_launch_sites
from flights.camera import get_camera
from flights.campaign import Campaign, CampaignOptions, plan_campaign, split_area
from flights.campaign_files import write_campaign
from flights.daylight import flying_window
from flights.flight_time import mission_estimate
from flights.route import path_length_m
from flights.terrain import FLAT_TERRAIN_WARNING, Dem

UTM = "EPSG:32630"
LONLAT_CRS = "EPSG:4326"
ORIGIN_M = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(-2.30, 34.92)
WINDOW = CampaignOptions(earliest=time(9, 0), latest=time(16, 0))
START = date(2025, 4, 14)


def spec(**overrides: object) -> SurveySpec:
    camera = dataclasses.replace(get_camera("dji_mavic_3e"), **overrides)
    return SurveySpec(camera=camera, gsd_cm=3.0)


def parcel_layer(seed: int, count: int = 24, extent_m: float = 5000.0) -> gpd.GeoDataFrame:
    """Seeded scattered rectangles; every fourth one is not agricultural."""
    rng = np.random.default_rng(seed)
    parcels = []
    for _ in range(count):
        x, y = rng.uniform(0.0, extent_m, 2) + ORIGIN_M
        w, h = rng.uniform(120.0, 450.0, 2)
        parcels.append(affinity.rotate(box(x, y, x + w, y + h), rng.uniform(0.0, 90.0)))
    return gpd.GeoDataFrame(
        {
            "id": [f"P{i:03d}" for i in range(count)],
            "landuse": ["residential" if i % 4 == 3 else "farmland" for i in range(count)],
            "commune": "Sidi Slimane Cherraa",
        },
        geometry=parcels,
        crs=UTM,
    )


def farmland_campaign(seed: int = 1, **options: object) -> Campaign:
    aois = load_aois(parcel_layer(seed), category_column="landuse", categories={"farmland"})
    return plan_campaign(aois, spec(), START, options=dataclasses.replace(WINDOW, **options))


# ---- the layer ---------------------------------------------------------------------------


def test_the_category_filter_keeps_only_agricultural_aois() -> None:
    layer = parcel_layer(1)

    aois = load_aois(layer, category_column="landuse", categories={"farmland"})

    farmland = set(layer.loc[layer.landuse == "farmland", "id"])
    assert {a.aoi_id for a in aois} == farmland
    assert {a.commune for a in aois} == {"Sidi Slimane Cherraa"}


def test_a_missing_column_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "parcels.gpkg"
    parcel_layer(1).to_file(path)

    with pytest.raises(InputError, match=r"parcels\.gpkg.*'culture'"):
        load_aois(path, category_column="culture", categories={"farmland"})
    with pytest.raises(InputError, match=r"parcels\.gpkg.*id column 'parcel_id'"):
        load_aois(path, id_column="parcel_id")


def test_an_empty_layer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.gpkg"
    parcel_layer(1).iloc[:0].to_file(path)

    with pytest.raises(InputError, match=r"empty\.gpkg.*no features"):
        load_aois(path)


def test_no_aoi_left_after_filtering_says_which_values_exist() -> None:
    with pytest.raises(InputError, match="values found: farmland, residential"):
        load_aois(parcel_layer(1), category_column="landuse", categories={"orchard"})


def test_an_invalid_geometry_is_named_by_its_id() -> None:
    layer = parcel_layer(1)
    x, y = ORIGIN_M
    bowtie = Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100)])
    layer.loc[5, "geometry"] = bowtie

    with pytest.raises(InputError, match="AOI 'P005' has an invalid geometry.*Self-intersection"):
        load_aois(layer)


def test_a_multipart_aoi_gives_one_area_per_part() -> None:
    layer = parcel_layer(1).iloc[:1].copy()
    x, y = ORIGIN_M
    layer.loc[0, "geometry"] = shapely.MultiPolygon(
        [box(x, y, x + 100, y + 100), box(x + 500, y, x + 600, y + 100)]
    )

    assert [a.name for a in load_aois(layer)] == ["P000", "P000.2"]


# ---- splitting large AOIs ----------------------------------------------------------------


def test_a_large_aoi_is_cut_into_strips_along_the_lines() -> None:
    x, y = ORIGIN_M
    field = affinity.rotate(box(x, y, x + 1800.0, y + 1200.0), 20.0)  # 216 ha

    strips = split_area(field, max_area_m2=50e4, grid_angle_deg=30.0)

    assert len(strips) == 5
    assert all(s.area <= 50e4 + 1.0 for s in strips)
    assert shapely.union_all(strips).symmetric_difference(field).area < 1.0
    for strip in strips:  # long sides run along the grid direction (30 deg from north)
        upright = affinity.rotate(strip, 30.0, origin=field.centroid)
        minx, miny, maxx, maxy = upright.bounds
        assert maxy - miny > maxx - minx


def test_the_maximum_mission_area_bounds_every_mission() -> None:
    campaign = farmland_campaign(max_mission_area_ha=5.0)

    areas_ha = {}
    for sortie in campaign.sorties:
        aoi = shapely.from_wkt(sortie.mission.aoi_wkt_lonlat)
        aoi_m = shapely.transform(
            aoi, Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform, interleaved=False
        )
        areas_ha[sortie.mission.name.rsplit("-", 1)[0]] = aoi_m.area / 1e4
    assert max(areas_ha.values()) <= 5.0 + 1e-6
    assert any("." in name for name in areas_ha)  # some AOIs were split


# ---- the plan ----------------------------------------------------------------------------


def test_every_sortie_fits_in_the_usable_endurance() -> None:
    campaign = farmland_campaign()

    usable_s = get_camera("dji_mavic_3e").endurance_s * 0.75
    assert campaign.usable_endurance_s == usable_s
    assert all(s.flight_time_s <= usable_s for s in campaign.sorties)


def test_every_farmland_aoi_is_flown_and_nothing_else() -> None:
    layer = parcel_layer(1)

    campaign = farmland_campaign()

    assert {s.aoi_id for s in campaign.sorties} == set(layer.loc[layer.landuse == "farmland", "id"])


def test_sorties_fly_inside_each_day_window_one_after_another() -> None:
    campaign = farmland_campaign()

    assert len(campaign.days) > 1
    for day in campaign.days:
        sunrise, sunset = flying_window(day.day, -2.30, 34.92, margin_s=0.0)
        assert sunrise < day.window_start and day.window_end < sunset
        assert (day.window_start.hour, day.window_end.hour) == (9, 16)
        for sortie in day.sorties:
            assert day.window_start <= sortie.takeoff < sortie.landing <= day.window_end
        for before, after in zip(day.sorties, day.sorties[1:], strict=False):
            assert after.takeoff >= before.landing


def test_a_swap_or_a_move_separates_sorties() -> None:
    campaign = farmland_campaign(battery_swap_s=600.0, setup_s=1200.0)

    pauses = {"move": [], "swap": []}
    for day in campaign.days:
        for before, after in zip(day.sorties, day.sorties[1:], strict=False):
            pause_s = (after.takeoff - before.landing).total_seconds()
            if after.site_id != before.site_id:
                pauses["move"].append(pause_s)
            elif after.battery_swap:
                pauses["swap"].append(pause_s)
    assert pauses["move"] and min(pauses["move"]) >= 1200.0
    assert pauses["swap"] == pytest.approx([600.0] * len(pauses["swap"])) and pauses["swap"]


def test_the_visiting_order_is_shorter_than_the_input_order() -> None:
    layer = parcel_layer(7, count=40)
    aois = load_aois(layer)

    campaign = plan_campaign(aois, spec(), START, options=WINDOW)

    centre = {a.aoi_id: a.polygon_m.centroid.coords[0] for a in aois}
    visited = list(dict.fromkeys(s.aoi_id for s in campaign.sorties))
    points = np.array([centre[i] for i in visited])
    input_order = [visited.index(a.aoi_id) for a in aois]
    assert path_length_m(points, list(range(len(points)))) < 0.5 * path_length_m(
        points, input_order
    )


def test_launch_sites_of_a_layer_serve_their_nearest_aois() -> None:
    layer = parcel_layer(1)
    xs, ys = ORIGIN_M[0] + np.array([500.0, 4500.0]), ORIGIN_M[1] + np.array([2500.0, 2500.0])
    sites = gpd.GeoDataFrame({"id": ["west", "east"]}, geometry=gpd.points_from_xy(xs, ys), crs=UTM)
    aois = load_aois(layer)

    campaign = plan_campaign(
        aois, spec(), START, launch_sites=load_launch_sites(sites), options=WINDOW
    )

    polygon = {a.aoi_id: a.polygon_m for a in aois}
    by_id = dict(zip(sites.id, sites.geometry, strict=True))
    assert {s.site_id for s in campaign.sites} == {"west", "east"}
    for sortie in campaign.sorties:
        nearest = min(by_id, key=lambda k: polygon[sortie.aoi_id].distance(by_id[k]))
        assert sortie.site_id == nearest


def test_data_volume_is_photos_times_photo_size() -> None:
    campaign = farmland_campaign()

    assert all(s.data_mb == pytest.approx(s.photo_count * 11.0) for s in campaign.sorties)
    assert campaign.data_mb == pytest.approx(campaign.photo_count * 11.0)
    assert not any("estimated" in w for w in campaign.warnings)


def test_data_volume_is_estimated_from_pixels_and_bands_without_photo_mb() -> None:
    aois = load_aois(parcel_layer(1))[:3]

    campaign = plan_campaign(aois, spec(photo_mb=None), START, options=WINDOW)

    per_photo_mb = 5280 * 3956 * 0.5 / 1e6  # an RGB JPEG at half a byte per pixel
    assert campaign.data_mb == pytest.approx(campaign.photo_count * per_photo_mb)
    assert any("data volume estimated" in w for w in campaign.warnings)


def test_a_camera_without_endurance_needs_one_given() -> None:
    aois = load_aois(parcel_layer(1))[:2]

    with pytest.raises(PlanError, match="endurance_s"):
        plan_campaign(aois, spec(endurance_s=None), START)
    campaign = plan_campaign(
        aois, spec(endurance_s=None), START, options=CampaignOptions(endurance_s=1200.0)
    )
    assert all(s.flight_time_s <= 900.0 for s in campaign.sorties)


# ---- output ------------------------------------------------------------------------------


def test_the_campaign_is_written_as_geopackage_and_csv(tmp_path: Path) -> None:
    campaign = farmland_campaign()
    gpkg, csv = tmp_path / "campaign.gpkg", tmp_path / "campaign.csv"

    write_campaign(campaign, gpkg, csv)

    layers = [name for name, _ in pyogrio.list_layers(gpkg)]
    assert layers == ["missions", "launch_sites", "refused_aois"]
    assert gpd.read_file(gpkg, layer="refused_aois").empty
    missions = gpd.read_file(gpkg, layer="missions")
    assert len(missions) == len(campaign.sorties)
    assert missions.crs.to_epsg() == 32630
    assert missions.photo_count.sum() == campaign.photo_count
    home = missions.geometry.iloc[0].coords[0]
    assert Point(home).distance(Point(missions.geometry.iloc[0].coords[-1])) < 1e-6
    sites = gpd.read_file(gpkg, layer="launch_sites")
    assert sites.sorties.sum() == len(campaign.sorties)
    assert list(sites.site_id) == [s.site_id for s in campaign.sites]
    with sqlite3.connect(gpkg) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300  # GeoPackage 1.3
    summary = pd.read_csv(csv)
    assert list(summary.mission) == [s.mission.name for s in campaign.sorties]
    assert summary.data_mb.sum() == pytest.approx(campaign.data_mb, rel=1e-3)


# ---- one flight-time model, safety -------------------------------------------------------

GMFO_LONLAT = (-1.923889, 34.787222)
"""Oujda Angads airport's reference point; its default no-fly zone is a 6.5 km circle."""


def fields_north_of_gmfo(*north_km: float, side_m: float = 300.0) -> gpd.GeoDataFrame:
    """Square fields centred ``north_km`` north of the GMFO reference point."""
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(*GMFO_LONLAT)
    fields = [
        box(x - side_m / 2, y + km * 1000 - side_m / 2, x + side_m / 2, y + km * 1000 + side_m / 2)
        for km in north_km
    ]
    ids = [f"F{k}" for k in range(len(fields))]
    return gpd.GeoDataFrame({"id": ids, "commune": "Oujda"}, geometry=fields, crs=UTM)


def test_an_aoi_across_an_airport_zone_is_left_out_with_the_reason(tmp_path: Path) -> None:
    layer = fields_north_of_gmfo(6.5, 9.0, 10.0)  # F0 straddles the 6.5 km circle

    campaign = plan_campaign(load_aois(layer), spec(), START, options=WINDOW)

    assert {s.aoi_id for s in campaign.sorties} == {"F1", "F2"}
    (refused,) = campaign.refused
    assert refused.area.aoi_id == "F0"
    assert "no-fly zone" in refused.reason and "GMFO" in refused.reason
    assert any(w.startswith("AOI F0 left out") and "GMFO" in w for w in campaign.warnings)
    gpkg, csv = tmp_path / "c.gpkg", tmp_path / "c.csv"
    write_campaign(campaign, gpkg, csv)
    written = gpd.read_file(gpkg, layer="refused_aois")
    assert list(written.aoi_id) == ["F0"] and "GMFO" in written.reason.iloc[0]
    assert written.geometry.iloc[0].equals_exact(layer.geometry.iloc[0], 1e-6)
    summary = pd.read_csv(csv)
    assert list(summary.loc[summary.status == "refused", "aoi_id"]) == ["F0"]
    assert set(summary.loc[summary.status == "planned", "aoi_id"]) == {"F1", "F2"}


def test_every_sortie_is_fenced_and_checked_against_the_given_zones() -> None:
    layer = fields_north_of_gmfo(9.0, 10.0)
    zone = layer.geometry.iloc[1].buffer(50.0)
    no_fly = gpd.GeoDataFrame({"name": ["Prison"]}, geometry=[zone], crs=UTM).to_crs(LONLAT_CRS)

    campaign = plan_campaign(load_aois(layer), spec(), START, options=WINDOW, no_fly=no_fly)

    assert [r.area.aoi_id for r in campaign.refused] == ["F1"]
    assert "Prison" in campaign.refused[0].reason
    assert "GMFO" not in campaign.refused[0].reason  # only the given zones are checked
    for sortie in campaign.sorties:
        inclusion, *exclusions = sortie.mission.fence
        assert inclusion.inclusion and not any(z.inclusion for z in exclusions)


def test_a_campaign_with_no_safe_aoi_is_refused() -> None:
    layer = fields_north_of_gmfo(1.0, 3.0)

    with pytest.raises(PlanError, match=r"no AOI can be flown safely.*F0.*GMFO"):
        plan_campaign(load_aois(layer), spec(), START, options=WINDOW)


def test_sortie_times_are_the_flight_time_model() -> None:
    campaign = farmland_campaign()

    for sortie in campaign.sorties:
        estimate = mission_estimate(sortie.mission, UTM)
        assert sortie.flight_time_s == pytest.approx(estimate.time_s, rel=1e-9)
        assert sortie.mission.distance_m == pytest.approx(estimate.distance_m, rel=1e-9)
    assert any(FLAT_TERRAIN_WARNING in w for w in campaign.warnings)


def test_auto_angle_flies_each_area_faster() -> None:
    aois = load_aois(parcel_layer(3, count=8))  # rectangles rotated 0-90 degrees

    fixed = plan_campaign(aois, spec(), START, options=WINDOW)
    auto = plan_campaign(aois, spec(), START, options=dataclasses.replace(WINDOW, auto_angle=True))

    assert auto.flight_time_s < 0.95 * fixed.flight_time_s
    assert {s.mission.spec.grid_angle_deg for s in fixed.sorties} == {0.0}
    assert len({s.mission.spec.grid_angle_deg for s in auto.sorties}) > 4


def test_with_a_dem_sorties_follow_the_terrain(tmp_path: Path) -> None:
    layer = parcel_layer(1, count=4, extent_m=1500.0)
    left, bottom = ORIGIN_M[0] - 2000.0, ORIGIN_M[1] - 2000.0
    pixel_m, size_px = 10.0, 600  # 6 km square, rising 5 % to the east
    heights = 100.0 + 0.05 * pixel_m * np.tile(np.arange(size_px) + 0.5, (size_px, 1))
    path = tmp_path / "dem.tif"
    transform = rasterio.transform.from_origin(left, bottom + size_px * pixel_m, pixel_m, pixel_m)
    profile = dict(driver="GTiff", width=size_px, height=size_px, count=1, dtype="float32")
    with rasterio.open(path, "w", crs=UTM, transform=transform, **profile) as dst:
        dst.write(heights.astype("float32"), 1)

    campaign = plan_campaign(load_aois(layer), spec(), START, options=WINDOW, dem=Dem(path))

    assert not any(FLAT_TERRAIN_WARNING in w for w in campaign.warnings)
    for sortie in campaign.sorties:
        altitudes_m = [w.altitude_m for w in sortie.mission.waypoints]
        assert max(altitudes_m) - min(altitudes_m) > 5.0  # 5 % over fields of 120 m and more
        assert sortie.flight_time_s == pytest.approx(
            mission_estimate(sortie.mission, UTM).time_s, rel=1e-9
        )
