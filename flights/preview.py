"""A mission as GIS layers: flight lines, photo centres and image footprints, for QGIS.

The photos are placed the way ArduPilot's ``DO_SET_CAM_TRIGG_DIST`` takes them: one at the
start of every run of photo legs, then one every trigger distance flown along the run.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from core.io import write_geopackage
from core.types import Mission
from flights.aoi import LONLAT


def _path_xy(mission: Mission, crs: str) -> np.ndarray:
    lonlat = [(w.lon_deg, w.lat_deg) for w in mission.waypoints]
    xy = gpd.GeoSeries(shapely.points(lonlat), crs=LONLAT).to_crs(crs)
    return shapely.get_coordinates(xy.values)


def _photo_runs(mission: Mission) -> list[tuple[int, int]]:
    """(first, last) waypoint indices of each run of consecutive photo legs."""
    runs: list[tuple[int, int]] = []
    flags = [w.photos for w in mission.waypoints[:-1]]
    start = None
    for k, on in enumerate([*flags, False]):
        if on and start is None:
            start = k
        elif not on and start is not None:
            runs.append((start, k))
            start = None
    return runs


def photo_positions(mission: Mission, crs: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo centres (x, y in ``crs``), their altitude above home and heading (deg from +y)."""
    xy = _path_xy(mission, crs)
    altitudes = np.array([w.altitude_m for w in mission.waypoints])
    step_m = mission.trigger_distance_m
    centres, heights, headings = [], [], []
    for first, last in _photo_runs(mission):
        travelled_m = 0.0
        next_m = 0.0
        for k in range(first, last):
            (x0, y0), (x1, y1) = xy[k], xy[k + 1]
            leg_m = math.hypot(x1 - x0, y1 - y0)
            while next_m <= travelled_m + leg_m + 1e-9 and leg_m > 0:
                t = (next_m - travelled_m) / leg_m
                centres.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
                heights.append(altitudes[k] + t * (altitudes[k + 1] - altitudes[k]))
                headings.append(math.degrees(math.atan2(x1 - x0, y1 - y0)))
                next_m += step_m
            travelled_m += leg_m
    return np.array(centres).reshape(-1, 2), np.array(heights), np.array(headings)


def mission_layers(mission: Mission, crs: str) -> dict[str, gpd.GeoDataFrame]:
    """Layers ``flight_lines``, ``photo_centres`` and ``footprints`` in the projected ``crs``.

    Footprints are nadir rectangles (image height along track) at each photo's height above
    home, i.e. above ground on flat terrain.
    """
    xy = _path_xy(mission, crs)
    legs = [
        {"leg": k, "photos": a.photos, "altitude_m": a.altitude_m, "length_m": 0.0}
        for k, (a, _) in enumerate(pairwise(mission.waypoints))
    ]
    lines = shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))
    for leg, line in zip(legs, lines, strict=True):
        leg["length_m"] = round(float(line.length), 2)
    flight_lines = gpd.GeoDataFrame(legs, geometry=lines, crs=crs)

    centres, heights, headings = photo_positions(mission, crs)
    camera = mission.spec.camera
    shapes = []
    for (x, y), height_m, heading_deg in zip(centres, heights, headings, strict=True):
        across_m, along_m = camera.footprint_m(max(float(height_m), 0.0))
        rect = shapely.box(-across_m / 2, -along_m / 2, across_m / 2, along_m / 2)
        rotated = shapely.affinity.rotate(rect, -heading_deg, origin=(0, 0))
        shapes.append(shapely.affinity.translate(rotated, x, y))
    attributes = {
        "photo": np.arange(len(centres)),
        "altitude_m": np.round(heights, 2),
        "heading_deg": np.round(headings, 1),
    }
    photo_centres = gpd.GeoDataFrame(
        attributes, geometry=shapely.points(centres) if len(centres) else [], crs=crs
    )
    footprints = gpd.GeoDataFrame(attributes, geometry=shapes, crs=crs)
    return {"flight_lines": flight_lines, "photo_centres": photo_centres, "footprints": footprints}


def write_preview(mission: Mission, path: str | Path, crs: str) -> Path:
    """A GeoPackage (version 1.3) with the mission's lines, photo centres and footprints."""
    return write_geopackage(path, mission_layers(mission, crs))
