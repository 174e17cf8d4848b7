"""The building detector predicting every pixel against coarse to fine, on the same image in one
process call: CPU and wall time, peak RSS, pixels predicted, and how far the outputs agree.

    .venv/bin/python benchmarks/buildings_predict.py [--size-m 250] [--seed 7]
        [--epoch epoch2] [--stride 4] [--world DIR] [--json out.json]

A simulator world (seeded, generated apart and not timed; ``--world`` reuses one) gives the
orthophoto. ``detect_buildings`` runs with ``coarse_stride_px=1`` (every pixel) and with
``--stride``: CPU seconds are ``time.process_time()`` (all threads), peak RSS is Linux's
``VmHWM``, reset before each run. Agreement: a second pass of ``predict_blocks`` per mode,
untimed, gives the hysteresis masks (``detect_buildings``' thresholds) on each block's inner
window, compared pixel by pixel (IoU), and the share of pixels the classifier saw; the two
runs' polygons are compared by area (IoU of their unions) and count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.construction import detect_buildings, hysteresis  # noqa: E402
from models.training import (  # noqa: E402
    DEFAULT_BUILDINGS_MODEL,
    PixelModel,
    load_model,
    predict_blocks,
)
from models.windows import open_rgb  # noqa: E402
from sim.world import generate, load_world  # noqa: E402

THRESHOLDS = (0.25, 0.5)  # detect_buildings' low_threshold and threshold
CLOSING_PX = 11  # detect_buildings' closing disk at 10 cm, part of its block margin


@dataclass
class CountingEstimator:
    """An estimator that counts the rows it is asked to predict."""

    inner: object
    rows: int = 0

    @property
    def classes_(self) -> np.ndarray:
        return self.inner.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        return self.inner.predict_proba(x)


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def timed_detection(model: PixelModel, image: Path, stride: int) -> tuple[dict, object]:
    """``detect_buildings`` at ``stride``: its cost and its polygons."""
    peak_rss_reset()
    cpu, wall = time.process_time(), time.perf_counter()
    found = detect_buildings(model, image, coarse_stride_px=stride)
    cost = {
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "peak_rss_mib": round(peak_rss_mib()),
        "buildings": len(found),
        "area_m2": round(float(found.area_m2.sum()), 1),
    }
    return cost, found


def mask_agreement(model: PixelModel, image: Path, stride: int) -> dict:
    """Hysteresis masks of a full and a coarse-to-fine prediction, block by block."""
    counting = [CountingEstimator(model.estimator) for _ in range(2)]
    full_model, coarse_model = (replace(model, estimator=c) for c in counting)
    options = {"margin_px": model.features.margin_px + CLOSING_PX, "refine_near": THRESHOLDS}
    both = union = differ = pixels = 0
    with open_rgb(image) as src:
        for (block, full, valid), (_, coarse, _) in zip(
            predict_blocks(full_model, src, stride_px=1, **options),
            predict_blocks(coarse_model, src, stride_px=stride, **options),
            strict=True,
        ):
            a = hysteresis(full[0], valid, THRESHOLDS[1], THRESHOLDS[0])[block.inner] > 0
            b = hysteresis(coarse[0], valid, THRESHOLDS[1], THRESHOLDS[0])[block.inner] > 0
            both += int((a & b).sum())
            union += int((a | b).sum())
            differ += int((a ^ b).sum())
            pixels += a.size
    return {
        "mask_iou": round(both / union, 5) if union else 1.0,
        "mask_pixels_differing": differ,
        "mask_pixels": pixels,
        "predicted_share_full": round(counting[0].rows / pixels, 3),
        "predicted_share_coarse_to_fine": round(counting[1].rows / pixels, 3),
    }


def outline_agreement(full, coarse) -> dict:
    a, b = shapely.union_all(full.geometry.values), shapely.union_all(coarse.geometry.values)
    union = shapely.union(a, b).area
    return {"polygon_area_iou": round(shapely.intersection(a, b).area / union, 4) if union else 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-m", type=float, default=250.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epoch", default="epoch2")
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--world", type=Path, help="reuse (or generate into) this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    folder = args.world or Path(tempfile.mkdtemp(prefix="raqib-buildings-"))
    if (folder / "world.json").exists():
        world = load_world(folder)
    else:
        world = generate(folder, seed=args.seed, width_m=args.size_m, height_m=args.size_m)
    image = world.paths.ortho(args.epoch)
    model = load_model(DEFAULT_BUILDINGS_MODEL)
    with open_rgb(image) as src:
        megapixels = src.width * src.height / 1e6
    result: dict = {"image": str(image), "megapixels": round(megapixels, 2)}
    result["load_average_start"] = [round(x, 1) for x in os.getloadavg()]
    full_cost, full = timed_detection(model, image, 1)
    coarse_cost, coarse = timed_detection(model, image, args.stride)
    result["load_average_end"] = [round(x, 1) for x in os.getloadavg()]
    for cost in (full_cost, coarse_cost):
        cost["cpu_s_per_mpx"] = round(cost["cpu_s"] / megapixels, 2)
    result["full"], result[f"coarse_to_fine_{args.stride}"] = full_cost, coarse_cost
    result["cpu_ratio"] = round(full_cost["cpu_s"] / coarse_cost["cpu_s"], 2)
    result["wall_ratio"] = round(full_cost["wall_s"] / coarse_cost["wall_s"], 2)
    result |= outline_agreement(full, coarse)
    result |= mask_agreement(model, image, args.stride)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
