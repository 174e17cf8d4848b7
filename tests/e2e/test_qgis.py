"""The published epochs open in real QGIS (Debian python3-qgis, headless): every layer valid,
styled as we wrote it, record actions and relations in place, and the map renders."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from gis.layer_styles import LAYER_STYLES, layer_qml

pytestmark = pytest.mark.slow

RECORD_LAYERS = ("flagged_parcels", "projects")


def written(name: str) -> dict:
    """The renderer of layer ``name``'s QML as the QGIS probe reports one."""
    renderer = ET.fromstring(layer_qml(name)).find("renderer-v2")
    classes = renderer.findall("categories/category") + renderer.findall("ranges/range")
    return {
        "type": renderer.get("type"),
        "attribute": renderer.get("attr"),
        "classes": len(classes) or 1,
    }


@pytest.fixture(scope="module")
def opened(surveyed, qgis) -> list[dict]:
    """What QGIS sees in each epoch's raqib.qgz; the render is kept beside it."""
    return [
        qgis(result.out_dir / "raqib.qgz", result.out_dir / "qgis_render.png")
        for result in surveyed.epochs
    ]


def test_every_layer_of_the_project_is_valid_in_the_working_crs(opened, surveyed) -> None:
    for seen in opened:
        assert seen["opened"] and seen["crs"] == surveyed.settings.crs
        assert {name for name, layer in seen["layers"].items() if not layer["valid"]} == set()
        assert {"mosaic", "crop_health", "flagged_parcels", "parcels", "projects"} <= set(
            seen["layers"]
        )
        assert seen["order"][-1] == "mosaic"


def test_layers_have_our_style_in_the_project_and_from_the_geopackage(opened) -> None:
    for seen in opened:
        styled = [name for name in LAYER_STYLES if name in seen["layers"]]
        assert {"flagged_parcels", "crop_health_parcels", "projects", "management_zones"} <= set(
            styled
        )
        for name in styled:
            layer = seen["layers"][name]
            assert layer["renderer"] == written(name), name
            assert layer["default_style"] == written(name), name
        health = seen["layers"]["crop_health"]["renderer"]
        assert health["type"] == "paletted" and health["labels"] == ["healthy", "stressed", "bare"]
        assert seen["layers"]["mosaic"]["renderer"]["type"] == "multibandcolor"


def test_flags_and_projects_open_their_record(opened) -> None:
    for seen in opened:
        for name in RECORD_LAYERS:
            actions = seen["layers"][name]["actions"]
            assert [(a["type"], a["command"]) for a in actions] == [(5, '[% "record_url" %]')]
            assert "record_url" in seen["layers"][name]["fields"]


def test_relations_link_parcels_to_flags_and_projects_to_their_progress(opened) -> None:
    for seen in opened:
        relations = seen["relations"]
        assert relations["parcel_flags"] == {
            "valid": True, "referenced": "parcels", "referencing": "flagged_parcels"
        }  # fmt: skip
        assert relations["project_progress"] == {
            "valid": True, "referenced": "projects", "referencing": "project_history"
        }  # fmt: skip
        assert all(relation["valid"] for relation in relations.values())


def test_the_map_renders_the_mosaic_under_the_flags(opened, surveyed) -> None:
    last = opened[-1]["render"]
    assert last["errors"] == []
    assert {"mosaic", "flagged_parcels", "crop_health_parcels"} <= set(last["layers"])
    assert last["painted_share"] > 0.95 and last["colours"] > 1000
    png = surveyed.epochs[-1].out_dir / "qgis_render.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert opened[-1]["layers"]["flagged_parcels"]["features"] == surveyed.epochs[-1].flags > 0
