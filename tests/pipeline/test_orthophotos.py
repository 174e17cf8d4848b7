"""Orthophoto merge: real GeoTIFF tiles come back onto a fixed grid, masks and all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds
from rasterio.windows import Window

from core.errors import InputError
from core.types import Grid
from pipeline.mosaic import validate_cog
from pipeline.orthophotos import grid_of_orthophotos, merge_orthophotos

UTM15 = "EPSG:32615"


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read(), src.dataset_mask() > 0


def _grid_of(path: Path) -> Grid:
    with rasterio.open(path) as src:
        return Grid(src.crs.to_wkt(), src.transform, src.width, src.height)


@pytest.fixture(scope="module")
def landsat(shared_data: Path) -> Path:
    return shared_data / "rasters" / "rasterio"


@pytest.fixture(scope="module")
def webodm(shared_data: Path) -> Path:
    return shared_data / "orthophotos" / "webodm_orthophoto.tif"


def _write_rgba(path: Path, rgba: np.ndarray, crs: str, transform: Affine) -> Path:
    count = rgba.shape[0]
    with rasterio.open(
        path, "w", driver="GTiff", width=rgba.shape[2], height=rgba.shape[1], count=count,
        dtype=rgba.dtype, crs=crs, transform=transform, photometric="RGB", alpha="YES",
    ) as dst:  # fmt: skip
        dst.write(rgba)
    return path


def test_quadrants_merge_back_into_the_whole_scene(landsat: Path, tmp_path: Path) -> None:
    grid = _grid_of(landsat / "RGB.byte.tif")
    quadrants = [landsat / f"rgb{i}.tif" for i in range(1, 5)]

    result = merge_orthophotos(quadrants, grid, tmp_path / "merged.tif", tile_px=256)

    assert result.skipped == ()
    assert validate_cog(result.raster.path)
    merged, merged_valid = _read(result.raster.path)
    scene, scene_valid = _read(landsat / "RGB.byte.tif")
    assert merged.shape == scene.shape
    np.testing.assert_array_equal(merged_valid, scene_valid)
    np.testing.assert_array_equal(merged[:, scene_valid], scene[:, scene_valid])


def test_rgba_orthophoto_reprojects_like_rasterio(webodm: Path, tmp_path: Path) -> None:
    with rasterio.open(webodm) as src:
        bounds = transform_bounds(src.crs, "EPSG:3857", *src.bounds)
        grid = Grid.from_bounds(bounds, 0.6, "EPSG:3857")
        expected = np.zeros((4, grid.height, grid.width), np.uint8)
        reproject(
            rasterio.band(src, [1, 2, 3, 4]), expected, dst_transform=grid.transform,
            dst_crs=grid.crs, resampling=Resampling.bilinear, src_alpha=4, dst_alpha=4,
        )  # fmt: skip

    # Small tiles: the seams between tiles must not show.
    result = merge_orthophotos([webodm], grid, tmp_path / "webmerc.tif", tile_px=64)

    merged, valid = _read(result.raster.path)
    assert merged.shape == (3, grid.height, grid.width)
    expected_valid = expected[3] > 0
    assert 0.5 < expected_valid.mean() < 1.0  # the alpha really masks something
    assert (valid != expected_valid).sum() <= 0.001 * valid.size
    both = valid & expected_valid
    difference = np.abs(merged[:, both].astype(int) - expected[:3, both])
    assert difference.max() <= 1


def test_tiles_in_two_crs_merge_onto_one_grid(webodm: Path, tmp_path: Path) -> None:
    grid = _grid_of(webodm)
    original, original_valid = _read(webodm)
    with rasterio.open(webodm) as src:
        west = Window(0, 0, 130, src.height)
        west_path = _write_rgba(
            tmp_path / "west_utm15.tif", src.read(window=west), UTM15, src.window_transform(west)
        )
        east = Window(90, 0, src.width - 90, src.height)
        east_bounds = rasterio.windows.bounds(east, src.transform)
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", east.width, east.height, *east_bounds
        )
        east_lonlat = np.zeros((4, height, width), np.uint8)
        reproject(
            src.read(window=east), east_lonlat, src_transform=src.window_transform(east),
            src_crs=src.crs, dst_transform=transform, dst_crs="EPSG:4326",
            resampling=Resampling.bilinear, src_alpha=4, dst_alpha=4,
        )  # fmt: skip
    east_path = _write_rgba(tmp_path / "east_lonlat.tif", east_lonlat, "EPSG:4326", transform)

    result = merge_orthophotos([west_path, east_path], grid, tmp_path / "merged.tif")

    merged, valid = _read(result.raster.path)
    # West of the overlap: the UTM tile, on its own grid, unchanged.
    np.testing.assert_array_equal(valid[:, :90], original_valid[:, :90])
    west_cols = slice(0, 130)
    west_valid = original_valid[:, west_cols]
    np.testing.assert_array_equal(
        merged[:, :, west_cols][:, west_valid], original[:3, :, west_cols][:, west_valid]
    )
    # East: resampled twice (to lon/lat and back), so close but not equal.
    east_cols = slice(140, None)
    assert (valid[:, east_cols] == original_valid[:, east_cols]).mean() > 0.98
    both = valid[:, east_cols] & original_valid[:, east_cols]
    difference = np.abs(
        merged[:, :, east_cols][:, both].astype(int) - original[:3, :, east_cols][:, both]
    )
    assert np.median(difference) <= 4


def _flat_tile(path: Path, value: int, left_m: float) -> Path:
    """A 100 x 60 px uint16 RGBA tile of one value at 1 m, top at 1000 m, in UTM 30N."""
    rgba = np.full((4, 60, 100), value, np.uint16)
    rgba[3] = 65535
    return _write_rgba(path, rgba, "EPSG:32630", Affine(1, 0, left_m, 0, -1, 1000))


def test_feather_fades_across_the_overlap(tmp_path: Path) -> None:
    dark = _flat_tile(tmp_path / "dark.tif", 1000, 0.0)
    bright = _flat_tile(tmp_path / "bright.tif", 3000, 50.0)
    grid = Grid.from_bounds((0, 940, 150, 1000), 1.0, "EPSG:32630")

    first = merge_orthophotos([dark, bright], grid, tmp_path / "first.tif")
    feather = merge_orthophotos([dark, bright], grid, tmp_path / "feather.tif", method="feather")

    first_pixels, _ = _read(first.raster.path)
    feathered, valid = _read(feather.raster.path)
    assert feathered.dtype == np.uint16 and valid.all()
    np.testing.assert_array_equal(first_pixels[0, 30, 40:100], 1000)
    seam = feathered[0, 30, 50:100].astype(int)
    assert seam[0] < 1300 and seam[-1] > 2700  # each side keeps its own value at the edge
    assert np.all(np.diff(seam) >= 0) and len(set(seam)) > 20  # and fades, not cuts
    assert validate_cog(feather.raster.path)


def test_bad_tiles_are_skipped_with_reasons(landsat: Path, tmp_path: Path) -> None:
    grid = _grid_of(landsat / "RGB.byte.tif")
    not_a_raster = tmp_path / "notes.tif"
    not_a_raster.write_text("not a GeoTIFF")
    no_crs = tmp_path / "no_crs.tif"
    with rasterio.open(
        no_crs, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8"
    ) as dst:
        dst.write(np.ones((3, 8, 8), np.uint8))
    elsewhere = _flat_tile(tmp_path / "elsewhere.tif", 5, 0.0)
    good = [landsat / "rgb1.tif", landsat / "rgb2.tif"]

    result = merge_orthophotos(
        [not_a_raster, good[0], no_crs, elsewhere, good[1]], grid, tmp_path / "merged.tif"
    )

    reasons = {item.path.name: item.reason for item in result.skipped}
    assert set(reasons) == {"notes.tif", "no_crs.tif", "elsewhere.tif"}
    assert "cannot be read" in reasons["notes.tif"]
    assert "no CRS" in reasons["no_crs.tif"]
    assert "does not overlap" in reasons["elsewhere.tif"]
    _, valid = _read(result.raster.path)
    _, scene_valid = _read(landsat / "RGB.byte.tif")
    # rgb1 and rgb2 are the top 400 rows of the scene.
    np.testing.assert_array_equal(valid[:400], scene_valid[:400])
    assert scene_valid[400:].any() and not valid[400:].any()


def test_no_usable_tile_is_an_input_error_naming_it(landsat: Path, tmp_path: Path) -> None:
    grid = _grid_of(landsat / "RGB.byte.tif")
    elsewhere = _flat_tile(tmp_path / "elsewhere.tif", 5, 0.0)

    with pytest.raises(InputError, match="elsewhere.tif.*does not overlap"):
        merge_orthophotos([elsewhere], grid, tmp_path / "merged.tif")
    assert not (tmp_path / "merged.tif").exists()


def test_grid_covers_every_source_at_the_finest_resolution(webodm: Path, tmp_path: Path) -> None:
    coarse = tmp_path / "coarse.tif"
    with rasterio.open(webodm) as src:
        profile = src.profile | {
            "width": 53,
            "height": 53,
            "transform": src.transform @ Affine.scale(4),
        }
        with rasterio.open(coarse, "w", **profile) as dst:
            dst.write(src.read(out_shape=(4, 53, 53)))
        bounds = src.bounds

    grid = grid_of_orthophotos([coarse, webodm], UTM15)

    assert grid.resolution_m == 0.5
    left, bottom, right, top = grid.bounds
    assert left <= bounds.left and bottom <= bounds.bottom
    assert right >= bounds.right and top >= bounds.top
    assert right - left < bounds.right - bounds.left + 1.0
    assert left % 0.5 == 0 and top % 0.5 == 0  # snapped: epochs align pixel to pixel
    assert grid_of_orthophotos([webodm], UTM15, resolution_m=2.0).resolution_m == 2.0


def test_grid_of_far_apart_sources_is_refused(webodm: Path, tmp_path: Path) -> None:
    far = _write_rgba(  # 580 km west of the orthophoto, in its CRS
        tmp_path / "far.tif", np.full((4, 8, 8), 9, np.uint8), UTM15, Affine(1, 0, 0, 0, -1, 5e6)
    )
    with pytest.raises(InputError, match="wrong CRS"):
        grid_of_orthophotos([webodm, far], UTM15)
    other_zone = _flat_tile(tmp_path / "other_zone.tif", 5, 0.0)  # UTM 30N, at the equator
    assert grid_of_orthophotos([webodm, other_zone], UTM15) == grid_of_orthophotos([webodm], UTM15)
    with pytest.raises(InputError, match="missing.tif.*No such file"):
        grid_of_orthophotos([tmp_path / "missing.tif"], UTM15)


def test_merge_command_mosaics_tiles_and_reports_skipped(
    webodm: Path, tmp_path: Path, capsys
) -> None:
    import cli

    junk = tmp_path / "junk.tif"
    junk.write_text("not a GeoTIFF")
    out = tmp_path / "merged.tif"

    code = cli.main(["merge", str(webodm), str(junk), "-o", str(out), "--crs", UTM15])

    printed = capsys.readouterr().out
    assert code == 0
    assert "from 1 orthophotos, 1 skipped" in printed and "junk.tif" in printed
    assert validate_cog(out)
    with rasterio.open(out) as merged, rasterio.open(webodm) as src:
        assert merged.res == (0.5, 0.5) and merged.count == 3
        assert merged.crs == src.crs
    assert cli.main(["merge", str(junk), "-o", str(tmp_path / "none.tif")]) == 2
    assert "junk.tif" in capsys.readouterr().err
