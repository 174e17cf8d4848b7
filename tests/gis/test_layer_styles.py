"""The QGIS default styles of the published layers, as QML documents."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from gis.layer_styles import (
    GEOMETRY_CODES,
    LAYER_STYLES,
    PROJECT_STATUS_COLOURS,
    SEVERITY_CLASSES,
    layer_qml,
)
from gis.projects import FINISHED, NOT_ASSESSED, NOT_STARTED, ON_TRACK, STALLED


def _renderer(name: str) -> ET.Element:
    return ET.fromstring(layer_qml(name)).find("renderer-v2")


@pytest.mark.parametrize("name", sorted(LAYER_STYLES))
def test_every_style_is_a_qml_document_naming_its_attribute_and_geometry(name) -> None:
    root = ET.fromstring(layer_qml(name))
    style = LAYER_STYLES[name]
    renderer = root.find("renderer-v2")
    assert root.tag == "qgis"
    assert renderer.get("attr") == style.attribute
    assert root.findtext("layerGeometryType") == GEOMETRY_CODES[style.geometry]
    symbols = renderer.findall("symbols/symbol")
    classes = renderer.findall("categories/category") + renderer.findall("ranges/range")
    assert len(symbols) == max(1, len(classes))
    assert {c.get("symbol") for c in classes} <= {s.get("name") for s in symbols}


def test_flags_are_graduated_by_severity_over_zero_to_one_without_gaps() -> None:
    ranges = _renderer("flagged_parcels").findall("ranges/range")
    bounds = [(float(r.get("lower")), float(r.get("upper"))) for r in ranges]
    assert bounds[0][0] == 0.0 and bounds[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert [r.get("label").split()[0] for r in ranges] == [c[2] for c in SEVERITY_CLASSES]


def test_projects_have_a_colour_for_every_status_the_tracker_gives() -> None:
    values = {c.get("value") for c in _renderer("projects").findall("categories/category")}
    assert values == {STALLED, ON_TRACK, NOT_STARTED, FINISHED, NOT_ASSESSED}
    assert set(PROJECT_STATUS_COLOURS) == values


def test_management_zones_are_categorised_by_zone_class() -> None:
    values = [c.get("value") for c in _renderer("management_zones").findall("categories/category")]
    assert values == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("name", ["flagged_parcels", "projects", "work_list"])
def test_layers_with_records_open_them_with_a_qgis_url_action(name) -> None:
    actions = ET.fromstring(layer_qml(name)).find("attributeactions")
    (action,) = actions.findall("actionsetting")
    assert action.get("type") == "5"  # QgsAction.OpenUrl
    assert action.get("action") == '[% "record_url" %]'
    assert actions.find("defaultAction").get("value") == action.get("id")
    assert layer_qml(name) == layer_qml(name), "ids are stable from one publication to the next"


def test_layers_without_records_have_no_action() -> None:
    assert ET.fromstring(layer_qml("crop_health_parcels")).find("attributeactions") is None
