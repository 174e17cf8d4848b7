"""Orchard tree detection scored on a held-out simulated world (``models.trees``).

Generates a world with a seed no parameter was tuned on (21; tuning used 3, 5 and 7), finds
the crowns in both epochs' orthophotos inside the orchard parcels, and scores them against the
world's ``trees`` truth layer: living trees matched one to one within 1 m (precision, recall,
F1), trees per parcel against the living trees planted there, and the planted positions left
empty (dead or removed trees) against :func:`models.trees.missing_trees`. Then one run on the
real WebODM orthophoto (no truth: count and time only). Prints markdown.

    .venv/bin/python benchmarks/trees_accuracy.py [--seed 21] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import rasterio

from models.trees import crown_centres, detect_trees, missing_trees, point_scores
from sim.world import World, generate

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[2] / "shared" / "data"
ORTHOPHOTO = "orthophotos/webodm_orthophoto.tif"
MATCH_M = 1.0


def score_epoch(world: World, epoch: str) -> dict[str, object]:
    """One epoch's detection, count and missing-tree scores against the world's truth."""
    parcels = gpd.read_file(world.paths.parcels)
    orchards = parcels[parcels.land_use == "orchard"]
    truth = gpd.read_file(world.paths.truth, layer="trees").query("planting == 'orchard'")
    alive, removed = truth[truth.status == "alive"], truth[truth.status == "removed"]
    started = time.perf_counter()
    crowns = detect_trees(world.paths.ortho(epoch), parcels=orchards)
    seconds = time.perf_counter() - started
    found = point_scores(crown_centres(crowns), alive, radius_m=MATCH_M)
    counted = crowns.groupby("parcel_id").size()
    planted = alive.groupby("parcel_id").size()
    count_error = (counted.reindex(planted.index, fill_value=0) / planted - 1) * 100
    gaps = pd.concat(
        [missing_trees(crowns, parcel) for parcel in orchards.geometry], ignore_index=True
    )
    missing = point_scores(gaps, removed, radius_m=MATCH_M, name="missing")
    return {
        "epoch": epoch,
        "living trees": len(alive),
        "precision": found.precision,
        "recall": found.recall,
        "F1": found.f1,
        "count error per parcel (%)": ", ".join(f"{e:+.1f}" for e in count_error),
        "planted missing": len(removed),
        "missing recall": missing.recall,
        "missing precision": missing.precision,
        "orchard area (ha)": orchards.area.sum() / 10_000,
        "seconds": seconds,
    }


def real_run(data: Path) -> str:
    """Crowns found on the real orthophoto: a line for the report (no truth to score)."""
    image = data / ORTHOPHOTO
    started = time.perf_counter()
    crowns = detect_trees(image)
    seconds = time.perf_counter() - started
    with rasterio.open(image) as src:
        gsd_m = src.res[0]
    return (
        f"{ORTHOPHOTO} ({gsd_m:.2f} m): {len(crowns)} crowns, median diameter "
        f"{crowns.crown_diameter_m.median():.1f} m, in {seconds:.2f} s"
    )


def markdown(rows: list[dict[str, object]]) -> str:
    """Rows of equal keys as a markdown table, floats to three decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--width-m", type=float, default=500)
    parser.add_argument("--height-m", type=float, default=400)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raqib-trees-") as tmp:
        world = generate(Path(tmp), seed=args.seed, width_m=args.width_m, height_m=args.height_m)
        rows = [score_epoch(world, epoch) for epoch, _ in world.epochs]
    print(f"World seed {args.seed}, {args.width_m:g} x {args.height_m:g} m at {world.gsd_m} m\n")
    print(markdown(rows))
    if (args.data / ORTHOPHOTO).exists():
        print("\n" + real_run(args.data))


if __name__ == "__main__":
    main()
