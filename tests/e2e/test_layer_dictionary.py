"""docs/layers.md documents every layer and field the flows publish."""

from __future__ import annotations

import re
from pathlib import Path

import pyogrio
import pytest

from gis.publish import STYLES_TABLE, list_layers

pytestmark = pytest.mark.slow

LAYERS_MD = Path(__file__).resolve().parents[2] / "docs" / "layers.md"


def documented(index: str) -> dict[str, set[str]]:
    """Layer → fields of docs/layers.md: a ``## `layer``` heading, then table rows whose
    first cell names one or more fields in backticks (``<index>`` read as ``index``)."""
    layers: dict[str, set[str]] = {}
    fields: set[str] = set()
    for line in LAYERS_MD.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## `(\w+)`", line.strip())
        if heading:
            fields = layers.setdefault(heading.group(1), set())
        elif line.startswith("| `") and line.count("|") >= 3:
            first_cell = line.split("|")[1]
            fields |= {f.replace("<index>", index) for f in re.findall(r"`([^`]+)`", first_cell)}
    return layers


def test_every_published_layer_and_field_is_in_the_layer_dictionary(surveyed) -> None:
    dictionary = documented(surveyed.settings.health_index)
    missing = []
    for result in surveyed.epochs:
        for layer in list_layers(result.geopackage):
            if layer == STYLES_TABLE:
                continue
            if layer not in dictionary:
                missing.append(f"{result.epoch}: layer {layer}")
                continue
            fields = pyogrio.read_info(result.geopackage, layer=layer)["fields"]
            missing += [
                f"{result.epoch}: {layer}.{field}"
                for field in fields
                if field not in dictionary[layer]
            ]
    assert not missing, f"not documented in {LAYERS_MD.name}: " + ", ".join(missing)


def test_the_dictionary_parser_sees_the_tables() -> None:
    dictionary = documented("gli")
    assert {"severity", "record_url"} <= dictionary["flagged_parcels"]
    assert {"gli_mean", "lon", "lat"} <= dictionary["crop_health_parcels"] | dictionary["images"]
