"""Peak RSS and CPU of the non-building analyses (vigour, health, trees) on a world mosaic.

    .venv/bin/python benchmarks/analyses_memory.py [--size-m 500] [--tiles 2]
        [--gdal-cache capped|default] [--workdir /tmp/raqib_analyses] [--world DIR]

A seeded world (``sim.world.generate``, 10 cm) is resampled to 5 cm (the e2e mosaic's
pixel) and, with ``--tiles n``, repeated n x n with its parcels (a 1 km² mosaic from a 500 m
world in 48 s instead of the 522 s and 8.3 GiB of a 1 km world). Then the flows' calls run
one by one in this process, as ``health_task``, ``vigour_task`` and ``trees_task`` make them,
each with its peak RSS (Linux ``VmHWM``, reset before each call) and CPU time. The outputs
stay in ``--workdir`` for comparing runs. ``--gdal-cache default`` sets Raqib's GDAL cache
cap to GDAL's own default (5 % of RAM), as before the cap.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import geopandas as gpd
import pandas as pd
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.io  # noqa: E402
from core.io import rewrite_as_cog  # noqa: E402
from gis.parcels import read_parcels  # noqa: E402
from models.crop_health import classify_health, parcel_health  # noqa: E402
from models.indices import index_raster  # noqa: E402
from models.training import DEFAULT_HEALTH_MODEL, load_model  # noqa: E402
from models.trees import detect_trees, missing_trees, trees_per_parcel  # noqa: E402
from models.zonal import parcel_statistics  # noqa: E402
from models.zones import write_prescription, zones_of_parcels  # noqa: E402
from sim.world import generate, load_world  # noqa: E402

AGRICULTURAL_USES = ("orchard", "vineyard", "cereal", "vegetables", "bare")  # as flows.py
CHUNK_PX = 1024
T = TypeVar("T")


def rss_mib() -> tuple[int, int]:
    """(peak since the last reset, current) resident set size of this process, MiB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) // 1024, int(status["VmRSS"].split()[0]) // 1024


def measured(name: str, call: Callable[[], T]) -> T:
    """``call()``, printing its wall and CPU time and its peak RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    before = rss_mib()[1]
    cpu_s, wall_s = time.process_time(), time.time()
    result = call()
    peak, after = rss_mib()
    print(
        f"| {name} | {time.time() - wall_s:.1f} | {time.process_time() - cpu_s:.1f} "
        f"| {before} | {peak} | {after} |",
        flush=True,
    )
    return result


def mosaic_of(ortho: Path, out: Path, tiles: int) -> Path:
    """The 10 cm orthophoto at 5 cm (bilinear), repeated ``tiles`` x ``tiles``."""
    with rasterio.Env(GDAL_CACHEMAX=core.io.GDAL_CACHE_BYTES), rasterio.open(ortho) as src:
        width, height = 2 * src.width, 2 * src.height
        profile = {
            "driver": "GTiff",
            "count": 3,
            "dtype": "uint8",
            "crs": src.crs,
            "width": tiles * width,
            "height": tiles * height,
            "photometric": "RGB",
            "transform": src.transform @ Affine.scale(0.5),
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "deflate",
        }
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(out, "w", **profile) as dst:
            for row in range(0, src.height, CHUNK_PX):
                for col in range(0, src.width, CHUNK_PX):
                    window = Window(
                        col, row, min(CHUNK_PX, src.width - col), min(CHUNK_PX, src.height - row)
                    )
                    shape = (int(window.height) * 2, int(window.width) * 2)
                    rgb = src.read(
                        (1, 2, 3),
                        window=window,
                        out_shape=(3, *shape),
                        resampling=Resampling.bilinear,
                    )
                    mask = src.dataset_mask(window=window, out_shape=shape)
                    for dy in range(tiles):
                        for dx in range(tiles):
                            at = Window(2 * col + dx * width, 2 * row + dy * height, *shape[::-1])
                            dst.write(rgb, window=at)
                            dst.write_mask(mask, window=at)
    return out


def tiled_parcels(parcels: gpd.GeoDataFrame, width_m: float, height_m: float, tiles: int):
    """The parcels copied onto each repetition of the mosaic, ids suffixed ``-<dy><dx>``."""
    copies = []
    for dy in range(tiles):
        for dx in range(tiles):
            copy = parcels.copy()
            copy["geometry"] = copy.geometry.translate(dx * width_m, -dy * height_m)
            copy["parcel_id"] = copy["parcel_id"].astype(str) + f"-{dy}{dx}"
            copies.append(copy)
    return gpd.GeoDataFrame(pd.concat(copies, ignore_index=True), crs=parcels.crs)


def run_analyses(mosaic: Path, parcels: gpd.GeoDataFrame, out: Path) -> None:
    """The calls of the flows' health, vigour and trees tasks, each measured."""
    farms = parcels[parcels["land_use"].isin(AGRICULTURAL_USES)]
    print("| call | wall s | CPU s | RSS before MiB | peak MiB | RSS after MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    model = load_model(DEFAULT_HEALTH_MODEL)
    classes = measured(
        "health: classify_health",
        lambda: classify_health(model, mosaic, out / "crop_health.tif", mask_polygons=farms),
    )
    measured("health: COG", lambda: rewrite_as_cog(classes.path))
    health = measured("health: parcel_health", lambda: parcel_health(classes, mosaic, farms))
    health.drop(columns="geometry").to_csv(out / "health.csv", index=False)
    index = measured("vigour: index_raster", lambda: index_raster(mosaic, "gli", out / "gli.tif"))
    measured("vigour: COG", lambda: rewrite_as_cog(index.path))
    statistics = measured("vigour: parcel_statistics", lambda: parcel_statistics(index, farms))
    statistics.table.to_csv(out / "statistics.csv", index=False)
    zoning = measured("vigour: zones_of_parcels", lambda: zones_of_parcels(index.path, farms))
    write_prescription(zoning.zones, out / "prescription")
    orchards = parcels[parcels["land_use"] == "orchard"]
    crowns = measured("trees: detect_trees", lambda: detect_trees(mosaic, parcels=orchards))
    orchards = orchards.to_crs(crowns.crs)
    missing = measured(
        "trees: missing_trees",
        lambda: pd.concat(
            [
                missing_trees(crowns, p.geometry).assign(parcel_id=p.parcel_id)
                for p in orchards.itertuples()
            ],
            ignore_index=True,
        ),
    )
    per_parcel = measured("trees: trees_per_parcel", lambda: trees_per_parcel(crowns, orchards))
    crowns.to_file(out / "trees.gpkg", layer="crowns")
    gpd.GeoDataFrame(missing, geometry="geometry", crs=crowns.crs).to_file(
        out / "trees.gpkg", layer="missing"
    )
    per_parcel.drop(columns="geometry", errors="ignore").to_csv(out / "per_parcel.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-m", type=float, default=500)
    parser.add_argument("--tiles", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gdal-cache", choices=("capped", "default"), default="capped")
    parser.add_argument("--world", type=Path, help="reuse a generated world")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raqib_analyses"))
    args = parser.parse_args()
    if args.gdal_cache == "default":
        core.io.GDAL_CACHE_BYTES = int(
            0.05 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        )
    args.workdir.mkdir(parents=True, exist_ok=True)
    world = (
        load_world(args.world)
        if args.world
        else generate(
            args.workdir / "world", seed=args.seed, width_m=args.size_m, height_m=args.size_m
        )
    )
    mosaic = args.workdir / f"mosaic_x{args.tiles}.tif"
    if not mosaic.exists():
        mosaic_of(world.paths.ortho(world.epochs[0][0]), mosaic, args.tiles)
    left, bottom, right, top = world.bounds
    parcels = tiled_parcels(
        read_parcels(world.paths.parcels, world.crs), right - left, top - bottom, args.tiles
    )
    out = args.workdir / f"out_x{args.tiles}_{args.gdal_cache}"
    out.mkdir(exist_ok=True)
    with rasterio.open(mosaic) as src:
        size = f"{src.width} x {src.height} px"
    print(
        f"{size} mosaic, {len(parcels)} parcels, GDAL cache {args.gdal_cache} "
        f"({core.io.GDAL_CACHE_BYTES / 2**20:.0f} MiB), load {os.getloadavg()[0]:.1f}\n"
    )
    run_analyses(mosaic, parcels, out)
    print(f"\nload at the end {os.getloadavg()[0]:.1f}; outputs in {out}")


if __name__ == "__main__":
    main()
