"""Crop-health pixel classification throughput (megapixels per second) on this machine.

Generates a seeded simulator world (500 x 400 m at 0.1 m: a 20 Mpx orthophoto), trains the
health classifier as the flows do (both epochs of a 300 x 240 m world of seed 101), then
classifies the held-out world's whole epoch-2 orthophoto (every pixel; as the flows do,
inside the agricultural parcels only; and predicting every 2nd working cell instead of every
3rd). It reports input megapixels per second of wall time, the best of ``--repeat`` runs, and
the kappa of the result against the truth (so that speed is never bought with accuracy).

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

from flows import AGRICULTURAL_USES, TRAINING_SEEDS
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
        training = generate(
            Path(tmp) / "training", seed=TRAINING_SEEDS[0], width_m=300, height_m=240
        )
        training_labels = gpd.read_file(training.paths.truth, layer="health")
        model = train_health_on(
            [(training.paths.ortho(epoch), training_labels) for epoch, _ in training.epochs]
        )
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
            "agricultural parcels, every 2nd cell (0.8 m)": lambda: classify_health(
                model, image, out, mask_polygons=farms, stride_px=2
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
