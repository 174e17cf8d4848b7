"""Bad labels given to crop-health training: an InputError naming the labels file and what is
wrong, or a repair that is reported (another CRS, invalid rings) and training goes on."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point, Polygon, box

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))  # model_scene

from model_scene import ORIGIN, make_scene  # noqa: E402

from core.errors import InputError  # noqa: E402
from models.crop_health import train_health, validate_health  # noqa: E402
from models.labels import checked_labels  # noqa: E402

CRS = "EPSG:32630"
LEFT_M, TOP_M = ORIGIN


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model scene, its 4 m on the west masked out by alpha."""
    return make_scene(tmp_path_factory.mktemp("scene") / "ortho.tif", seed=5, alpha=True).image


def _field(col_m: float) -> Polygon:
    """A 15 x 25 m field of the scene's lower half, ``col_m`` from its west edge."""
    return box(LEFT_M + col_m, TOP_M - 58, LEFT_M + col_m + 15, TOP_M - 33)


def _labels(path: Path, values: list, geoms: list | None = None, crs: str | None = CRS) -> Path:
    geoms = geoms or [_field(2), _field(22), _field(42)][: len(values)]
    gpd.GeoDataFrame({"health": values}, geometry=geoms, crs=crs).to_file(path)
    return path


def far_away(tmp: Path) -> Path:
    elsewhere = [box(LEFT_M + 5000, TOP_M, LEFT_M + 5010, TOP_M + 10)] * 2
    return _labels(tmp / "far.gpkg", ["healthy", "bare"], elsewhere)


def one_class(tmp: Path) -> Path:
    return _labels(tmp / "one_class.gpkg", ["healthy", "healthy"])


def one_class_over_the_image(tmp: Path) -> Path:
    outside = box(LEFT_M + 5000, TOP_M, LEFT_M + 5010, TOP_M + 10)
    return _labels(tmp / "one_inside.gpkg", ["healthy", "bare"], [_field(2), outside])


def one_class_on_valid_pixels(tmp: Path) -> Path:
    masked = box(LEFT_M, TOP_M - 58, LEFT_M + 3.5, TOP_M - 33)
    return _labels(tmp / "masked.gpkg", ["healthy", "bare"], [_field(22), masked])


def unknown_class(tmp: Path) -> Path:
    return _labels(tmp / "unknown.gpkg", ["healthy", "dead", "bare"])


def empty_class(tmp: Path) -> Path:
    return _labels(tmp / "empty.gpkg", ["healthy", None, "bare"])


def blank_class(tmp: Path) -> Path:
    return _labels(tmp / "blank.gpkg", ["healthy", "  ", "bare"])


def no_crs(tmp: Path) -> Path:
    return _labels(tmp / "no_crs.gpkg", ["healthy", "bare"], crs=None)


def points(tmp: Path) -> Path:
    return _labels(tmp / "points.gpkg", ["healthy", "bare"], [Point(LEFT_M + 5, TOP_M - 40)] * 2)


def no_class_column(tmp: Path) -> Path:
    path = tmp / "no_column.gpkg"
    gpd.GeoDataFrame(
        {"etat": ["healthy", "bare"]}, geometry=[_field(2), _field(42)], crs=CRS
    ).to_file(path)
    return path


def not_a_gpkg(tmp: Path) -> Path:
    (tmp / "labels.gpkg").write_text("healthy,bare")
    return tmp / "labels.gpkg"


def missing(tmp: Path) -> Path:
    return tmp / "absent.gpkg"


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "labels with no overlap with the image": (far_away, "no label polygon overlaps"),
    "one class only": (one_class, "only class ['healthy']"),
    "one class over the image, the other outside": (one_class_over_the_image, "only class"),
    "the other class only where the image is masked": (
        one_class_on_valid_pixels,
        "only ['healthy'] has labelled pixels where the image is valid",
    ),
    "unknown class value": (unknown_class, "classes ['dead'] not in"),
    "empty class value": (empty_class, "1 polygon(s) with no 'health' value: rows 1"),
    "blank class value": (blank_class, "no 'health' value"),
    "labels without CRS": (no_crs, "no CRS"),
    "points, not polygons": (points, "must be polygons, not ['Point']"),
    "no class column": (no_class_column, "no class column 'health'; its columns are ['etat']"),
    "text file named .gpkg": (not_a_gpkg, "cannot read labels"),
    "missing file": (missing, "labels file not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_labels_are_refused_naming_the_file(image: Path, tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    labels = make(tmp_path)
    with pytest.raises(InputError) as caught:
        train_health(image, labels)
    assert caught.value.source == str(labels)
    assert words in caught.value.problem


def test_labels_in_another_crs_are_reprojected_and_reported(image: Path, tmp_path: Path) -> None:
    lonlat = gpd.read_file(_labels(tmp_path / "utm.gpkg", ["healthy", "stressed", "bare"]))
    path = tmp_path / "lonlat.gpkg"
    lonlat.to_crs("EPSG:4326").to_file(path)
    checked = checked_labels(path, "health", ("healthy", "stressed", "bare"), image)
    assert checked.notes == ("reprojected from EPSG:4326 to EPSG:32630",)
    assert checked.shapes[0][0].equals_exact(_field(2), tolerance=1e-3)


def test_an_invalid_polygon_is_repaired_and_reported(image: Path, tmp_path: Path) -> None:
    x0, y0 = LEFT_M + 42, TOP_M - 58
    bow_tie = Polygon([(x0, y0), (x0 + 15, y0 + 25), (x0 + 15, y0), (x0, y0 + 25)])
    labels = _labels(tmp_path / "bow_tie.gpkg", ["healthy", "stressed", "bare"])
    frame = gpd.read_file(labels)
    frame.loc[2, "geometry"] = bow_tie
    frame.to_file(labels)
    report = validate_health([(image, labels)], block_m=None, n_folds=2, max_samples_per_class=500)
    assert len(report.notes) == 1
    assert report.notes[0].startswith("repaired 1 invalid polygon(s) (row 2: Self-intersection")
    assert "Notes on the labels" in report.markdown()
    assert report.scores[2].tested_px == 500
