"""Flight time of our best grid angle against QGroundControl's default 0°, on ten parcels.

The parcels (``data/parcels.geojson``) are hand-drawn shapes typical of the Triffa plain,
not surveyed cadastre. Each is planned twice with the same planner and time model: lines
at 0° (QGC Survey's default transect angle) and at ``best_grid_angle``. The drone takes off
at the parcel's first vertex. Prints a markdown table.

    .venv/bin/python benchmarks/grid_angle.py [--camera mavic3m] [--gsd 5] [--overlap 80/70]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import geopandas as gpd

from core.types import SurveySpec, Waypoint
from flights.aoi import check_aoi
from flights.camera import get_camera
from flights.grid_angle import best_grid_angle

PARCELS = Path(__file__).with_name("data") / "parcels.geojson"
UTM = "EPSG:32630"


def _spec(args: argparse.Namespace) -> SurveySpec:
    front, side = (float(v) / 100.0 for v in args.overlap.split("/"))
    return SurveySpec(
        camera=get_camera(args.camera),
        gsd_cm=args.gsd,
        front_overlap=front,
        side_overlap=side,
        speed_m_s=args.speed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", default="mavic3m")
    parser.add_argument("--gsd", type=float, default=5.0, help="cm/px")
    parser.add_argument("--overlap", default="80/70", help="front/side in %%")
    parser.add_argument("--speed", type=float, default=10.0, help="m/s")
    args = parser.parse_args()
    spec = _spec(args)
    parcels = gpd.read_file(PARCELS)

    print(
        f"{spec.camera.name}, {spec.gsd_cm} cm/px ({spec.altitude_m:.0f} m), overlap "
        f"{args.overlap} %, {spec.speed_m_s} m/s, line spacing {spec.line_spacing_m:.1f} m\n"
    )
    print(
        "| parcel | ha | time 0° (min) | dist 0° (km) | photos 0° | best angle | "
        "time best (min) | dist best (km) | photos best | time 0° / best | search (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals = {"zero": 0.0, "best": 0.0, "search": 0.0}
    for name, geometry in zip(parcels["name"], parcels.geometry, strict=True):
        aoi = check_aoi(geometry)
        lon, lat = aoi.exterior.coords[0]
        home = Waypoint(lat_deg=lat, lon_deg=lon, altitude_m=0.0)
        start = time.perf_counter()
        choice = best_grid_angle(aoi, spec, home, crs=UTM)
        search_s = time.perf_counter() - start
        zero, best = choice.at_zero, choice.best
        area_ha = gpd.GeoSeries([aoi], crs="EPSG:4326").to_crs(UTM).area.iloc[0] / 1e4
        totals["zero"] += zero.time_s
        totals["best"] += best.time_s
        totals["search"] += search_s
        print(
            f"| {name} | {area_ha:.1f} | {zero.time_s / 60:.1f} | {zero.distance_m / 1e3:.2f} | "
            f"{zero.photo_count} | {best.angle_deg:.1f}° | {best.time_s / 60:.1f} | "
            f"{best.distance_m / 1e3:.2f} | {best.photo_count} | {choice.time_ratio:.2f} | "
            f"{search_s * 1e3:.0f} |"
        )
    print(
        f"| **all ten** | | {totals['zero'] / 60:.1f} | | | | {totals['best'] / 60:.1f} | | | "
        f"{totals['zero'] / totals['best']:.2f} | {totals['search'] * 1e3:.0f} |"
    )


if __name__ == "__main__":
    main()
