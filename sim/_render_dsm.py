"""The scene's digital surface model: terrain plus what stands on it, as a drone DSM shows it.

Heights in metres above the datum, on a grid of ``DSM_GSD_M`` over the orthophoto's extent:
a gently rolling plain sloping down to the north (only the DSM has relief: the orthophotos are
rendered on flat ground), flat roofs at each building's ``height_m`` (and, in epoch 2, at
each extension's), slabs and a works site's
walls, greenhouses, and dome-shaped tree crowns. Vines and cars are left out (under 2 m).
Like a photogrammetric DSM, edges are blurred (~0.5 m) and heights carry spatially
correlated noise (``NOISE_M``). Drawn from its own seeded generator: the orthophotos do not
change.
"""

from __future__ import annotations

import cv2
import numpy as np
from affine import Affine
from rasterio import features as rio_features
from shapely.geometry import Polygon

from sim._render_layout import Layout

DSM_GSD_M = 0.25
NOISE_M = 0.15
EDGE_BLUR_M = 0.25  # Gaussian sigma: heights ramp over ~0.5 m at an edge
SLAB_M = 0.35
WALL_M = 2.6
GREENHOUSE_M = 3.0


def terrain_m(x: np.ndarray, y: np.ndarray, ground_m: float, height_m: float) -> np.ndarray:
    """Ground height at local (x, y): ``ground_m`` at the north edge, rising 1 % to the south,
    with ~1 m swells."""
    swell = 0.6 * np.sin(2 * np.pi * x / 230.0) * np.cos(2 * np.pi * y / 170.0)
    return ground_m + 0.01 * (height_m - y) + swell


def crown_top_m(radius_m: float) -> float:
    """A tree's height from its crown radius (orchard trees ~3-3.5 m, street trees 3.4-5.3 m)."""
    return 0.5 + 1.6 * radius_m


def render_dsm(
    layout: Layout,
    crowns: list[tuple[float, float, float]],
    epoch2: bool,
    ground_m: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The epoch's DSM (rows, cols) float32, north up, ``DSM_GSD_M`` pixels."""
    rows, cols = round(layout.height_m / DSM_GSD_M), round(layout.width_m / DSM_GSD_M)
    transform = Affine(DSM_GSD_M, 0.0, 0.0, 0.0, -DSM_GSD_M, layout.height_m)
    raised = np.zeros((rows, cols), np.float32)
    shapes: list[tuple[Polygon, float]] = [(g, GREENHOUSE_M) for g in layout.greenhouses]
    for b in layout.buildings:
        if b.in_epoch1 or epoch2:
            shapes.append((b.footprint, SLAB_M if b.roof == "slab" else b.height_m))
    if epoch2:
        shapes += [(e.annex.footprint, e.annex.height_m) for e in layout.extensions]
    if epoch2:
        for site in layout.sites:
            shapes.append((site.slab, SLAB_M))
            if site.walls is not None:
                shapes.append((site.walls.boundary.buffer(0.1, cap_style="flat"), WALL_M))
    for geom, height in shapes:  # in order: walls over their slab
        mask = rio_features.geometry_mask([geom], (rows, cols), transform, invert=True)
        raised[mask] = height
    _draw_crowns(raised, crowns, layout.height_m)
    raised = cv2.GaussianBlur(raised, (0, 0), EDGE_BLUR_M / DSM_GSD_M)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x, y = (x + 0.5) * DSM_GSD_M, layout.height_m - (y + 0.5) * DSM_GSD_M
    noise = cv2.GaussianBlur(rng.standard_normal((rows, cols), dtype=np.float32), (0, 0), 1.0)
    noise *= NOISE_M / max(float(noise.std()), 1e-6)
    ground = terrain_m(x, y, ground_m, layout.height_m)
    return (ground + raised + noise).astype(np.float32)


def _draw_crowns(
    raised: np.ndarray, crowns: list[tuple[float, float, float]], height_m: float
) -> None:
    """Dome-shaped crowns, three rings rising to the top, kept where higher than what is there."""
    layer = np.zeros_like(raised)
    for x, y, r in crowns:
        top = crown_top_m(r)
        centre = (round(x / DSM_GSD_M * 16), round((height_m - y) / DSM_GSD_M * 16))
        for share, level in ((1.0, 0.7), (0.7, 0.9), (0.4, 1.0)):
            radius = round(share * r / DSM_GSD_M * 16)
            cv2.circle(layer, centre, radius, float(top * level), -1, cv2.LINE_8, shift=4)
    np.maximum(raised, layer, out=raised)
