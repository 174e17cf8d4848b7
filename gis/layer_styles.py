"""QGIS default styles (QML) of the published layers, keyed by layer name.

Each style is built with ElementTree from a small table of classes; a layer the flows do not
publish, or publish without the style's attribute, simply gets no style. Layers carrying a
``record_url`` get a QGIS "Open URL" action that opens the permit or project record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

STRESSED_PCT = "stressed_pct"
RECORD_URL = "record_url"
OPEN_URL_ACTION = "5"
"""``QgsAction.OpenUrl``: QGIS opens the expanded action text in the web browser."""
GEOMETRY_CODES = {"Point": "0", "LineString": "1", "Polygon": "2"}
"""``QgsWkbTypes.GeometryType`` of a style's layer: QGIS refuses a style of another type."""
_UUIDS = uuid.UUID("6a3c1d0e-6f1b-4b7a-9a57-7261716962a1")
"""Namespace of the actions' ids: the same layer gets the same id on every publication."""

# (lower %, upper %, RGB fill) classes of the share of a parcel's crop that is stressed.
STRESS_CLASSES = (
    (0.0, 10.0, "26,150,65"),
    (10.0, 25.0, "166,217,106"),
    (25.0, 50.0, "253,174,97"),
    (50.0, 100.0, "215,25,28"),
)
# (lower, upper, label, RGB) classes of a flag's severity (0–1, docs/flags.md).
SEVERITY_CLASSES = (
    (0.0, 0.25, "low", "254,204,92"),
    (0.25, 0.5, "medium", "253,141,60"),
    (0.5, 0.75, "high", "240,59,32"),
    (0.75, 1.0, "critical", "189,0,38"),
)
# project status (gis.projects) -> RGB
PROJECT_STATUS_COLOURS = {
    "stalled": "215,25,28",
    "on track": "26,150,65",
    "not started": "150,150,150",
    "finished": "43,131,186",
    "not assessed": "255,255,255",
}
# management zone class (1 = lowest vigour) -> RGB, red to green
ZONE_COLOURS = ("215,25,28", "253,174,97", "255,255,191", "166,217,106", "26,150,65")
# parcel trend status (models.health_trend) -> RGB
TREND_COLOURS = {
    "declining": "215,25,28",
    "not declining": "255,255,191",
    "not comparable": "200,200,200",
}
CHANGE_COLOURS = {"new": "221,28,119", "grown": "174,1,126", "demolished": "99,99,99"}


# -- symbols ----------------------------------------------------------------------------


def _symbol(kind: str, name: str, layer_class: str, properties: dict[str, str]) -> ET.Element:
    symbol = ET.Element(
        "symbol", type=kind, name=name, alpha="1", clip_to_extent="1", force_rhr="0"
    )
    layer = ET.SubElement(
        symbol, "layer", {"class": layer_class, "enabled": "1", "locked": "0", "pass": "0"}
    )
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in properties.items():
        ET.SubElement(options, "Option", type="QString", name=key, value=value)
    return symbol


def fill_symbol(name: str, fill_rgba: str, outline_rgb: str, width_mm: float) -> ET.Element:
    """A solid fill (``fill_rgba`` ``"r,g,b,a"``; alpha 0 for none) with an outline."""
    return _symbol("fill", name, "SimpleFill", {
        "color": fill_rgba, "style": "solid", "outline_color": f"{outline_rgb},255",
        "outline_style": "solid", "outline_width": f"{width_mm}", "outline_width_unit": "MM",
        "joinstyle": "miter",
    })  # fmt: skip


def marker_symbol(name: str, shape: str, rgb: str, size_mm: float) -> ET.Element:
    """A simple marker (``circle``, ``cross2``, ...) of ``size_mm``."""
    return _symbol("marker", name, "SimpleMarker", {
        "name": shape, "color": f"{rgb},255", "outline_color": "35,35,35,255",
        "outline_style": "solid", "outline_width": "0.2", "outline_width_unit": "MM",
        "size": f"{size_mm}", "size_unit": "MM",
    })  # fmt: skip


def line_symbol(name: str, rgb: str, width_mm: float) -> ET.Element:
    return _symbol("line", name, "SimpleLine", {
        "line_color": f"{rgb},255", "line_style": "solid", "line_width": f"{width_mm}",
        "line_width_unit": "MM", "capstyle": "round", "joinstyle": "round",
    })  # fmt: skip


# -- renderers ---------------------------------------------------------------------------


def _renderer(kind: str, **attributes: str) -> ET.Element:
    return ET.Element(
        "renderer-v2", type=kind, symbollevels="0", forceraster="0", enableorderby="0",
        **attributes,
    )  # fmt: skip


def single(symbol: ET.Element) -> ET.Element:
    """One symbol for every feature."""
    renderer = _renderer("singleSymbol")
    ET.SubElement(renderer, "symbols").append(symbol)
    return renderer


def categorized(
    attribute: str, classes: Sequence[tuple[str, str]], symbol: Callable[[str, str], ET.Element]
) -> ET.Element:
    """A symbol per ``(value, label)`` of ``attribute``; ``symbol(name, value)`` draws it."""
    renderer = _renderer("categorizedSymbol", attr=attribute)
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (value, label) in enumerate(classes):
        ET.SubElement(
            categories, "category", symbol=str(i), value=value, label=label, render="true"
        )
        symbols.append(symbol(str(i), value))
    return renderer


def graduated(
    attribute: str,
    classes: Sequence[tuple[float, float, str, str]],
    symbol: Callable[[str, str], ET.Element],
) -> ET.Element:
    """A symbol per ``(lower, upper, label, rgb)`` range of ``attribute``."""
    renderer = _renderer("graduatedSymbol", attr=attribute, graduatedMethod="GraduatedColor")
    ranges = ET.SubElement(renderer, "ranges")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (lower, upper, label, rgb) in enumerate(classes):
        ET.SubElement(
            ranges, "range", symbol=str(i), lower=f"{lower:.6f}", upper=f"{upper:.6f}",
            label=label, render="true",
        )  # fmt: skip
        symbols.append(symbol(str(i), rgb))
    ET.SubElement(renderer, "classificationMethod", id="Fixed")
    return renderer


# -- the layers' renderers ----------------------------------------------------------------


def crop_health_renderer() -> ET.Element:
    """Graduated by ``stressed_pct`` (0–100): green to red."""
    classes = [(lo, hi, f"{lo:.0f} – {hi:.0f} % stressed", rgb) for lo, hi, rgb in STRESS_CLASSES]
    return graduated(
        STRESSED_PCT, classes, lambda name, rgb: fill_symbol(name, f"{rgb},110", rgb, 0.6)
    )


def flag_severity_renderer() -> ET.Element:
    """Graduated by ``severity`` (0–1): light fill, thick yellow to dark red outlines."""
    classes = [(lo, hi, f"{label} ({lo:.2f} – {hi:.2f})", rgb)
               for lo, hi, label, rgb in SEVERITY_CLASSES]  # fmt: skip
    return graduated(
        "severity", classes, lambda name, rgb: fill_symbol(name, f"{rgb},60", rgb, 0.8)
    )


def _by_colour(colours: dict[str, str], alpha: int, outline: str | None = None):
    def symbol(name: str, value: str) -> ET.Element:
        rgb = colours[value]
        return fill_symbol(name, f"{rgb},{alpha}", outline or rgb, 0.6)

    return symbol


def project_status_renderer() -> ET.Element:
    """Categorised by ``status``: stalled red, on track green, finished blue."""
    classes = [(status, status) for status in PROJECT_STATUS_COLOURS]
    return categorized("status", classes, _by_colour(PROJECT_STATUS_COLOURS, 90))


def zone_renderer() -> ET.Element:
    """Categorised by ``zone`` class, 1 (lowest vigour, red) to 5 (highest, green)."""
    colours = {str(i): rgb for i, rgb in enumerate(ZONE_COLOURS, start=1)}
    classes = [(value, f"zone {value}") for value in colours]
    return categorized("zone", classes, _by_colour(colours, 200, "90,90,90"))


def trend_renderer() -> ET.Element:
    """Categorised by trend ``status``: declining parcels red."""
    classes = [(status, status) for status in TREND_COLOURS]
    return categorized("status", classes, _by_colour(TREND_COLOURS, 120, "90,90,90"))


def change_renderer() -> ET.Element:
    """Categorised by ``change``: new structures magenta, grown ones purple."""
    classes = [(change, f"{change} structure") for change in CHANGE_COLOURS]
    return categorized("change", classes, _by_colour(CHANGE_COLOURS, 150))


@dataclass(frozen=True)
class LayerStyle:
    """A layer's default style: the attribute it needs (None: none), the geometry type of
    the layer, its renderer, and whether features link to their record (``record_url``)."""

    attribute: str | None
    geometry: str
    renderer: Callable[[], ET.Element]
    record_link: bool = False


LAYER_STYLES: dict[str, LayerStyle] = {
    "parcels": LayerStyle(
        None, "Polygon", lambda: single(fill_symbol("0", "0,0,0,0", "120,120,120", 0.2))
    ),
    "crop_health_parcels": LayerStyle(STRESSED_PCT, "Polygon", crop_health_renderer),
    "management_zones": LayerStyle("zone", "Polygon", zone_renderer),
    "parcel_trend": LayerStyle("status", "Polygon", trend_renderer),
    "tree_crowns": LayerStyle(
        None, "Polygon", lambda: single(fill_symbol("0", "35,139,69,160", "0,68,27", 0.2))
    ),
    "missing_trees": LayerStyle(
        None, "Point", lambda: single(marker_symbol("0", "cross2", "215,25,28", 2.5))
    ),
    "buildings": LayerStyle(
        None, "Polygon", lambda: single(fill_symbol("0", "189,189,189,70", "82,82,82", 0.4))
    ),
    "new_buildings": LayerStyle("change", "Polygon", change_renderer),
    "structure_changes": LayerStyle("change", "Polygon", change_renderer),
    "projects": LayerStyle("status", "Polygon", project_status_renderer, record_link=True),
    "flagged_parcels": LayerStyle("severity", "Polygon", flag_severity_renderer, record_link=True),
    "work_list": LayerStyle("severity", "Polygon", flag_severity_renderer, record_link=True),
    "mission": LayerStyle(None, "LineString", lambda: single(line_symbol("0", "31,120,180", 0.4))),
}


# -- QML -------------------------------------------------------------------------------


def record_action(layer: str) -> ET.Element:
    """``<attributeactions>`` with one "Open URL" action on ``record_url``, the default on
    the canvas: clicking a feature with the action tool opens its permit / project record."""
    action_id = "{" + str(uuid.uuid5(_UUIDS, layer)) + "}"
    actions = ET.Element("attributeactions")
    ET.SubElement(actions, "defaultAction", key="Canvas", value=action_id)
    setting = ET.SubElement(
        actions, "actionsetting", id=action_id, type=OPEN_URL_ACTION, name="Open the record",
        shortTitle="Open record", action=f'[% "{RECORD_URL}" %]', icon="", capture="0",
        isEnabledOnlyWhenEditable="0", notificationMessage="",
    )  # fmt: skip
    for scope in ("Feature", "Canvas", "Field"):
        ET.SubElement(setting, "actionScope", id=scope)
    return actions


def style_elements(name: str) -> list[ET.Element]:
    """The elements of layer ``name``'s style, as they go in a QML or a project's
    ``<maplayer>``: renderer, actions, geometry type."""
    style = LAYER_STYLES[name]
    elements = [style.renderer()]
    if style.record_link:
        elements.append(record_action(name))
    geometry = ET.Element("layerGeometryType")
    geometry.text = GEOMETRY_CODES[style.geometry]
    return [*elements, geometry]


def layer_qml(name: str) -> str:
    """The QML document of layer ``name``'s default style."""
    categories = "Symbology|Actions" if LAYER_STYLES[name].record_link else "Symbology"
    root = ET.Element("qgis", version="3.22.0", styleCategories=categories)
    root.extend(style_elements(name))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"
