"""Mission safety: airports and user no-fly zones, the geofence, the height cap, battery, wind."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, Polygon, box

from core.errors import InputError, PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import reproject
from flights.camera import get_camera, preview
from flights.plan import plan_survey
from flights.safety import check_mission, geofence, load_no_fly_zones, with_geofence
from flights.terrain import Dem, follow_terrain

LONLAT = "EPSG:4326"
UTM = "EPSG:32630"
GMFO_ARP = (-1.923889, 34.787222)
BERKANE = (-2.30, 34.93)


def aeqd(lon_deg: float, lat_deg: float) -> str:
    return f"+proj=aeqd +lat_0={lat_deg} +lon_0={lon_deg} +datum=WGS84 +units=m"


def mission_near(
    centre_lonlat: tuple[float, float],
    east_m: float = 0.0,
    north_m: float = 0.0,
    home_m: tuple[float, float] = (-50.0, -50.0),
    gsd_cm: float = 10.0,
) -> Mission:
    """A 400 m × 300 m survey (10 cm/px: 94 m up) whose south-west corner is ``east_m``, ``north_m``
    from ``centre_lonlat``; home at ``home_m`` from that corner."""
    crs = aeqd(*centre_lonlat)
    aoi = reproject(box(east_m, north_m, east_m + 400.0, north_m + 300.0), crs, LONLAT)
    to_lonlat = Transformer.from_crs(crs, LONLAT, always_xy=True)
    home_lon, home_lat = to_lonlat.transform(east_m + home_m[0], north_m + home_m[1])
    spec = SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), gsd_cm=gsd_cm)
    home = Waypoint(lat_deg=home_lat, lon_deg=home_lon, altitude_m=0.0)
    return plan_survey(aoi, spec, home, name="test-survey")


def write_dem(path: Path, ground_m, centre_lonlat: tuple[float, float] = BERKANE) -> Path:
    """A 2 m DEM in UTM 30N of ``ground_m(east_m, north_m)`` around ``centre_lonlat``."""
    x0, y0 = Transformer.from_crs(LONLAT, UTM, always_xy=True).transform(*centre_lonlat)
    east = np.arange(-600.0, 1000.0, 2.0) + 1.0
    north = np.arange(800.0, -600.0, -2.0) - 1.0
    heights = ground_m(*np.meshgrid(east, north)).astype("float32")
    profile = dict(driver="GTiff", width=east.size, height=north.size, count=1, dtype="float32")
    transform = from_origin(x0 - 600.0, y0 + 800.0, 2.0, 2.0)
    with rasterio.open(path, "w", crs=UTM, transform=transform, **profile) as dst:
        dst.write(heights, 1)
    return path


def valley_m(east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
    """Home on a plateau at 300 m; east of 0 m the ground falls 60 m into a valley."""
    return 300.0 - 60.0 / (1.0 + np.exp(-(east_m - 100.0) / 40.0))


def hill_m(east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
    """Ground rising 30 % to the east."""
    return 100.0 + 0.3 * np.maximum(east_m, 0.0)


def test_default_layer_holds_the_two_airports_with_their_sources() -> None:
    zones = load_no_fly_zones()
    assert sorted(zones["icao"]) == ["GMFO", "GMMW"]
    assert all("wikipedia.org" in source for source in zones["source"])
    gmfo = zones.loc[zones["icao"] == "GMFO"].geometry.iloc[0]
    assert gmfo.contains(Point(GMFO_ARP))
    area_km2 = reproject(gmfo, LONLAT, aeqd(*GMFO_ARP)).area / 1e6
    assert area_km2 == pytest.approx(math.pi * 6.5**2, rel=0.01)


def test_aoi_across_oujda_airport_is_refused_naming_it() -> None:
    mission = mission_near(GMFO_ARP, -200.0, -150.0)
    with pytest.raises(PlanError, match=r"no-fly zone Oujda Angads airport \(GMFO\) by \d+ m"):
        check_mission(mission)


def test_mission_near_but_outside_the_airport_zone_passes() -> None:
    mission = mission_near(GMFO_ARP, 7500.0, 0.0)
    assert check_mission(mission).waypoints == mission.waypoints


def test_transit_from_a_home_inside_the_zone_is_refused() -> None:
    mission = mission_near(GMFO_ARP, 6700.0, 0.0, home_m=(-500.0, 0.0))
    with pytest.raises(PlanError, match=r"GMFO\) by \d+ m"):
        check_mission(mission)


def test_user_zone_from_a_geopackage_is_added_and_refused(tmp_path) -> None:
    mission = mission_near(BERKANE)
    helipad_lonlat = Point(BERKANE[0] + 0.001, BERKANE[1] + 0.001)
    helipad = reproject(helipad_lonlat, LONLAT, UTM).buffer(150.0)
    user = gpd.GeoDataFrame({"name": ["hospital helipad"]}, geometry=[helipad], crs=UTM)
    user.to_file(tmp_path / "zones.gpkg", layer="no_fly")
    zones = load_no_fly_zones(tmp_path / "zones.gpkg")
    assert list(zones["name"])[-1] == "hospital helipad"
    assert zones.crs.to_epsg() == 4326
    check_mission(mission)  # the default layer has nothing here
    with pytest.raises(PlanError, match=r"no-fly zone hospital helipad by \d+ m \(user no-fly"):
        check_mission(mission, no_fly=zones)


def test_bad_user_zone_files_name_the_file_and_the_problem(tmp_path) -> None:
    nameless = gpd.GeoDataFrame({"label": ["x"]}, geometry=[box(0, 0, 1, 1)], crs=LONLAT)
    nameless.to_file(tmp_path / "nameless.gpkg")
    with pytest.raises(InputError, match=r"nameless.gpkg: no 'name' column"):
        load_no_fly_zones(tmp_path / "nameless.gpkg")
    points = gpd.GeoDataFrame({"name": ["mast"]}, geometry=[Point(0, 0)], crs=LONLAT)
    points.to_file(tmp_path / "points.geojson")
    with pytest.raises(InputError, match=r"points.geojson: zone 'mast': Point, not a polygon"):
        load_no_fly_zones(tmp_path / "points.geojson")
    with pytest.raises(InputError, match=r"missing.gpkg: cannot read the no-fly zones"):
        load_no_fly_zones(tmp_path / "missing.gpkg")


def test_geofence_holds_aoi_path_and_home_with_the_margin() -> None:
    mission = mission_near(BERKANE)
    fence = geofence(mission, margin_m=50.0)
    assert fence.inclusion
    crs = aeqd(mission.home.lon_deg, mission.home.lat_deg)
    fence_m = reproject(Polygon(fence.polygon_lonlat), LONLAT, crs)
    flown = [(w.lon_deg, w.lat_deg) for w in (mission.home, *mission.waypoints)]
    path_m = reproject(LineString(flown), LONLAT, crs)
    aoi_m = reproject(shapely.from_wkt(mission.aoi_wkt_lonlat), LONLAT, crs)
    assert fence_m.contains(path_m) and fence_m.contains(aoi_m)
    margin_m = fence_m.exterior.distance(path_m.union(aoi_m))
    assert 50.0 <= margin_m <= 50.0 * 1.05


def test_fence_includes_nearby_airport_as_an_exclusion_zone() -> None:
    near = with_geofence(mission_near(GMFO_ARP, 7500.0, 0.0))
    far = with_geofence(mission_near(BERKANE))
    assert [zone.inclusion for zone in near.fence] == [True, False]
    exclusion = Polygon(near.fence[1].polygon_lonlat)
    assert exclusion.contains(load_no_fly_zones().geometry.iloc[0])
    assert [zone.inclusion for zone in far.fence] == [True]
    check_mission(near)  # its own exclusion zone does not refuse it


def test_mission_altered_to_leave_its_fence_is_refused() -> None:
    mission = with_geofence(mission_near(BERKANE))
    moved = list(mission.waypoints)
    moved[3] = dataclasses.replace(moved[3], lat_deg=moved[3].lat_deg + 0.01)  # 1.1 km north
    with pytest.raises(PlanError, match=r"leaves its geofence by \d+ m near lon"):
        check_mission(dataclasses.replace(mission, waypoints=tuple(moved)))


def test_300_m_above_home_is_refused() -> None:
    mission = mission_near(BERKANE)
    high = tuple(dataclasses.replace(w, altitude_m=300.0) for w in mission.waypoints)
    with pytest.raises(PlanError, match=r"flies 300 m above ground .* over the 120 m cap"):
        check_mission(dataclasses.replace(mission, waypoints=high))


def test_terrain_drop_over_the_cap_is_refused_with_a_dem(tmp_path) -> None:
    mission = mission_near(BERKANE)  # 94 m above home; the valley floor is 60 m lower
    dem = Dem(write_dem(tmp_path / "valley.tif", valley_m))
    check_mission(mission)  # without the DEM, nothing to see
    with pytest.raises(PlanError, match=r"flies 15\d m above ground .* 5\d m below home"):
        check_mission(mission, dem=dem)
    check_mission(follow_terrain(mission, dem), dem=dem)


def test_flat_plan_into_rising_ground_is_refused_with_a_dem(tmp_path) -> None:
    mission = mission_near(BERKANE)  # the ground rises 120 m across the AOI
    dem = Dem(write_dem(tmp_path / "hill.tif", hill_m))
    with pytest.raises(PlanError, match=r"under the 10 m clearance"):
        check_mission(mission, dem=dem)
    check_mission(follow_terrain(mission, dem), dem=dem)


def test_terrain_following_close_to_the_cap_stays_under_it(tmp_path) -> None:
    mission = mission_near(BERKANE, gsd_cm=12.0)
    assert 110.0 < mission.altitude_m < 120.0
    dem = Dem(write_dem(tmp_path / "hill.tif", hill_m))
    check_mission(follow_terrain(mission, dem), dem=dem)


def test_flight_over_the_usable_endurance_is_refused_by_how_much() -> None:
    mission = mission_near(BERKANE)
    minutes = mission.estimated_time_s / 60.0
    assert check_mission(mission).warnings == ()  # the Mavic 3E's 45 min suffice
    with pytest.raises(
        PlanError, match=r"over the 7.5 min usable .* split the AOI into a campaign"
    ):
        check_mission(mission, endurance_s=600.0)
    with pytest.raises(PlanError, match=rf"needs {minutes:.1f} min of flight"):
        check_mission(mission, endurance_s=minutes * 60.0, reserve=0.25)


def test_unknown_endurance_is_a_warning() -> None:
    mission = mission_near(BERKANE)
    anonymous = dataclasses.replace(mission.spec.camera, endurance_s=None)
    mission = dataclasses.replace(mission, spec=dataclasses.replace(mission.spec, camera=anonymous))
    (warning,) = check_mission(mission).warnings
    assert warning.startswith("battery endurance unknown")


def test_wind_near_the_limit_warns_and_over_it_refuses() -> None:
    mission = mission_near(BERKANE)
    assert check_mission(mission, wind_m_s=5.0, max_wind_m_s=12.0).warnings == ()
    (warning,) = check_mission(mission, wind_m_s=10.5, max_wind_m_s=12.0).warnings
    assert warning.startswith("wind 10.5 m/s is 88% of the drone's 12.0 m/s limit")
    with pytest.raises(PlanError, match=r"wind 13.0 m/s is over the drone's 12.0 m/s limit"):
        check_mission(mission, wind_m_s=13.0, max_wind_m_s=12.0)
