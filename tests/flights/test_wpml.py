"""DJI WPML routes (.kmz): our missions round-trip; foreign or broken archives are refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from dataclasses import replace

import pytest
from sample_missions import (
    HOME_AMSL_M,
    TRANSIT_LEG,
    berkane_mission,
    terrain_mission,
    with_camera,
)

from core.errors import InputError, PlanError
from flights.items import plan_document
from flights.qgc_plan import read_qgc_plan
from flights.wpml import (
    MAVIC_3E,
    TEMPLATE,
    WAYLINES,
    WPML_NS,
    UnsupportedAircraftError,
    read_dji_kmz,
    write_dji_kmz,
)

NS = {"kml": "http://www.opengis.net/kml/2.2", "wpml": WPML_NS}


def archive_part(path, name: str) -> ET.Element:
    with zipfile.ZipFile(path) as archive:
        return ET.fromstring(archive.read(name))


def rewrite_part(source, target, name: str, edit) -> None:
    """A copy of the archive ``source`` with part ``name`` passed through ``edit(text)``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for part in old.namelist():
            data = old.read(part).decode()
            new.writestr(part, edit(data) if part == name else data)


def declared(path) -> tuple[str | None, ...]:
    """(drone enum, drone sub-enum, payload enum, image format) of a route's template."""
    template = archive_part(path, TEMPLATE)
    return tuple(
        template.findtext(f".//wpml:{name}", namespaces=NS)
        for name in ("droneEnumValue", "droneSubEnumValue", "payloadEnumValue", "imageFormat")
    )


@pytest.mark.parametrize("make", [berkane_mission, terrain_mission])
def test_mission_round_trips_through_a_dji_route(tmp_path, make) -> None:
    mission = make()
    path = write_dji_kmz(mission, tmp_path / "m.kmz", home_alt_amsl_m=HOME_AMSL_M)
    document = read_dji_kmz(path)
    assert document.items == plan_document(mission, HOME_AMSL_M).items
    assert document.cruise_speed_m_s == mission.spec.speed_m_s
    assert document.home_alt_known


def test_route_archive_holds_template_and_waylines(tmp_path) -> None:
    path = write_dji_kmz(berkane_mission(), tmp_path / "m.kmz", home_alt_amsl_m=HOME_AMSL_M)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [TEMPLATE, WAYLINES]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    template = archive_part(path, TEMPLATE)
    assert template.findtext(".//wpml:templateType", namespaces=NS) == "waypoint"
    assert template.findtext(".//wpml:takeOffRefPoint", namespaces=NS) == "34.9295,-2.3005,152.5"


def test_an_unknown_home_height_leaves_out_the_reference_take_off_point(tmp_path) -> None:
    mission = berkane_mission()
    path = write_dji_kmz(mission, tmp_path / "m.kmz")
    assert archive_part(path, TEMPLATE).find(".//wpml:takeOffRefPoint", NS) is None
    document = read_dji_kmz(path)
    first = mission.waypoints[0]
    home = document.items[0]
    assert (home.lat, home.lon, home.alt) == (first.lat_deg, first.lon_deg, 0.0)
    assert not document.home_alt_known
    assert document.items[2:] == plan_document(mission).items[2:]


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ("dji_mavic_3e", ("77", "0", "66", "wide")),
        ("dji_mavic_3m", ("77", "2", "68", "visable")),
        ("dji_mavic_3m_multispectral", ("77", "2", "68", "visable,narrow_band")),
        ("dji_m350_p1_35mm", ("89", "0", "50", None)),
    ],
)
def test_the_route_declares_the_aircraft_of_the_camera(tmp_path, camera, expected) -> None:
    path = write_dji_kmz(with_camera(berkane_mission(), camera), tmp_path / "m.kmz")
    assert declared(path) == expected


@pytest.mark.parametrize(
    "camera", ["dji_phantom_4_rtk", "dji_phantom_4_multispectral", "micasense_altum_pt"]
)
def test_no_route_for_an_aircraft_dji_pilot_does_not_fly(tmp_path, camera) -> None:
    mission = with_camera(berkane_mission(), camera)
    with pytest.raises(
        UnsupportedAircraftError, match="no DJI route .*fly the .plan or .waypoints"
    ):
        write_dji_kmz(mission, tmp_path / "m.kmz")
    assert not list(tmp_path.iterdir())


def test_a_document_needs_its_aircraft_named(tmp_path) -> None:
    document = plan_document(berkane_mission())
    with pytest.raises(UnsupportedAircraftError, match="names no camera"):
        write_dji_kmz(document, tmp_path / "m.kmz")
    assert declared(write_dji_kmz(document, tmp_path / "m.kmz", aircraft=MAVIC_3E))[0] == "77"


def test_waylines_fly_heights_above_take_off_with_distance_photos(tmp_path) -> None:
    mission = terrain_mission()
    waylines = archive_part(write_dji_kmz(mission, tmp_path / "m.kmz"), WAYLINES)
    folder = waylines.find("kml:Document/kml:Folder", NS)
    assert folder.findtext("wpml:executeHeightMode", namespaces=NS) == "relativeToStartPoint"
    placemarks = folder.findall("kml:Placemark", NS)
    assert [float(p.findtext("wpml:executeHeight", namespaces=NS)) for p in placemarks] == [
        w.altitude_m for w in mission.waypoints
    ]
    runs = [
        (
            int(g.findtext("wpml:actionGroupStartIndex", namespaces=NS)),
            int(g.findtext("wpml:actionGroupEndIndex", namespaces=NS)),
            float(g.findtext("wpml:actionTrigger/wpml:actionTriggerParam", namespaces=NS)),
        )
        for g in folder.iterfind(".//wpml:actionGroup", NS)
        if g.findtext(".//wpml:actionActuatorFunc", namespaces=NS) == "takePhoto"
    ]
    last = len(mission.waypoints) - 1
    distance_m = mission.trigger_distance_m
    assert runs == [(0, TRANSIT_LEG, distance_m), (TRANSIT_LEG + 1, last, distance_m)]


def test_other_wpml_namespace_versions_are_read(tmp_path) -> None:
    mission = berkane_mission()
    ours = write_dji_kmz(mission, tmp_path / "m.kmz", home_alt_amsl_m=HOME_AMSL_M)
    newer = tmp_path / "newer.kmz"
    rewrite_part(ours, newer, WAYLINES, lambda text: text.replace("1.0.2", "1.0.6"))
    assert read_dji_kmz(newer).items == plan_document(mission, HOME_AMSL_M).items


def test_a_plan_with_commands_dji_cannot_fly_is_refused(shared_data, tmp_path) -> None:
    plan = read_qgc_plan(shared_data / "missions/mavsdk/qgroundcontrol_sample.plan")
    with pytest.raises(PlanError, match="item 3 .*command 2000.* cannot be written as DJI WPML"):
        write_dji_kmz(plan, tmp_path / "sample.kmz", aircraft=MAVIC_3E)
    assert not list(tmp_path.iterdir())


def test_a_take_off_height_out_of_dji_limits_is_refused(tmp_path) -> None:
    document = plan_document(berkane_mission())
    takeoff = replace(document.items[1], alt=1.0)
    low = replace(document, items=(document.items[0], takeoff, *document.items[2:]))
    with pytest.raises(PlanError, match=r"take-off height must be within \[2.0, 1500.0\] m"):
        write_dji_kmz(low, tmp_path / "low.kmz", aircraft=MAVIC_3E)


def test_not_a_zip_is_refused(tmp_path) -> None:
    path = tmp_path / "route.kmz"
    path.write_text("<kml/>", encoding="utf-8")
    with pytest.raises(InputError, match="route.kmz: not a KMZ \\(zip\\) archive"):
        read_dji_kmz(path)


def test_a_kmz_without_waylines_is_refused(tmp_path) -> None:
    path = tmp_path / "earth.kmz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("doc.kml", "<kml/>")
    with pytest.raises(InputError, match="earth.kmz: no wpmz/waylines.wpml inside"):
        read_dji_kmz(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[:200], "wpmz/waylines.wpml is not well-formed XML"),
        (
            lambda text: text.replace("relativeToStartPoint", "WGS84"),
            "Folder/executeHeightMode: 'WGS84' is not supported",
        ),
        (
            lambda text: text.replace("<wpml:index>2</wpml:index>", "<wpml:index>7</wpml:index>"),
            r"Placemark\[2\]/index: is '7'",
        ),
        (
            lambda text: text.replace("takePhoto", "startRecord"),
            "multipleDistance trigger with actions \\['startRecord'\\] is not supported",
        ),
        (
            lambda text: text.replace("<wpml:executeHeight>", "<wpml:executeHeight>x", 1),
            r"Placemark\[0\]/executeHeight: not a number",
        ),
    ],
)
def test_malformed_waylines_are_refused_naming_the_element(tmp_path, edit, message) -> None:
    ours = write_dji_kmz(berkane_mission(), tmp_path / "ours.kmz")
    broken = tmp_path / "broken.kmz"
    rewrite_part(ours, broken, WAYLINES, edit)
    with pytest.raises(InputError, match=f"broken.kmz: .*{message}"):
        read_dji_kmz(broken)
