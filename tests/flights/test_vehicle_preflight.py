"""Pre-flight checks against the simulated copter reporting healthy and faulty states."""

from __future__ import annotations

import time

import pytest
from vehicle_scene import quiet_sim, two_line_mission

from core.errors import VehicleError
from flights.vehicle import PreflightLimits, connect_vehicle, preflight, preflight_problems
from sim.vehicle import Health

HOME = two_line_mission().home


def test_a_healthy_vehicle_at_the_planned_home_passes_every_check() -> None:
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        preflight(link, planned_home_latlon=(HOME.lat_deg, HOME.lon_deg), timeout_s=3.0)
        assert preflight_problems(link) == []


def test_every_failed_check_is_named_in_one_error() -> None:
    health = Health(gps_fix_type=1, satellites=4, hdop=3.5, battery_pct=40.0,
                    ekf_healthy=False, home_known=False)  # fmt: skip
    with quiet_sim(health=health) as sim, connect_vehicle(sim.address, 10.0) as link:
        start = time.monotonic()
        with pytest.raises(VehicleError, match="pre-flight checks failed") as failed:
            preflight(link, timeout_s=1.0)
        assert time.monotonic() - start < 2.0
    message = str(failed.value)
    for expected in (
        "GPS has no 3D fix (fix type 1)",
        "GPS sees 4 satellites, at least 8 are required",
        "GPS HDOP 3.5 is above 2",
        "battery at 40 %, at least 90 % is required: fit a charged battery",
        "home position is not set",
        "EKF position estimate is not ready",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("health", "limits", "expected"),
    [
        (Health(battery_pct=85.0), PreflightLimits(), ["battery at 85 %"]),
        (Health(battery_pct=85.0), PreflightLimits(min_battery_pct=80.0), []),
        (Health(satellites=9), PreflightLimits(min_satellites=10), ["GPS sees 9 satellites"]),
        (Health(gps_fix_type=2), PreflightLimits(), ["GPS has no 3D fix (fix type 2)"]),
    ],
)
def test_limits_decide_which_checks_fail(
    health: Health, limits: PreflightLimits, expected: list[str]
) -> None:
    with quiet_sim(health=health) as sim, connect_vehicle(sim.address, 10.0) as link:
        deadline = time.monotonic() + 3.0
        while link.vehicle.home_location is None and time.monotonic() < deadline:
            time.sleep(0.05)  # home comes with the next heartbeat
        problems = preflight_problems(link, limits)
    assert len(problems) == len(expected)
    assert all(p.startswith(e) for p, e in zip(problems, expected, strict=True))


def test_a_plan_made_for_another_home_is_refused() -> None:
    far_away = (HOME.lat_deg + 0.02, HOME.lon_deg)  # about 2.2 km north
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        with pytest.raises(VehicleError, match=r"home is 22\d\d m from the plan's home"):
            preflight(link, planned_home_latlon=far_away, timeout_s=1.0)


def test_an_armed_vehicle_is_not_started_again() -> None:
    with quiet_sim() as sim, connect_vehicle(sim.address, 10.0) as link:
        link.vehicle.mode = "GUIDED"
        link.vehicle.arm(timeout=5.0)
        with pytest.raises(VehicleError, match=r"already armed \(mode GUIDED\): land and disarm"):
            preflight(link, timeout_s=0.5)
