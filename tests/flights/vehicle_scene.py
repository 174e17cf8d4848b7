"""A small survey mission and simulated copters for the vehicle-link tests."""

from __future__ import annotations

from pyproj import Transformer

from core.types import Mission, SurveySpec, Waypoint
from flights.camera import get_camera, preview
from sim.vehicle import Health, SimVehicle

LEFT_M, TOP_M = 560_000.0, 3_862_000.0
GROUND_ELEVATION_M = 12.0
CAMERA = preview(get_camera("dji_mavic_3e"), 4)
TO_LONLAT = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)


def two_line_mission(line_m: float = 100.0, spacing_m: float = 40.0) -> Mission:
    """Two parallel east-west survey lines at 10 cm GSD, home 200 m south-west of them."""
    spec = SurveySpec(CAMERA, gsd_cm=10.0, speed_m_s=8.0)
    east, north = LEFT_M + 100.0, TOP_M - 100.0
    corners = [(east, north), (east + line_m, north), (east + line_m, north - spacing_m),
               (east, north - spacing_m)]  # fmt: skip
    waypoints = []
    for xy in corners:
        lon, lat = TO_LONLAT.transform(*xy)
        waypoints.append(Waypoint(lat, lon, spec.altitude_m))
    home_lon, home_lat = TO_LONLAT.transform(LEFT_M + 20.0, TOP_M - 280.0)
    return Mission(
        name="two lines",
        spec=spec,
        home=Waypoint(home_lat, home_lon, 0.0),
        waypoints=tuple(waypoints),
        distance_m=2 * line_m + spacing_m,
        estimated_time_s=60.0,
        photo_count=10,
    )


def quiet_sim(
    mission: Mission | None = None, *, health: Health | None = None, **options: object
) -> SimVehicle:
    """A copter at ``mission``'s home (default: the two-line mission) that takes no photos,
    at 100x real time."""
    home = (mission or two_line_mission()).home
    return SimVehicle(
        home_lonlat=(home.lon_deg, home.lat_deg),
        ground_elevation_m=GROUND_ELEVATION_M,
        speedup=100.0,
        health=health,
        **options,  # type: ignore[arg-type]
    )
