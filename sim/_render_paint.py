"""A float RGB canvas in local metres, with OpenCV drawing, a shade map and a texture map.

Geometries are in local metres (x east, y north from the south-west corner); pixel centres
sit at ((col + 0.5) * gsd, height - (row + 0.5) * gsd). Drawing uses OpenCV's sub-pixel
``shift`` so edges land where the truth polygons say. Whole-canvas passes run in row bands
(``BAND_ROWS``) so they allocate no full-size temporaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

SHIFT = 4
SCALE = 1 << SHIFT
BAND_ROWS = 512  # a whole number of the orthophoto's 512-row tiles
Colour = tuple[float, float, float]


def row_bands(height_px: int) -> Iterator[slice]:
    """Consecutive ``BAND_ROWS``-row slices covering ``height_px`` rows."""
    for start in range(0, height_px, BAND_ROWS):
        yield slice(start, min(start + BAND_ROWS, height_px))


def polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for part in getattr(geom, "geoms", []) for g in polygons(part)]


class Canvas:
    """RGB (0-255 floats), per-pixel shade factor and texture amplitude of one epoch.

    The shade map lives until :meth:`apply_shade` (then it is released: ~4 bytes a pixel)."""

    def __init__(self, width_m: float, height_m: float, gsd_m: float) -> None:
        self.gsd_m = gsd_m
        self.height_m = height_m
        self.width_px = round(width_m / gsd_m)
        self.height_px = round(height_m / gsd_m)
        self.rgb = np.zeros((self.height_px, self.width_px, 3), np.float32)
        self.shade: np.ndarray | None = np.ones((self.height_px, self.width_px), np.float32)
        self.rough = np.full((self.height_px, self.width_px), 0.08, np.float32)

    # -- coordinates -------------------------------------------------------------------------
    def to_px(self, xy: np.ndarray) -> np.ndarray:
        """Local metres (N, 2) to fixed-point pixel coordinates for OpenCV."""
        xy = np.asarray(xy, dtype=np.float64)
        col = xy[:, 0] / self.gsd_m - 0.5
        row = (self.height_m - xy[:, 1]) / self.gsd_m - 0.5
        return np.round(np.stack([col, row], axis=1) * SCALE).astype(np.int32)

    def _rings(self, geom: BaseGeometry) -> list[np.ndarray]:
        rings = []
        for poly in polygons(geom):
            rings.append(self.to_px(np.asarray(poly.exterior.coords)[:, :2]))
            rings += [self.to_px(np.asarray(r.coords)[:, :2]) for r in poly.interiors]
        return rings

    def window(self, geom: BaseGeometry, pad_px: int = 1) -> tuple[slice, slice, np.ndarray]:
        """Row/col slices of ``geom``'s bounding box and its boolean mask there."""
        x0, y0, x1, y1 = geom.bounds
        c0 = max(0, int(x0 / self.gsd_m) - pad_px)
        c1 = min(self.width_px, int(np.ceil(x1 / self.gsd_m)) + pad_px)
        r0 = max(0, int((self.height_m - y1) / self.gsd_m) - pad_px)
        r1 = min(self.height_px, int(np.ceil((self.height_m - y0) / self.gsd_m)) + pad_px)
        mask = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), np.uint8)
        rings = [r - np.array([c0 * SCALE, r0 * SCALE], np.int32) for r in self._rings(geom)]
        if rings and mask.size:
            cv2.fillPoly(mask, rings, 1, lineType=cv2.LINE_8, shift=SHIFT)
        return slice(r0, r1), slice(c0, c1), mask.astype(bool)

    def coords(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """Local metre coordinates (x, y) of the pixel centres of a window."""
        x = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5) * self.gsd_m
        y = self.height_m - (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) * self.gsd_m
        return np.meshgrid(x, y)

    # -- drawing -----------------------------------------------------------------------------
    def fill(self, geom: BaseGeometry, colour: Colour, rough: float | None = None) -> None:
        rings = self._rings(geom)
        if not rings:
            return
        cv2.fillPoly(self.rgb, rings, colour, lineType=cv2.LINE_8, shift=SHIFT)
        if rough is not None:
            cv2.fillPoly(self.rough, rings, rough, lineType=cv2.LINE_8, shift=SHIFT)

    def paint(
        self,
        geom: BaseGeometry,
        shader: Callable[[np.ndarray, np.ndarray], np.ndarray],
        rough: float | None = None,
    ) -> None:
        """Fill ``geom`` with colours computed from pixel-centre coordinates: shader(x, y)."""
        rows, cols, mask = self.window(geom, pad_px=0)
        if not mask.any():
            return
        x, y = self.coords(rows, cols)
        colours = shader(x, y)
        view = self.rgb[rows, cols]
        view[mask] = colours[mask]
        if rough is not None:
            self.rough[rows, cols][mask] = rough

    def darken(self, geom: BaseGeometry, factor: float) -> None:
        """Multiply the colours inside ``geom`` (shadows on already painted tops)."""
        rows, cols, mask = self.window(geom, pad_px=0)
        if mask.any():
            self.rgb[rows, cols][mask] *= np.float32(factor) * np.array(
                [0.97, 1.0, 1.1], np.float32
            )

    def cast(self, geom: BaseGeometry, factor: float) -> None:
        """Mark a ground shadow in the shade map (applied once by :meth:`apply_shade`)."""
        rings = self._rings(geom)
        if rings:
            cv2.fillPoly(self._shade_map(), rings, factor, lineType=cv2.LINE_8, shift=SHIFT)

    def cast_disc(
        self, xy: tuple[float, float], axes_m: tuple[float, float], angle_deg: float, factor: float
    ) -> None:
        centre = tuple(int(v) for v in self.to_px(np.array([xy]))[0])
        axes = (
            max(1, int(axes_m[0] / self.gsd_m * SCALE)),
            max(1, int(axes_m[1] / self.gsd_m * SCALE)),
        )
        shade = self._shade_map()
        cv2.ellipse(shade, centre, axes, angle_deg, 0, 360, factor, -1, cv2.LINE_8, SHIFT)

    def disc(self, xy: tuple[float, float], radius_m: float, colour: Colour) -> None:
        centre = tuple(int(v) for v in self.to_px(np.array([xy]))[0])
        cv2.circle(
            self.rgb,
            centre,
            max(1, int(radius_m / self.gsd_m * SCALE)),
            colour,
            -1,
            cv2.LINE_8,
            SHIFT,
        )

    def line(
        self, a: tuple[float, float], b: tuple[float, float], colour: Colour, width_m: float
    ) -> None:
        pa, pb = self.to_px(np.array([a, b]))
        cv2.line(
            self.rgb,
            tuple(int(v) for v in pa),
            tuple(int(v) for v in pb),
            colour,
            max(1, round(width_m / self.gsd_m)),
            cv2.LINE_8,
            SHIFT,
        )

    def _shade_map(self) -> np.ndarray:
        if self.shade is None:
            raise RuntimeError("shadows were already applied: cast them before apply_shade")
        return self.shade

    def apply_shade(self) -> None:
        """Darken the cast shadows (bluer, as skylight lights them) and release the shade map."""
        shade, tint = self._shade_map(), np.array([1.04, 1.0, 0.86], np.float32)
        for rows in row_bands(self.height_px):
            self.rgb[rows] *= shade[rows, :, None] ** tint
        self.shade = None


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> np.ndarray:
    """Unit-variance noise with features about ``cell_px`` pixels wide (coarse grid, resized)."""
    h, w = shape
    gh, gw = max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine /= max(float(fine.std()), 1e-6)
    return fine
