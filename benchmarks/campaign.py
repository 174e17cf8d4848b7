"""Plan a campaign over every agricultural parcel of a synthetic 49 km² commune, timed.

A seeded 7 km x 7 km commune near Berkane (34.92 N, 2.30 W): blocks between tracks, split
into parcels, about three in four agricultural. Planned twice, at the spec's grid angle (0°)
and at each area's fastest angle; every sortie is fenced and checked against the default
no-fly zones. Prints a markdown table: the plans (missions, days, photos, data) and the wall
times, with the share spent in each stage (cProfile).

    .venv/bin/python benchmarks/campaign.py [--seed 1]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from dataclasses import replace
from datetime import date
from datetime import time as clock

import geopandas as gpd
import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon

from core.types import SurveySpec
from flights.aoi_layer import load_aois
from flights.camera import get_camera
from flights.campaign import Campaign, CampaignOptions, plan_campaign
from flights.safety import load_no_fly_zones

UTM = "EPSG:32630"
SIDE_M = 7000.0
TRACK_M = 8.0
AGRICULTURE = ("orchard", "cereal", "vegetables", "vineyard")
OTHER = ("residential", "industrial", "fallow")


def _edges(rng: np.random.Generator, lo_m: float, hi_m: float) -> np.ndarray:
    widths = rng.uniform(lo_m, hi_m, size=int(SIDE_M / lo_m) + 1)
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    return edges[edges < SIDE_M]


def commune(seed: int) -> gpd.GeoDataFrame:
    """Parcels of a synthetic commune: jittered quadrilaterals between tracks."""
    rng = np.random.default_rng(seed)
    x0, y0 = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(-2.33, 34.89)
    xs, ys = _edges(rng, 250.0, 550.0), _edges(rng, 250.0, 550.0)
    rows = []
    for west, east in zip(xs[:-1], xs[1:], strict=True):
        for south, north in zip(ys[:-1], ys[1:], strict=True):
            cuts = np.sort(rng.uniform(south, north, size=rng.integers(0, 3)))
            bands = np.concatenate([[south], cuts, [north]])
            for lo, hi in zip(bands[:-1], bands[1:], strict=True):
                if hi - lo < 60.0:
                    continue
                corners = np.array([[west, lo], [east, lo], [east, hi], [west, hi]])
                corners += [
                    [TRACK_M, TRACK_M],
                    [-TRACK_M, TRACK_M],
                    [-TRACK_M, -TRACK_M],
                    [TRACK_M, -TRACK_M],
                ]
                corners += rng.uniform(-6.0, 6.0, size=(4, 2))
                agricultural = rng.random() < 0.75
                use = rng.choice(AGRICULTURE if agricultural else OTHER)
                rows.append((Polygon(corners + [x0, y0]), str(use)))
    return gpd.GeoDataFrame(
        {
            "id": [f"P{i:04d}" for i in range(len(rows))],
            "landuse": [u for _, u in rows],
            "commune": "Synthetic commune",
        },
        geometry=[g for g, _ in rows],
        crs=UTM,
    )


def _stage_s(stats: pstats.Stats, function: str) -> float:
    return sum(row[3] for key, row in stats.stats.items() if key[2] == function)  # type: ignore[attr-defined]


STAGES = (
    ("plan_survey (grids)", "plan_survey"),
    ("best_grid_angle_m (auto angle)", "best_grid_angle_m"),
    ("split_mission (sorties)", "split_mission"),
    ("with_geofence + check_mission (safety)", ("with_geofence", "check_mission")),
    ("order_points (2-opt)", "order_points"),
    ("_pack_days (days)", "_pack_days"),
)


def _run(aois: list, spec: SurveySpec, options: CampaignOptions) -> tuple[Campaign, float, dict]:
    """The campaign, its wall time, and the share of each stage (from a second, profiled run)."""
    no_fly = load_no_fly_zones()
    started = time.perf_counter()
    campaign = plan_campaign(aois, spec, date(2025, 4, 14), options=options, no_fly=no_fly)
    wall_s = time.perf_counter() - started
    profiler = cProfile.Profile()
    profiler.enable()
    plan_campaign(aois, spec, date(2025, 4, 14), options=options, no_fly=no_fly)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total_s = _stage_s(stats, "plan_campaign")
    shares = {}
    for label, functions in STAGES:
        names = (functions,) if isinstance(functions, str) else functions
        shares[label] = sum(_stage_s(stats, f) for f in names) / total_s
    return campaign, wall_s, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    layer = commune(args.seed)
    spec = SurveySpec(camera=get_camera("dji_mavic_3e"), gsd_cm=3.0)
    fixed = CampaignOptions(earliest=clock(9, 0), latest=clock(16, 0), max_mission_area_ha=20.0)
    started = time.perf_counter()
    aois = load_aois(layer, category_column="landuse", categories=AGRICULTURE)
    load_s = time.perf_counter() - started
    runs = [_run(aois, spec, options) for options in (fixed, replace(fixed, auto_angle=True))]

    area_ha = sum(a.polygon_m.area for a in aois) / 1e4
    print(
        f"Seed {args.seed}, {spec.camera.name}, {spec.gsd_cm} cm GSD, "
        f"{spec.front_overlap:.0%}/{spec.side_overlap:.0%} overlap, {spec.speed_m_s} m/s, "
        "09:00-16:00 window, max 20 ha per mission, every sortie fenced and safety-checked\n"
    )
    planned = len({a.aoi_id for a in aois})
    print(
        f"{len(layer)} parcels in the commune layer, {planned} agricultural ones planned "
        f"({area_ha:.0f} ha), loaded in {load_s:.2f} s.\n"
    )
    print("| measure | grid angle 0° | auto angle per area |\n|---|---:|---:|")
    rows = {
        "launch sites": lambda c: len(c.sites),
        "missions (battery sorties)": lambda c: len(c.sorties),
        "areas refused (unsafe)": lambda c: len(c.refused),
        "days": lambda c: len(c.days),
        "flight time": lambda c: f"{c.flight_time_s / 3600:.1f} h",
        "road between sites": lambda c: f"{c.road_m / 1000:.1f} km",
        "photos": lambda c: c.photo_count,
        "data volume": lambda c: f"{c.data_mb / 1000:.0f} GB",
    }
    for label, value in rows.items():
        print(f"| {label} | {value(runs[0][0])} | {value(runs[1][0])} |")
    print(f"| **wall time, plan_campaign** | **{runs[0][1]:.2f} s** | **{runs[1][1]:.2f} s** |")
    for label, _ in STAGES:
        print(f"| of which {label} | {runs[0][2][label]:.0%} | {runs[1][2][label]:.0%} |")


if __name__ == "__main__":
    main()
