"""ArduPilot QGC WPL 110 waypoint files: real ones round-trip at full precision."""

from __future__ import annotations

import pytest
from sample_missions import HOME_AMSL_M, terrain_mission

from core.errors import InputError
from flights.items import mission_items
from flights.qgc_plan import read_qgc_plan
from flights.wpl import read_waypoints, write_waypoints

WAYPOINT, TAKEOFF, RTL = 16, 22, 20
REAL_WAYPOINT_FILES = [
    "mavsdk/mission_planner_sample.txt",
    "ardupilot/copter_AVC2013_mission.txt",
    "ardupilot/copter_CANGPS_mission.txt",
]
REAL_PLANS = ["qgroundcontrol_sample.plan", "qgroundcontrol_sample_with_survey.plan"]


@pytest.mark.parametrize("name", REAL_WAYPOINT_FILES)
def test_real_waypoint_files_round_trip(shared_data, tmp_path, name: str) -> None:
    document = read_waypoints(shared_data / "missions" / name)
    assert len(document.items) >= 4
    assert read_waypoints(write_waypoints(document, tmp_path / "copy.waypoints")) == document


@pytest.mark.parametrize("name", REAL_PLANS)
def test_real_plans_keep_their_items_as_waypoint_files(shared_data, tmp_path, name) -> None:
    plan = read_qgc_plan(shared_data / "missions/mavsdk" / name)
    copy = read_waypoints(write_waypoints(plan, tmp_path / "from_plan.waypoints"))
    assert copy.items == plan.items


def test_ardupilot_waypoint_file_values(shared_data) -> None:
    items = read_waypoints(shared_data / "missions/ardupilot/copter_CANGPS_mission.txt").items
    home, takeoff, loiter = items[0], items[1], items[4]
    assert (home.command, home.current, home.alt) == (WAYPOINT, True, 582.0)
    assert (takeoff.command, takeoff.frame, takeoff.alt) == (TAKEOFF, 3, 20.0)
    assert (loiter.command, loiter.p1, loiter.p4) == (19, 5.0, 1.0)
    assert items[-1].command == RTL


def test_mission_reads_back_at_full_precision(tmp_path) -> None:
    mission = terrain_mission()
    path = write_waypoints(mission, tmp_path / "m.waypoints", home_alt_amsl_m=HOME_AMSL_M)
    assert path.read_text().startswith("QGC WPL 110\n")
    assert read_waypoints(path).items == tuple(mission_items(mission, home_alt_amsl_m=HOME_AMSL_M))


def test_our_waypoint_file_has_no_nan_for_mission_planner(tmp_path) -> None:
    text = write_waypoints(terrain_mission(), tmp_path / "m.waypoints").read_text()
    assert "nan" not in text.lower()
    takeoff = text.splitlines()[2].split("\t")
    assert (takeoff[3], takeoff[7]) == (str(TAKEOFF), "0.0")  # command, yaw


def test_unset_values_read_as_none(tmp_path) -> None:
    path = tmp_path / "qgc.waypoints"
    path.write_text(
        "QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\t0\t34.9\t-2.3\t150\t1\n"
        "1\t0\t3\t22\t0\t0\t0\tnan\t34.9\t-2.3\t40\t1\n",
        encoding="ascii",
    )
    takeoff = read_waypoints(path).items[1]
    assert (takeoff.command, takeoff.p3, takeoff.p4, takeoff.alt) == (TAKEOFF, 0.0, None, 40.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QGC WPL 120\n", "not a readable QGC WPL"),
        ("QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\n", "not a readable QGC WPL"),
        ("QGC WPL 110\n0 1 0 16 a b c d e f g 1\n", "not a readable QGC WPL"),
        ("QGC WPL 110\n", "has no mission items"),
    ],
)
def test_malformed_waypoint_file_is_refused(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.waypoints"
    path.write_text(text, encoding="ascii")
    with pytest.raises(InputError, match=f"bad.waypoints: .*{message}"):
        read_waypoints(path)
