"""Our mosaic's warp-and-merge against gdalwarp and rio merge, on the same seeded frames.

Generates a seeded survey of georeferenced nadir frames near Berkane (UTM 30N): each frame
is written twice with the same pixels, as a JPEG with an ``ImageRecord`` (the input of
``pipeline.mosaic.mosaic_frames``) and as a JPEG-compressed GeoTIFF whose geotransform is
the frame's pixel-to-ground affine (the input of ``merge_orthophotos``, gdalwarp and
rio merge). Each tool then builds the same output grid in its own subprocess, so wall time
and peak RSS (``wait4``) are measured alike. Prints a markdown table.

    .venv/bin/python benchmarks/mosaic.py [--lines 10 --per-line 12] [--rotated]
    .venv/bin/python benchmarks/mosaic.py --grid-px 20000 --frame-px 2000 1500 --only ours-frames
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from process_cost import measure
from pyproj import Transformer
from rasterio.windows import Window

from core.types import Camera, Grid, ImageRecord
from pipeline.footprint import footprint, frame_to_ground, true_north_bearing_deg

CRS = "EPSG:32630"
CENTRE_M = (560_000.0, 3_860_000.0)
"""Survey centre in UTM 30N, on the Triffa plain near Berkane."""
TOOLS = ("ours-frames", "ours-frames-dem", "ours-orthophotos", "gdalwarp", "rio-merge")
DEM_PIXEL_DEG = 1 / 3600
"""The DEM's pixel: one arc-second in lon/lat, as Copernicus GLO-30's."""
PYTHON = sys.executable
HERE = Path(__file__).resolve()


@dataclass(frozen=True)
class Survey:
    """The generated frames: records (JPEG paths), their GeoTIFF twins, the grid and a
    flat DEM under them (frames on it take the remap path: the per-pixel work of relief)."""

    records: list[ImageRecord]
    geotiffs: list[Path]
    grid: Grid
    dem: Path


def _camera(width_px: int, height_px: int) -> Camera:
    return Camera(
        name="bench",
        make="Raqib",
        model="bench",
        sensor_width_mm=13.2,
        sensor_height_mm=13.2 * height_px / width_px,
        image_width_px=width_px,
        image_height_px=height_px,
        focal_length_mm=8.8,
    )


def _ground_pixels(to_ground: Affine, width: int, height: int, rng: np.random.Generator):
    """Procedural ground colours (fields, rows, noise) seen through a frame's affine."""
    cols = np.arange(width, dtype=np.float32) + 0.5
    rows = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    x = to_ground.a * cols + to_ground.b * rows + np.float32(to_ground.c - CENTRE_M[0])
    y = to_ground.d * cols + to_ground.e * rows + np.float32(to_ground.f - CENTRE_M[1])
    field = np.sin(x / 37.0) * np.cos(y / 23.0)
    rows_pattern = np.sin((x + 0.6 * y) / 2.5)
    # Fine texture fixed to the ground (so overlapping frames agree) + per-frame sensor noise.
    noise = 10 * np.sin(x * 9.1) * np.cos(y * 7.3) + rng.normal(0.0, 2.0, (height, width))
    red = 130 + 50 * field + 15 * rows_pattern + noise
    green = 120 + 40 * np.cos(x / 29.0) + 25 * rows_pattern + noise
    blue = 90 + 30 * np.sin(y / 41.0) + noise
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def generate(args: argparse.Namespace, folder: Path) -> Survey:
    """Seeded frames along lawnmower lines; JPEG + GeoTIFF of each; the grid they cover."""
    rng = np.random.default_rng(args.seed)
    width_px, height_px = args.frame_px
    camera = _camera(width_px, height_px)
    gsd_m = args.gsd_cm / 100.0
    altitude_m = camera.altitude_for_gsd_m(args.gsd_cm)
    across_m = width_px * gsd_m * (1 - args.side_overlap)
    along_m = height_px * gsd_m * (1 - args.front_overlap)
    lines, per_line = args.lines, args.per_line
    if args.grid_px:
        lines = math.ceil(args.grid_px * gsd_m / across_m) + 1
        per_line = math.ceil(args.grid_px * gsd_m / along_m) + 1
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    start = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    records, geotiffs = [], []
    for line in range(lines):
        for shot in range(per_line):
            x_m = CENTRE_M[0] + (line - (lines - 1) / 2) * across_m + rng.normal(0, 1.0)
            y_m = CENTRE_M[1] + (shot - (per_line - 1) / 2) * along_m + rng.normal(0, 1.0)
            lon, lat = to_lonlat.transform(x_m, y_m)
            north_up_yaw = -true_north_bearing_deg(lon, lat, CRS)
            yaw = north_up_yaw
            if args.rotated:
                yaw += 180.0 * (line % 2) + rng.normal(0, 4.0)
            index = len(records)
            record = ImageRecord(
                path=folder / f"frame_{index:05d}.jpg",
                sha256="",
                captured_at=start + timedelta(seconds=2 * index),
                lon_deg=lon,
                lat_deg=lat,
                altitude_m=altitude_m,
                camera=camera,
                yaw_deg=yaw,
                width_px=width_px,
                height_px=height_px,
            )
            to_ground = frame_to_ground(record, CRS)
            if not args.rotated:  # exactly north-up (rio merge refuses any rotation)
                to_ground = Affine(to_ground.a, 0, to_ground.c, 0, to_ground.e, to_ground.f)
            rgb = _ground_pixels(to_ground, width_px, height_px, rng)
            cv2.imwrite(str(record.path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            geotiff = record.path.with_suffix(".tif")
            with rasterio.open(
                geotiff, "w", driver="GTiff", width=width_px, height=height_px, count=3,
                dtype="uint8", crs=CRS, transform=to_ground, tiled=True, blockxsize=256,
                blockysize=256, compress="JPEG", photometric="YCBCR", jpeg_quality=90,
            ) as dst:  # fmt: skip
                dst.write(rgb.transpose(2, 0, 1))
            records.append(record)
            geotiffs.append(geotiff)
    bounds = np.array([footprint(record, CRS).bounds for record in records])
    union = (*bounds[:, :2].min(axis=0), *bounds[:, 2:].max(axis=0))
    grid = Grid.from_bounds(union, gsd_m, CRS)
    if args.grid_px:  # exactly grid_px square, centred on the survey
        left = round((CENTRE_M[0] - args.grid_px * gsd_m / 2) / gsd_m) * gsd_m
        top = round((CENTRE_M[1] + args.grid_px * gsd_m / 2) / gsd_m) * gsd_m
        grid = Grid(CRS, Affine(gsd_m, 0, left, 0, -gsd_m, top), args.grid_px, args.grid_px)
    return Survey(records=records, geotiffs=geotiffs, grid=grid, dem=_flat_dem(folder, grid))


def _flat_dem(folder: Path, grid: Grid) -> Path:
    """A flat lon/lat DEM at GLO-30's pixel over ``grid`` and 100 m around it."""
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    left, bottom, right, top = grid.bounds
    lons, lats = to_lonlat.transform([left - 100, right + 100], [bottom - 100, top + 100])
    width = math.ceil((lons[1] - lons[0]) / DEM_PIXEL_DEG)
    height = math.ceil((lats[1] - lats[0]) / DEM_PIXEL_DEG)
    transform = Affine(DEM_PIXEL_DEG, 0, lons[0], 0, -DEM_PIXEL_DEG, lats[1])
    path = folder / "dem.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
        crs="EPSG:4326", transform=transform,
    ) as dst:  # fmt: skip
        dst.write(np.full((height, width), 150.0, np.float32), 1)
    return path


def _commands(tool: str, survey_file: Path, survey: Survey, out: Path) -> list[str]:
    grid = survey.grid
    left, bottom, right, top = grid.bounds
    res = str(grid.resolution_m)
    tiffs = [str(path) for path in survey.geotiffs]
    if tool.startswith("ours"):
        return [PYTHON, str(HERE), "--child", tool, str(survey_file), str(out)]
    if tool == "gdalwarp":
        return [
            "gdalwarp", "-q", "-overwrite", "-t_srs", CRS, "-te", str(left), str(bottom),
            str(right), str(top), "-tr", res, res, "-r", "bilinear", "-dstalpha",
            "-of", "COG", "-co", "COMPRESS=DEFLATE", *tiffs, str(out),
        ]  # fmt: skip
    return [
        str(Path(PYTHON).with_name("rio")), "merge", "--overwrite", "--bounds",
        f"{left} {bottom} {right} {top}", "--res", res, "--resampling", "bilinear",
        "--co", "TILED=YES", "--co", "COMPRESS=DEFLATE", "--co", "PHOTOMETRIC=RGB",
        *tiffs, str(out),
    ]  # fmt: skip


def difference_to(path: Path, reference: Path, grid: Grid) -> str:
    """Mean |difference| (DN) to ``reference`` where both have data, on a central window."""
    if not (path.exists() and reference.exists()):
        return ""
    size = min(1024, grid.width, grid.height)
    window = Window((grid.width - size) // 2, (grid.height - size) // 2, size, size)
    with rasterio.open(path) as src, rasterio.open(reference) as ref:
        ours, ref_rgb = src.read([1, 2, 3], window=window), ref.read([1, 2, 3], window=window)
        both = (src.dataset_mask(window=window) > 0) & (ref.dataset_mask(window=window) > 0)
    return f"{np.abs(ours[:, both].astype(int) - ref_rgb[:, both]).mean():.2f}"


def child(tool: str, survey_file: Path, out: Path) -> None:
    """Run one of our mosaics (inside the measured subprocess)."""
    survey: Survey = pickle.loads(survey_file.read_bytes())
    if tool in ("ours-frames", "ours-frames-dem"):
        from pipeline.mosaic import mosaic_frames

        dem = survey.dem if tool == "ours-frames-dem" else None
        mosaic_frames(survey.records, survey.grid, out, balance_exposure=False, dem=dem)
    else:
        from pipeline.orthophotos import merge_orthophotos

        merge_orthophotos(survey.geotiffs, survey.grid, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--per-line", type=int, default=12)
    parser.add_argument("--frame-px", type=int, nargs=2, default=(1200, 900))
    parser.add_argument("--gsd-cm", type=float, default=5.0)
    parser.add_argument("--front-overlap", type=float, default=0.7)
    parser.add_argument("--side-overlap", type=float, default=0.6)
    parser.add_argument("--rotated", action="store_true", help="yaw along the flight lines")
    parser.add_argument("--grid-px", type=int, default=0, help="square grid; sets lines")
    parser.add_argument("--only", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="keep the frames and outputs here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, survey_file, out = args.child
        child(tool, Path(survey_file), Path(out))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="raqib-bench-mosaic-"))
    frames_dir = workdir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    survey = generate(args, frames_dir)
    survey_file = workdir / "survey.pkl"
    survey_file.write_bytes(pickle.dumps(survey))
    grid = survey.grid
    print(
        f"{len(survey.records)} frames of {args.frame_px[0]} x {args.frame_px[1]} px at "
        f"{args.gsd_cm} cm, overlap {args.front_overlap:.0%}/{args.side_overlap:.0%}, "
        f"{'rotated (yaw along lines)' if args.rotated else 'north-up'}; grid "
        f"{grid.width} x {grid.height} px ({grid.width * grid.height / 1e6:.0f} Mpx) in {CRS}; "
        f"generated in {time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs\n"
    )
    results = {}
    out_paths = {tool: workdir / f"{tool}.tif" for tool in TOOLS}
    for tool in args.only:
        out_paths[tool].unlink(missing_ok=True)
        results[tool] = measure(_commands(tool, survey_file, survey, out_paths[tool]))
    base_s = results["gdalwarp"][1] if "gdalwarp" in results else None
    imports = "import pipeline.mosaic, pipeline.orthophotos"
    startup_s, startup_cpu_s, _, _ = measure([PYTHON, "-c", imports])
    print(
        "| tool | output | wall (s) | CPU (s) | Mpx/s (CPU) | gdalwarp CPU / this "
        "| peak RSS (MiB) | mean abs diff to gdalwarp (DN) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    outputs = {
        "ours-frames": "COG deflate + mask (mosaic_frames, from JPEG + pose)",
        "ours-frames-dem": 'the same on a flat 1" lon/lat DEM (cv2.remap per pixel)',
        "ours-orthophotos": "COG deflate + mask (merge_orthophotos, from GeoTIFF)",
        "gdalwarp": "COG deflate + alpha (-of COG -dstalpha)",
        "rio-merge": "GTiff tiled deflate, nodata 0",
    }
    mpx = grid.width * grid.height / 1e6
    for tool, (wall_s, cpu_s, rss_mib, failure) in results.items():
        if failure:
            print(f"| {tool} | failed: {failure[:90]} | {wall_s:.1f} | {cpu_s:.1f} | | | "
                  f"{rss_mib:.0f} | |")  # fmt: skip
            continue
        ratio = f"{base_s / cpu_s:.2f}" if base_s else ""
        diff = difference_to(out_paths[tool], out_paths["gdalwarp"], grid)
        print(
            f"| {tool} | {outputs[tool]} | {wall_s:.1f} | {cpu_s:.1f} | {mpx / cpu_s:.1f} "
            f"| {ratio} | {rss_mib:.0f} | {diff} |"
        )
    print(
        f"\nTimes include starting Python and importing our stack: {startup_s:.1f} s wall, "
        f"{startup_cpu_s:.1f} s CPU for ours (rio merge pays part of it too). CPU time is "
        "the fairer measure when the machine is shared."
    )
    if not args.workdir:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
