"""KML: the flight path and the AOI, read back by GDAL and by our reader."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pyogrio
import pytest
import shapely
from sample_missions import HOME_AMSL_M, berkane_mission, terrain_mission

from core.errors import InputError
from flights.aoi import load_aoi
from flights.items import FRAME_GLOBAL, plan_document
from flights.kml import KML_NS, flight_path, read_kml, write_kml

RTL = 20
NS = {"kml": KML_NS}


def path_placemark(path) -> tuple[str, str]:
    """(altitudeMode, description) of the flight path placemark of a KML file."""
    placemark = ET.parse(path).getroot().find(".//kml:Placemark", NS)
    mode = placemark.findtext(".//kml:altitudeMode", namespaces=NS)
    return mode, placemark.findtext("kml:description", namespaces=NS)


def test_gdal_reads_the_flight_path_and_the_aoi(tmp_path) -> None:
    mission = berkane_mission()
    path = write_kml(mission, tmp_path / "survey.kml")
    (layer, _), *_ = pyogrio.list_layers(path)
    frame = pyogrio.read_dataframe(path, layer=layer)
    by_name = dict(zip(frame["Name"], frame.geometry, strict=True))
    flight, aoi = by_name["flight path"], by_name["AOI"]
    assert flight.geom_type == "LineString" and aoi.geom_type == "Polygon"
    # home, take-off climb, every waypoint, home
    assert len(flight.coords) == len(mission.waypoints) + 3
    assert flight.coords[1][2] == pytest.approx(mission.altitude_m, abs=0.01)
    expected = shapely.from_wkt(mission.aoi_wkt_lonlat)
    assert shapely.force_2d(aoi).hausdorff_distance(expected) < 1e-8  # about 1 mm


def test_with_a_home_height_the_path_is_drawn_above_sea_level(tmp_path) -> None:
    mission = terrain_mission()
    path = write_kml(mission, tmp_path / "m.kml", home_alt_amsl_m=HOME_AMSL_M)
    mode, description = path_placemark(path)
    assert mode == "absolute" and f"{HOME_AMSL_M:.2f} m" in description
    (layer, _), *_ = pyogrio.list_layers(path)
    flight = pyogrio.read_dataframe(path, layer=layer).geometry.iloc[0]
    heights = [z for _, _, z in flight.coords]
    assert heights[0] == heights[-1] == HOME_AMSL_M
    assert heights[2:-1] == pytest.approx(
        [HOME_AMSL_M + w.altitude_m for w in mission.waypoints], abs=0.005
    )


def test_without_a_home_height_the_kml_says_it_is_true_on_flat_ground_only(tmp_path) -> None:
    mode, description = path_placemark(write_kml(terrain_mission(), tmp_path / "m.kml"))
    assert mode == "relativeToGround"
    assert "above the take-off point" in description and "DEM" in description


@pytest.mark.parametrize("home_alt_amsl_m", [None, HOME_AMSL_M])
def test_flight_path_and_aoi_round_trip_within_written_precision(tmp_path, home_alt_amsl_m) -> None:
    document = plan_document(terrain_mission(), home_alt_amsl_m)
    back = read_kml(write_kml(document, tmp_path / "m.kml"))
    written, read = flight_path(document.items), flight_path(back.items)
    assert len(read) == len(written)
    for (lon, lat, alt), (lon2, lat2, alt2) in zip(written, read, strict=True):
        assert (lon2, lat2) == pytest.approx((lon, lat), abs=5e-9)
        assert alt2 == pytest.approx(alt, abs=0.005)
    assert back.items[-1].command == RTL
    assert (back.items[0].alt, back.home_alt_known) == (
        home_alt_amsl_m or 0.0,
        home_alt_amsl_m is not None,
    )
    aoi, aoi_back = (shapely.from_wkt(d.aoi_wkt_lonlat) for d in (document, back))
    assert aoi_back.hausdorff_distance(aoi) < 1e-8


def test_items_at_absolute_altitudes_are_drawn_above_home() -> None:
    items = plan_document(berkane_mission(), HOME_AMSL_M).items
    first = items[2]
    absolute = replace(first, frame=FRAME_GLOBAL, alt=HOME_AMSL_M + first.alt)
    assert flight_path((*items[:2], absolute))[2] == pytest.approx(flight_path(items)[2])


@pytest.mark.parametrize("home_alt_amsl_m", [None, HOME_AMSL_M])
def test_a_kml_read_back_is_written_again_identically(tmp_path, home_alt_amsl_m) -> None:
    mission = berkane_mission()
    first = read_kml(write_kml(mission, tmp_path / "a.kml", home_alt_amsl_m=home_alt_amsl_m))
    assert read_kml(write_kml(first, tmp_path / "b.kml")) == first


def test_qgroundcontrol_polygon_kml_is_an_aoi(shared_data, tmp_path) -> None:
    path = shared_data / "missions/qgc/PolygonGood.kml"
    document = read_kml(path)
    assert document.items == ()
    aoi = shapely.from_wkt(document.aoi_wkt_lonlat)
    assert len(aoi.exterior.coords) == 5 and aoi.is_valid
    assert aoi.equals_exact(load_aoi(path), tolerance=0.0)
    copy = read_kml(write_kml(document, tmp_path / "copy.kml"))
    assert shapely.from_wkt(copy.aoi_wkt_lonlat).hausdorff_distance(aoi) < 1e-8


def test_our_kml_is_an_aoi_file_too(tmp_path) -> None:
    mission = berkane_mission()
    aoi = load_aoi(write_kml(mission, tmp_path / "m.kml"))
    assert aoi.hausdorff_distance(shapely.from_wkt(mission.aoi_wkt_lonlat)) < 1e-8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<kml><Document>", "not a readable KML file"),
        ("<kml><Document><name>x</name></Document></kml>", "no LineString .* and no Polygon"),
        (
            "<kml><Placemark><LineString><coordinates>1,2,3 4;5</coordinates>"
            "</LineString></Placemark></kml>",
            "LineString: bad coordinate '4;5'",
        ),
        (
            "<kml><Placemark><Polygon><outerBoundaryIs><LinearRing><coordinates>1,2 3,4 1,2"
            "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>",
            "Polygon needs one outerBoundaryIs ring of at least 3 vertices",
        ),
    ],
)
def test_malformed_kml_is_refused(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.kml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=f"bad.kml: .*{message}"):
        read_kml(path)
