"""A QGIS project beside the published GeoPackage: layers, styles, rasters, relations."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from core.errors import InputError
from gis.publish import publish_geopackage
from gis.qgis_project import write_qgis_project

UTM = "EPSG:32630"
X0, Y0 = 560_000.0, 3_860_200.0
TRANSFORM = from_origin(X0, Y0, 1.0, 1.0)  # 200 x 200 px of 1 m


def _parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": ["BRK-0001", "BRK-0002"], "commune": "Berkane"},
        geometry=[box(X0, Y0 - 100, X0 + 100, Y0), box(X0 + 100, Y0 - 100, X0 + 200, Y0)],
        crs=UTM,
    )


def _epoch(folder: Path) -> Path:
    """A published epoch: GeoPackage, RGB mosaic, class raster, a workspace history."""
    parcels = _parcels()
    flagged = parcels.iloc[[1]].assign(
        reason="no_permit", severity=0.8, record_url="https://rokhas.example/p/BRK-0002"
    )
    projects = gpd.GeoDataFrame(
        {"project_id": ["PRJ-1"], "status": ["stalled"], "record_url": ["https://p.example/1"]},
        geometry=[box(X0, Y0 - 200, X0 + 200, Y0 - 100)],
        crs=UTM,
    )
    gpkg = publish_geopackage(
        folder / "raqib.gpkg",
        {
            "parcels": parcels,
            "projects": projects,
            "flagged_parcels": flagged,
            "record_problems": pd.DataFrame({"source": [], "problem": []}),
        },
    )
    history = pd.DataFrame({"project_id": ["PRJ-1"], "date": ["2026-01-15"], "progress": [0.2]})
    publish_geopackage(folder.parent / "project_history.gpkg", {"project_history": history})
    profile = dict(driver="GTiff", width=200, height=200, crs=UTM, transform=TRANSFORM)
    with rasterio.open(folder / "mosaic.tif", "w", count=3, dtype="uint8", **profile) as dst:
        dst.write(np.full((3, 200, 200), 120, np.uint8))
        dst.descriptions = ("blue", "green", "red")
    with rasterio.open(
        folder / "crop_health.tif", "w", count=1, dtype="uint8", nodata=0, **profile
    ) as dst:
        dst.write(np.ones((1, 200, 200), np.uint8))
        dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (46, 160, 67, 255), 2: (230, 180, 30, 255)})
        dst.update_tags(classes="healthy,stressed")
    return gpkg


def _write(folder: Path) -> Path:
    gpkg = _epoch(folder)
    return write_qgis_project(
        gpkg,
        rasters=[folder / "crop_health.tif", folder / "missing.tif", folder / "mosaic.tif"],
        tables=[(folder.parent / "project_history.gpkg", "project_history")],
    )


def _qgs(qgz: Path) -> ET.Element:
    with zipfile.ZipFile(qgz) as archive:
        (name,) = archive.namelist()
        assert name == "raqib.qgs"
        return ET.fromstring(archive.read(name))


@pytest.fixture
def project(tmp_path: Path) -> ET.Element:
    qgz = _write(tmp_path / "2026-01-15")
    assert qgz == tmp_path / "2026-01-15" / "raqib.qgz"
    return _qgs(qgz)


def _layers(root: ET.Element) -> dict[str, ET.Element]:
    return {m.findtext("layername"): m for m in root.iter("maplayer")}


def test_layers_are_referenced_by_paths_relative_to_the_project(project) -> None:
    sources = {name: m.findtext("datasource") for name, m in _layers(project).items()}
    assert sources["flagged_parcels"] == "./raqib.gpkg|layername=flagged_parcels"
    assert sources["project_history"] == "../project_history.gpkg|layername=project_history"
    assert sources["mosaic"] == "./mosaic.tif"
    assert project.find("properties/Paths/Absolute").text == "false"


def test_flags_lie_on_top_and_the_mosaic_at_the_bottom(project) -> None:
    order = [node.get("name") for node in project.iter("layer-tree-layer")]
    assert order == [
        "flagged_parcels", "projects", "parcels", "record_problems", "project_history",
        "crop_health", "mosaic",
    ]  # fmt: skip
    assert "missing" not in order


def test_vector_layers_carry_their_geopackage_default_style_and_record_action(project) -> None:
    flags = _layers(project)["flagged_parcels"]
    assert flags.find("renderer-v2").get("attr") == "severity"
    assert flags.find("attributeactions/actionsetting").get("type") == "5"
    assert _layers(project)["record_problems"].get("geometry") == "No geometry"


def test_rasters_get_class_colours_and_names_or_rgb_by_band_description(project) -> None:
    health = _layers(project)["crop_health"].find("pipe/rasterrenderer")
    assert health.get("type") == "paletted"
    entries = [
        (e.get("value"), e.get("label"), e.get("color")) for e in health.iter("paletteEntry")
    ]
    assert entries == [("1", "healthy", "#2ea043"), ("2", "stressed", "#e6b41e")]
    mosaic = _layers(project)["mosaic"].find("pipe/rasterrenderer")
    assert (mosaic.get("redBand"), mosaic.get("greenBand"), mosaic.get("blueBand")) == (
        "3",
        "2",
        "1",
    )


def test_a_reflectance_mosaic_is_stretched_to_its_range(tmp_path: Path) -> None:
    folder = tmp_path / "rededge"
    gpkg = publish_geopackage(folder / "raqib.gpkg", {"parcels": _parcels()})
    profile = dict(driver="GTiff", width=200, height=200, crs=UTM, transform=TRANSFORM)
    with rasterio.open(folder / "mosaic.tif", "w", count=4, dtype="float32", **profile) as dst:
        dst.write(np.linspace(0.02, 0.6, 4 * 200 * 200, dtype="float32").reshape(4, 200, 200))
        dst.descriptions = ("blue", "green", "red", "nir")
    renderer = _layers(_qgs(write_qgis_project(gpkg, [folder / "mosaic.tif"])))["mosaic"].find(
        "pipe/rasterrenderer"
    )
    red = renderer.find("redContrastEnhancement")
    assert renderer.get("redBand") == "3"
    assert 0.3 < float(red.findtext("minValue")) < float(red.findtext("maxValue")) <= 0.6


def test_relations_link_parcels_to_flags_and_projects_to_their_history(project) -> None:
    relations = {r.get("id"): r for r in project.iter("relation")}
    assert set(relations) == {"parcel_flags", "project_progress"}  # no zones layer: no relation
    flags = relations["parcel_flags"]
    assert (flags.get("referencedLayer"), flags.get("referencingLayer")) == (
        "raqib_parcels",
        "raqib_flagged_parcels",
    )
    assert flags.find("fieldRef").get("referencingField") == "parcel_id"


def test_the_project_opens_on_the_mosaic_in_its_crs(project) -> None:
    assert project.findtext("projectCrs/spatialrefsys/authid") == UTM
    extent = [
        float(project.findtext(f"mapcanvas/extent/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")
    ]
    assert extent == [X0, Y0 - 200, X0 + 200, Y0]


def test_a_missing_geopackage_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere.gpkg"):
        write_qgis_project(tmp_path / "nowhere.gpkg")


def test_real_qgis_opens_the_project_styled_with_actions_and_relations(
    qgis, tmp_path: Path
) -> None:
    seen = qgis(_write(tmp_path / "2026-01-15"), tmp_path / "render.png")

    assert seen["opened"] and seen["crs"] == UTM
    assert all(layer["valid"] for layer in seen["layers"].values())
    flags = seen["layers"]["flagged_parcels"]
    assert flags["renderer"] == {"type": "graduatedSymbol", "attribute": "severity", "classes": 4}
    assert flags["default_style"] == flags["renderer"]
    assert [a["type"] for a in flags["actions"]] == [5]
    assert seen["layers"]["crop_health"]["renderer"]["labels"] == ["healthy", "stressed"]
    assert {rid: r["valid"] for rid, r in seen["relations"].items()} == {
        "parcel_flags": True,
        "project_progress": True,
    }
    assert seen["render"]["errors"] == [] and (tmp_path / "render.png").stat().st_size > 0
