"""Building or change footprints scored against a user's ground truth, from files.

Predictions and truth come as vector files (GeoPackage, GeoJSON, shapefile: any CRS each) or
as single-band raster masks (non-zero = building or change), which are polygonised block by
block. Object level: polygons matched one-to-one at IoU >= ``min_iou`` (greedy by IoU, as
SpaceNet / solaris score footprints: :func:`models.evaluation.object_scores`); pixel level:
the IoU of the two unions (:func:`models.evaluation.area_iou`, exact for masks on one grid).
Everything is measured in the truth's CRS, or its local UTM zone when that is not projected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio
import rasterio
import shapely
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.errors import RasterioIOError
from shapely.geometry import shape

from core.errors import InputError
from core.types import Accuracy
from models.evaluation import area_iou, object_scores
from models.windows import blocks

POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class FootprintScores:
    """Object-level scores (all footprints, then per ``change`` class when both sides have
    that column) and the pixel IoU of all footprints."""

    scores: tuple[Accuracy, ...]
    pixel_iou: float
    min_iou: float

    def summary(self) -> str:
        """One line for the command line."""
        parts = [_scores_text(s) for s in self.scores]
        return f"{'; '.join(parts)} at IoU >= {self.min_iou:g}; pixel IoU {self.pixel_iou:.3f}"


def score_footprints(
    predicted_path: str | Path,
    truth_path: str | Path,
    *,
    name: str = "buildings",
    min_iou: float = 0.5,
    by_change: bool = False,
) -> FootprintScores:
    """Scores of the footprints of ``predicted_path`` against ``truth_path``; with
    ``by_change``, also per value of a ``change`` column both files have."""
    truth = read_footprints(truth_path)
    predicted = read_footprints(predicted_path)
    crs = truth.crs if truth.crs.is_projected else truth.estimate_utm_crs()
    truth, predicted = truth.to_crs(crs), predicted.to_crs(crs)
    scores = [object_scores(predicted, truth, min_iou=min_iou, name=name)]
    if by_change and "change" in truth and "change" in predicted:
        for kind in sorted(set(truth["change"].dropna()) | set(predicted["change"].dropna())):
            scores.append(
                object_scores(
                    predicted[predicted["change"] == kind],
                    truth[truth["change"] == kind],
                    min_iou=min_iou,
                    name=str(kind),
                )
            )
    return FootprintScores(tuple(scores), area_iou(predicted, truth), min_iou)


def read_footprints(path: str | Path) -> gpd.GeoDataFrame:
    """The polygons of a vector file (its first layer with geometries: a GeoPackage
    ``raqib detect`` wrote holds a styles table too) or of a raster mask's non-zero
    pixels; InputError naming the file when it is missing, unreadable, without CRS or holds
    something other than polygons."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        layers = pyogrio.list_layers(path)
    except pyogrio.errors.DataSourceError:
        frame = _mask_polygons(path)
    else:
        spatial = [name for name, kind in layers if kind is not None]
        if not spatial:
            raise InputError(path, "has no layer with geometries")
        frame = gpd.read_file(path, layer=spatial[0], engine="pyogrio")
    if frame.crs is None:
        raise InputError(path, "has no CRS")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    kinds = set(frame.geom_type)
    if not kinds <= set(POLYGONAL):
        raise InputError(path, f"footprints must be polygons, not {sorted(kinds - set(POLYGONAL))}")
    return frame.set_geometry(shapely.make_valid(frame.geometry.to_numpy())).reset_index(drop=True)


def _mask_polygons(path: Path) -> gpd.GeoDataFrame:
    """The 4-connected non-zero regions of a single-band raster, merged across blocks."""
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, "neither a vector file nor a raster") from exc
    with src:
        if src.count != 1:
            raise InputError(path, f"a mask needs one band, it has {src.count}")
        pieces = []
        for block in blocks(src.width, src.height):
            values = src.read(1, window=block.window) != 0
            values &= src.read_masks(1, window=block.window) > 0
            transform = rio_windows.transform(block.window, src.transform)
            pieces += [
                shape(geojson)
                for geojson, _ in rio_features.shapes(
                    values.astype("uint8"), mask=values, transform=transform
                )
            ]
        crs = src.crs
    merged = shapely.get_parts(shapely.union_all(pieces)) if pieces else []
    return gpd.GeoDataFrame(geometry=list(merged), crs=crs)


def _scores_text(scores: Accuracy) -> str:
    extra = scores.extra
    return (
        f"{scores.name}: precision {scores.precision:.3f}, recall {scores.recall:.3f}, "
        f"F1 {scores.f1:.3f} ({extra['true_positives']:.0f} matched, "
        f"{extra['false_positives']:.0f} false, {extra['false_negatives']:.0f} missed)"
    )
