"""Evidence chips: outlines land on the pixels the polygon covers, chips are read by windows
at an overview that fits, and before / after pairs share one grid."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio import features as rio_features

from core.errors import InputError
from gis.evidence import (
    BACKGROUND_RGB,
    CAPTION_PX,
    GAP_PX,
    OUTLINE_PX,
    OUTLINE_RGB,
    SECOND_OUTLINE_RGB,
    chip_grid,
    evidence_file_name,
    outlined_chip,
    read_chip,
    read_png,
    write_before_after,
    write_chip,
)

UTM = "EPSG:32630"
ORIGIN = (600_000.0, 3_860_000.0)
PIXEL_M = 0.5
INSIDE_RGB, OUTSIDE_RGB = (250, 250, 250), (20, 90, 30)


def _site(dx: float = 40.0, dy: float = 50.0) -> shapely.Polygon:
    """A skewed pentagon (no edge along the pixel grid) about 60 x 45 m."""
    x, y = ORIGIN[0] + dx, ORIGIN[1] - dy
    return shapely.Polygon(
        [
            (x, y),
            (x + 47.3, y + 6.1),
            (x + 58.9, y - 31.7),
            (x + 21.2, y - 44.4),
            (x - 3.3, y - 19.8),
        ]
    )


def _mosaic(
    path: Path,
    polygon: shapely.Polygon,
    *,
    crs: str = UTM,
    transform: Affine | None = None,
    size_px: int = 400,
    overviews: tuple[int, ...] = (2, 4, 8),
) -> Path:
    """An RGB GeoTIFF whose pixels are white inside ``polygon`` (in ``crs``), green outside,
    with an internal mask (all valid) and overviews."""
    transform = transform or Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1])
    inside = rio_features.geometry_mask(
        [polygon], out_shape=(size_px, size_px), transform=transform, invert=True
    )
    rgb = np.where(
        inside[None], np.array(INSIDE_RGB)[:, None, None], np.array(OUTSIDE_RGB)[:, None, None]
    )
    profile = dict(
        driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8", crs=crs,
        transform=transform, tiled=True, blockxsize=128, blockysize=128, photometric="RGB",
    )  # fmt: skip
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(rgb.astype(np.uint8))
            dst.write_mask(np.full((size_px, size_px), 255, dtype=np.uint8))
            if overviews:
                dst.build_overviews(list(overviews), rasterio.enums.Resampling.average)
    return path


def _is(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(rgb == np.array(colour, dtype=np.uint8), axis=-1)


def _pixel_centres(chip) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.indices(chip.grid.shape)
    return chip.grid.transform @ (cols + 0.5, rows + 0.5)


@pytest.mark.parametrize(("min_px", "zoom"), [(1, 1), (250, 2), (400, 3)])
def test_outline_lands_on_the_polygon_boundary(tmp_path: Path, min_px: int, zoom: int) -> None:
    polygon = _site()
    mosaic = _mosaic(tmp_path / "m.tif", polygon)
    outline = gpd.GeoSeries([polygon], crs=UTM)
    chip = outlined_chip(mosaic, outline, margin_m=5.0, min_px=min_px)

    pixel_m = PIXEL_M / zoom  # a small area is enlarged by whole pixels
    assert chip.overview_level is None and chip.grid.resolution_m == pixel_m
    on_outline = _is(chip.rgb, OUTLINE_RGB)
    xs, ys = _pixel_centres(chip)
    distance_m = shapely.distance(polygon.boundary, shapely.points(xs[on_outline], ys[on_outline]))
    assert distance_m.max() <= (OUTLINE_PX / 2 + 0.75) * pixel_m  # half a line and a diagonal
    # Centred on the boundary, not shifted to one side of it.
    assert 0.4 < shapely.contains_xy(polygon, xs[on_outline], ys[on_outline]).mean() < 0.6
    boundary = polygon.boundary
    samples = shapely.line_interpolate_point(boundary, np.arange(0, boundary.length, 0.25))
    cols, rows = ~chip.grid.transform @ (shapely.get_x(samples), shapely.get_y(samples))
    hit = on_outline[rows.astype(int), cols.astype(int)]
    assert hit.mean() > 0.97
    # The chip shows the mosaic where the polygon is: white inside, green in the margin.
    away = ~on_outline & (shapely.distance(boundary, shapely.points(xs, ys)) > PIXEL_M)
    inside = shapely.contains_xy(polygon, xs, ys)
    assert _is(chip.rgb, INSIDE_RGB)[away & inside].all()
    assert _is(chip.rgb, OUTSIDE_RGB)[away & ~inside].all()


def test_a_polygon_in_another_crs_is_drawn_on_the_same_pixels(tmp_path: Path) -> None:
    polygon = _site()
    mosaic = _mosaic(tmp_path / "m.tif", polygon)
    in_utm = outlined_chip(mosaic, gpd.GeoSeries([polygon], crs=UTM))
    in_lonlat = outlined_chip(mosaic, gpd.GeoSeries([polygon], crs=UTM).to_crs("EPSG:4326"))

    assert in_lonlat.grid == in_utm.grid
    assert (_is(in_lonlat.rgb, OUTLINE_RGB) == _is(in_utm.rgb, OUTLINE_RGB)).mean() > 0.999


def test_a_large_area_is_read_at_an_overview_within_max_px(tmp_path: Path) -> None:
    polygon = _site()
    mosaic = _mosaic(tmp_path / "m.tif", polygon)
    with rasterio.open(mosaic, "r+") as dst:  # full resolution now differs from overviews
        dst.write(np.zeros((3, 400, 400), dtype=np.uint8))
    outline = gpd.GeoSeries([polygon], crs=UTM)

    small = read_chip(mosaic, chip_grid(mosaic, outline, margin_m=40.0, max_px=64))
    full = read_chip(mosaic, chip_grid(mosaic, outline, margin_m=40.0, max_px=1024))

    assert max(small.grid.shape) <= 64 and small.overview_level is not None
    assert small.rgb.max() > 0  # the stale overview content, not the full resolution
    assert full.overview_level is None and full.rgb.max() == 0


def test_the_second_outline_is_drawn_under_the_first(tmp_path: Path) -> None:
    polygon = _site()
    mosaic = _mosaic(tmp_path / "m.tif", polygon)
    structure = shapely.box(*shapely.centroid(polygon).buffer(6).bounds)
    chip = outlined_chip(
        mosaic,
        gpd.GeoSeries([polygon], crs=UTM),
        second=gpd.GeoSeries([structure], crs=UTM),
    )
    magenta = _is(chip.rgb, SECOND_OUTLINE_RGB)
    xs, ys = _pixel_centres(chip)
    assert magenta.sum() > 4 * 12 / PIXEL_M
    distance_m = shapely.distance(structure.boundary, shapely.points(xs[magenta], ys[magenta]))
    assert distance_m.max() <= (OUTLINE_PX / 2 + 0.75) * PIXEL_M


def test_a_chip_is_written_with_its_caption(tmp_path: Path) -> None:
    polygon = _site()
    mosaic = _mosaic(tmp_path / "m.tif", polygon)
    out = write_chip(
        mosaic, gpd.GeoSeries([polygon], crs=UTM), tmp_path / "c.png", caption="P-1 2024-03-01"
    )
    image = read_png(out)
    chip = outlined_chip(mosaic, gpd.GeoSeries([polygon], crs=UTM))
    assert image.shape == (chip.grid.height + CAPTION_PX, chip.grid.width, 3)
    assert np.array_equal(image[CAPTION_PX:], chip.rgb)
    assert (image[:CAPTION_PX] > 200).all(axis=-1).any()  # white caption text
    assert list(tmp_path.glob(".*")) == []  # no temporary file left


def test_before_after_share_one_grid_across_crs(tmp_path: Path) -> None:
    polygon = _site()
    after = _mosaic(tmp_path / "after.tif", polygon)
    polygon_ll = gpd.GeoSeries([polygon], crs=UTM).to_crs("EPSG:4326").iloc[0]
    left, bottom, right, top = (
        gpd.GeoSeries([shapely.box(*ORIGIN, ORIGIN[0] + 200, ORIGIN[1] - 200)], crs=UTM)
        .to_crs("EPSG:4326")
        .total_bounds
    )
    transform = Affine((right - left) / 400, 0, left, 0, -(top - bottom) / 400, top)
    before = _mosaic(tmp_path / "before.tif", polygon_ll, crs="EPSG:4326", transform=transform)
    outline = gpd.GeoSeries([polygon], crs=UTM)

    out = write_before_after(
        before, after, outline, tmp_path / "pair.png", captions=("2024-01-10", "2024-06-05")
    )

    image = read_png(out)
    grid = chip_grid(after, outline)
    assert image.shape == (grid.height + CAPTION_PX, 2 * grid.width + GAP_PX, 3)
    assert _is(image[CAPTION_PX:, grid.width : grid.width + GAP_PX], BACKGROUND_RGB).all()
    before_chip = read_chip(before, grid)
    xs, ys = _pixel_centres(before_chip)
    deep_inside = shapely.contains_xy(polygon.buffer(-2.0), xs, ys)
    assert before_chip.valid.all()
    assert _is(before_chip.rgb, INSIDE_RGB)[deep_inside].mean() > 0.99


def test_a_polygon_off_the_mosaic_gives_an_empty_chip(tmp_path: Path) -> None:
    mosaic = _mosaic(tmp_path / "m.tif", _site())
    far = gpd.GeoSeries([_site(dx=5_000.0)], crs=UTM)
    chip = read_chip(mosaic, chip_grid(mosaic, far))
    assert not chip.valid.any()


@pytest.mark.parametrize(
    ("outline", "problem"),
    [
        (gpd.GeoSeries([_site()]), "has no CRS"),
        (gpd.GeoSeries([shapely.Polygon()], crs=UTM), "no geometry to show"),
    ],
)
def test_bad_outlines_are_refused_with_a_reason(
    tmp_path: Path, outline: gpd.GeoSeries, problem: str
) -> None:
    mosaic = _mosaic(tmp_path / "m.tif", _site())
    with pytest.raises(InputError, match=problem):
        chip_grid(mosaic, outline)


def test_a_lonlat_mosaic_cannot_set_a_chip_grid(tmp_path: Path) -> None:
    mosaic = _mosaic(
        tmp_path / "ll.tif", shapely.box(-2, 34, -1, 35), crs="EPSG:4326",
        transform=Affine(1e-5, 0, -2.0, 0, -1e-5, 35.0), overviews=(),
    )  # fmt: skip
    outline = gpd.GeoSeries([shapely.box(-1.9999, 34.9995, -1.9995, 34.9999)], crs="EPSG:4326")
    with pytest.raises(InputError, match="projected CRS"):
        chip_grid(mosaic, outline)


def test_a_single_band_raster_is_not_a_mosaic(tmp_path: Path) -> None:
    path = tmp_path / "dem.tif"
    transform = Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1])
    with rasterio.open(
        path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
        crs=UTM, transform=transform,
    ) as dst:  # fmt: skip
        dst.write(np.zeros((1, 10, 10), dtype=np.float32))
    outline = gpd.GeoSeries(
        [shapely.box(ORIGIN[0], ORIGIN[1] - 3, ORIGIN[0] + 3, ORIGIN[1])], crs=UTM
    )
    with pytest.raises(InputError, match="3 uint8 bands"):
        read_chip(path, chip_grid(path, outline))


def test_a_real_orthophoto_with_alpha_gives_a_masked_outlined_chip(shared_data: Path) -> None:
    ortho = shared_data / "orthophotos" / "webodm_orthophoto.tif"
    with rasterio.open(ortho) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    middle = shapely.box(left + 40, bottom + 40, right - 40, top - 40)
    outline = gpd.GeoSeries([middle], crs=crs).to_crs("EPSG:4326")  # in lon/lat: reprojected

    chip = outlined_chip(ortho, outline, margin_m=60.0)

    assert chip.grid.crs == crs.to_string() and chip.grid.width <= 512
    assert not chip.valid.all() and chip.valid.any()  # the margin runs off the orthophoto
    xs, ys = _pixel_centres(chip)
    assert chip.valid[shapely.contains_xy(middle, xs, ys)].all()
    outline_px = middle.length / chip.grid.resolution_m
    assert _is(chip.rgb, OUTLINE_RGB).sum() > 0.9 * OUTLINE_PX * outline_px


def test_evidence_names_of_distinct_parcels_never_collide_nor_escape() -> None:
    ids = ["A/1", "A_1", "A 1", "../../etc", "..", "off-cadastre", ".off-cadastre", None, "12-34"]
    names = [evidence_file_name(pid, "no_permit") for pid in ids]
    assert len(set(names)) == len(ids)
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert evidence_file_name("12-34", "no_permit") == "12-34_no_permit.png"
    assert evidence_file_name(None, "no_permit") == "off-cadastre_no_permit.png"
