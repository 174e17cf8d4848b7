"""Crop-health pixel classification throughput (megapixels per second) on this machine.

Generates a seeded simulator world (500 x 400 m at 0.1 m: a 20 Mpx orthophoto), trains the
health classifier on its epoch-1 labels as the flows do, then classifies the whole epoch-2
orthophoto (every pixel, and as the flows do: inside the agricultural parcels only) and
reports input megapixels per second of wall time, the best of ``--repeat`` runs, and the
kappa of the result against epoch 2's truth (so that speed is never bought with accuracy).

    .venv/bin/python benchmarks/health_classification.py [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import rasterio

from flows import AGRICULTURAL_USES
from models.crop_health import HEALTH_CLASSES, classify_health, train_health_on
from models.evaluation import class_scores
from sim.world import generate


def best_seconds(repeat: int, run) -> float:
    """The fastest of ``repeat`` timed calls of ``run``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = generate(Path(tmp) / "world", seed=args.seed)
        labels = gpd.read_file(world.paths.truth, layer="health")
        model = train_health_on([(world.paths.ortho("epoch1"), labels)])
        image = world.paths.ortho("epoch2")
        parcels = gpd.read_file(world.paths.parcels)
        farms = parcels[parcels["land_use"].isin(AGRICULTURAL_USES)]
        with rasterio.open(image) as src:
            megapixels = src.width * src.height / 1e6
        out = Path(tmp) / "classes.tif"
        cases = {
            "every pixel": lambda: classify_health(model, image, out),
            "agricultural parcels (flows)": lambda: classify_health(
                model, image, out, mask_polygons=farms
            ),
            "agricultural parcels, every 3rd cell (1.2 m)": lambda: classify_health(
                model, image, out, mask_polygons=farms, stride_px=3
            ),
        }
        print(f"{megapixels:.1f} Mpx orthophoto, {os.cpu_count()} cores, best of {args.repeat}\n")
        print("| classify | seconds | Mpx/s | kappa vs truth |\n|---|---:|---:|---:|")
        for name, run in cases.items():
            seconds = best_seconds(args.repeat, run)
            kappa = class_scores(out, labels, "health", HEALTH_CLASSES)["healthy"].kappa
            print(f"| {name} | {seconds:.1f} | {megapixels / seconds:.1f} | {kappa:.2f} |")


if __name__ == "__main__":
    main()
