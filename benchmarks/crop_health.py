"""Per-parcel statistics: ours (``models.zonal``) against exactextract, same raster and parcels.

Generates a seeded NDVI-like float32 raster near Berkane (UTM 30N; tiled, deflate, nodata nan
with scattered nodata pixels, as ``models.indices.index_raster`` writes it) and 1,000
cadastre-like parcels: Voronoi cells with 2 m tracks between them, every 7th with a
farmhouse hole, every 11th cut in two by a path, those on the border crossing the raster's
edge. Each tool computes count, area, mean, median, p10 and p90 of every parcel in its own
subprocess: wall and CPU time and peak RSS come from GNU time, "compute" is the tool's own
call timed inside (no interpreter start-up or imports). Then the values are compared.

    .venv/bin/python benchmarks/crop_health.py [--size-px 8192] [--parcels 1000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from process_cost import measure
from rasterio.transform import from_origin
from rasterio.windows import Window

CRS = "EPSG:32630"
ORIGIN_M = (560_000.0, 3_862_000.0)
"""North-west corner of the raster, on the Triffa plain near Berkane."""
PIXEL_M = 0.25
TOOLS = ("ours", "exactextract", "exactextract-raster-sequential")
EXACTEXTRACT_OPS = {
    "count": "count",
    "area_m2": "area_m2=count(coverage_weight=area_cartesian)",
    "mean": "mean",
    "median": "median",
    "p10": "p10=quantile(q=0.1)",
    "p90": "p90=quantile(q=0.9)",
}
"""Our statistic -> the exactextract operation computing it (a named quantile q gets a
``_<100 q>`` suffix in exactextract's output)."""
PYTHON = sys.executable
HERE = Path(__file__).resolve()


def write_raster(path: Path, size_px: int, seed: int) -> None:
    """A smooth field pattern plus noise, 1 % nodata pixels, written by strips."""
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "width": size_px,
        "height": size_px,
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": from_origin(*ORIGIN_M, PIXEL_M, PIXEL_M),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    cols = np.arange(size_px)[None, :]
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size_px, 512):
            rows = np.arange(row, min(row + 512, size_px))[:, None]
            field = 0.45 + 0.3 * np.sin(rows / 310.0) * np.cos(cols / 170.0)
            values = (field + rng.normal(0, 0.06, (len(rows), size_px))).astype(np.float32)
            values[rng.random(values.shape) < 0.01] = np.nan
            dst.write(values, 1, window=Window(0, row, size_px, len(rows)))
        dst.set_band_description(1, "ndvi")


def make_parcels(size_px: int, count: int, seed: int) -> gpd.GeoDataFrame:
    """Cadastre-like parcels over the raster and a little beyond (see the module doc)."""
    rng = np.random.default_rng(seed)
    x0, y0 = ORIGIN_M
    side_m = size_px * PIXEL_M
    extent = shapely.box(x0 - 40, y0 - side_m - 40, x0 + side_m + 40, y0 + 40)
    seeds = shapely.points(
        rng.uniform(x0 - 30, x0 + side_m + 30, count), rng.uniform(y0 - side_m - 30, y0 + 30, count)
    )
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extent)
    )
    cells = shapely.buffer(shapely.intersection(cells, extent), -1.0, join_style="mitre")
    parcels = []
    for k, cell in enumerate(cells):
        centre = cell.centroid
        if k % 7 == 0:
            house = shapely.box(centre.x - 5, centre.y - 6, centre.x + 5, centre.y + 6)
            cell = cell.difference(shapely.affinity.rotate(house, rng.uniform(0, 90)))
        if k % 11 == 0:
            path = shapely.LineString(
                [(centre.x - 500, centre.y - 300), (centre.x + 500, centre.y + 300)]
            )
            cell = cell.difference(path.buffer(1.0))
        parcels.append(cell)
    ids = [f"B{k:04d}" for k in range(len(parcels))]
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=parcels, crs=CRS)


def child(tool: str, workdir: Path) -> None:
    """Compute the statistics with one tool (inside the measured subprocess)."""
    raster = workdir / "ndvi.tif"
    parcels = pd.read_pickle(workdir / "parcels.pkl")
    if tool == "ours":
        from models.zonal import parcel_statistics

        start = time.perf_counter()
        table = parcel_statistics(raster, parcels).table
        seconds = time.perf_counter() - start
        table = table.rename(columns=lambda c: c.removeprefix("ndvi_"))
    else:
        from exactextract import exact_extract

        strategy = "raster-sequential" if tool.endswith("raster-sequential") else None
        options = {"strategy": strategy} if strategy else {}
        start = time.perf_counter()
        table = exact_extract(
            str(raster), parcels, list(EXACTEXTRACT_OPS.values()), output="pandas", **options
        )
        seconds = time.perf_counter() - start
        table = table.rename(columns={"p10_10": "p10", "p90_90": "p90"})
    (workdir / f"{tool}.pkl").write_bytes(pickle.dumps((seconds, table[list(EXACTEXTRACT_OPS)])))


def largest_difference(table: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Largest |difference| of mean/median/p10/p90 and relative one of count/area, over the
    parcels with data."""
    ours, theirs = table[reference["count"] > 0], reference[reference["count"] > 0]
    values, sizes = ["mean", "median", "p10", "p90"], ["count", "area_m2"]
    absolute = np.abs(ours[values].to_numpy() - theirs[values].to_numpy()).max()
    relative = np.abs(ours[sizes].to_numpy() / theirs[sizes].to_numpy() - 1).max()
    return f"{absolute:.1e} / {relative:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-px", type=int, default=8192, help="square raster side")
    parser.add_argument("--parcels", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--only", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--workdir", type=Path, help="keep the raster and parcels here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="raqib-bench-zonal-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_raster(workdir / "ndvi.tif", args.size_px, args.seed)
    parcels = make_parcels(args.size_px, args.parcels, args.seed)
    parcels.to_pickle(workdir / "parcels.pkl")
    mean_px = parcels.area.mean() / PIXEL_M**2
    print(
        f"raster {args.size_px}² px at {PIXEL_M} m ({args.size_px**2 / 1e6:.0f} Mpx, float32, "
        f"deflate); {len(parcels)} parcels, mean {mean_px:,.0f} px; generated in "
        f"{time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs; best of {args.repeat}\n"
    )
    results = {}
    for tool in args.only:
        runs = []
        for _ in range(args.repeat):
            output = workdir / f"{tool}.pkl"
            output.unlink(missing_ok=True)
            wall_s, cpu_s, rss_mib, failure = measure(
                [PYTHON, str(HERE), "--child", tool, str(workdir)]
            )
            compute_s, table = pickle.loads(output.read_bytes()) if not failure else (0.0, None)
            runs.append((compute_s, wall_s, cpu_s, rss_mib, failure, table))
        results[tool] = min(runs, key=lambda run: (bool(run[4]), run[0]))
    reference = min(
        (tool for tool in results if tool.startswith("exactextract") and not results[tool][4]),
        key=lambda tool: results[tool][0],
        default=None,
    )
    print(
        "| tool | compute (s) | wall (s) | CPU (s) | compute / fastest exactextract "
        "| peak RSS (MiB) | max diff to exactextract: values / count, area (rel.) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool, (compute_s, wall_s, cpu_s, rss_mib, failure, table) in results.items():
        if failure:
            print(f"| {tool} | failed: {failure[:90]} | | | | | |")
            continue
        ratio = f"{compute_s / results[reference][0]:.2f}" if reference else ""
        diff = largest_difference(table, results[reference][5]) if reference else ""
        print(
            f"| {tool} | {compute_s:.2f} | {wall_s:.2f} | {cpu_s:.2f} | {ratio} "
            f"| {rss_mib:.0f} | {diff} |"
        )


if __name__ == "__main__":
    main()
