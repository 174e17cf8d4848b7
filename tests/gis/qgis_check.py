"""Open a Raqib QGIS project in real QGIS (headless) and report what QGIS sees, as JSON.

Run with the system Python that has Debian's ``python3-qgis``, not the project's venv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_check.py raqib.qgz render.png

Prints one JSON object: per layer its validity, feature count, renderer (type, attribute,
class count) as loaded from the project and, for GeoPackage layers, as loaded alone (the
default style in ``layer_styles``), its actions; the project's relations; the render.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

RENDER_WIDTH_PX = 900


def vector_renderer(layer: QgsVectorLayer) -> dict:
    renderer = layer.renderer()
    kind = renderer.type()
    classes = {
        "categorizedSymbol": lambda: len(renderer.categories()),
        "graduatedSymbol": lambda: len(renderer.ranges()),
        "singleSymbol": lambda: 1,
    }.get(kind, lambda: None)()
    attribute = renderer.classAttribute() if hasattr(renderer, "classAttribute") else None
    return {"type": kind, "attribute": attribute, "classes": classes}


def raster_renderer(layer: QgsRasterLayer) -> dict:
    renderer = layer.renderer()
    classes = len(renderer.classes()) if renderer.type() == "paletted" else None
    labels = [c.label for c in renderer.classes()] if classes else []
    return {"type": renderer.type(), "classes": classes, "labels": labels}


def gpkg_default_style(layer: QgsVectorLayer) -> dict | None:
    """The renderer QGIS gives the layer's GeoPackage table opened on its own."""
    source = layer.source()
    if ".gpkg" not in source or not layer.isSpatial():
        return None
    alone = QgsVectorLayer(source, layer.name(), "ogr")
    return vector_renderer(alone) if alone.isValid() else {"type": "invalid"}


def describe(layer) -> dict:
    entry = {"valid": layer.isValid(), "source": layer.source()}
    if isinstance(layer, QgsRasterLayer):
        entry |= {"kind": "raster", "renderer": raster_renderer(layer)}
        return entry
    entry |= {
        "kind": "vector",
        "spatial": layer.isSpatial(),
        "features": layer.featureCount(),
        "fields": [field.name() for field in layer.fields()],
        "actions": [
            {"type": int(a.type()), "name": a.name(), "command": a.command()}
            for a in layer.actions().actions()
        ],
    }
    if layer.isSpatial():
        entry["renderer"] = vector_renderer(layer)
        entry["default_style"] = gpkg_default_style(layer)
    return entry


def render(project: QgsProject, png: Path) -> dict:
    """Render the layers shown when the project opens, at its default view, to ``png``."""
    root = project.layerTreeRoot()
    shown = [layer for layer in root.layerOrder() if root.findLayer(layer.id()).isVisible()]
    extent = project.viewSettings().defaultViewExtent()
    settings = QgsMapSettings()
    settings.setLayers(shown)
    settings.setDestinationCrs(project.crs())
    settings.setBackgroundColor(QColor(255, 255, 255))
    height = round(RENDER_WIDTH_PX * extent.height() / extent.width())
    settings.setOutputSize(QSize(RENDER_WIDTH_PX, height))
    settings.setExtent(extent)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(png), "PNG")
    step = 5
    samples = [
        image.pixel(x, y)
        for x in range(0, image.width(), step)
        for y in range(0, image.height(), step)
    ]
    white = QColor(255, 255, 255).rgb()
    return {
        "png": str(png),
        "layers": [layer.name() for layer in shown],
        "width": image.width(),
        "height": image.height(),
        "painted_share": sum(p != white for p in samples) / len(samples),
        "colours": len(set(samples)),
        "errors": [f"{e.layerID}: {e.message}" for e in job.errors()],
        "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
    }


def main(project_path: str, png: str) -> dict:
    project = QgsProject.instance()
    if not project.read(project_path):
        return {"opened": False, "error": project.error()}
    layers = {layer.name(): describe(layer) for layer in project.mapLayers().values()}
    relations = {
        rid: {
            "valid": relation.isValid(),
            "referenced": relation.referencedLayer().name() if relation.referencedLayer() else None,
            "referencing": relation.referencingLayer().name()
            if relation.referencingLayer()
            else None,
        }
        for rid, relation in project.relationManager().relations().items()
    }
    return {
        "opened": True,
        "qgis": QgsApplication.version() if hasattr(QgsApplication, "version") else "",
        "crs": project.crs().authid(),
        "order": [layer.name() for layer in project.layerTreeRoot().layerOrder()],
        "layers": layers,
        "relations": relations,
        "render": render(project, Path(png)),
    }


if __name__ == "__main__":
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    try:
        print(json.dumps(main(sys.argv[1], sys.argv[2])))
    finally:
        QgsProject.instance().clear()
        app.exitQgis()
