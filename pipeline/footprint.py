"""Where a nadir frame lies on the ground: the frame-to-ground affine and its footprint.

Pinhole camera, principal point at the image centre, no distortion, flat ground; DJI's
pose convention: yaw clockwise from true north, the image top points to the yaw and the
image's +u axis to yaw + 90 deg. Pitch and roll are taken as exactly nadir. Over relief
the same affine holds after a scaling about the nadir point (:mod:`pipeline.terrain_dem`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

from affine import Affine
from pyproj import Transformer
from shapely import STRtree
from shapely.geometry import Polygon

from core.types import ImageRecord

_NORTH_STEP_DEG = 1e-5
DECODE_FACTORS = (1, 2, 4, 8)
"""The reductions at which a JPEG decodes fast (OpenCV's ``IMREAD_REDUCED_*``)."""


@cache
def lonlat_to_crs(crs: str) -> Transformer:
    """The (cached) transformer from lon/lat (EPSG:4326) to ``crs``, x/y axis order."""
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def true_north_bearing_deg(lon_deg: float, lat_deg: float, crs: str) -> float:
    """Grid bearing of true north at a point (clockwise from grid north, degrees).

    The opposite of the meridian convergence; about -0.4 deg at Berkane in UTM 30N.
    """
    transformer = lonlat_to_crs(crs)
    x0, y0 = transformer.transform(lon_deg, lat_deg)
    x1, y1 = transformer.transform(lon_deg, lat_deg + _NORTH_STEP_DEG)
    return math.degrees(math.atan2(x1 - x0, y1 - y0))


def ground_sampling_m(record: ImageRecord) -> float:
    """Ground size of one frame pixel at nadir (m): height above ground / focal in pixels."""
    camera = record.camera
    width_px = record.width_px or camera.image_width_px
    focal_px = camera.focal_length_px * width_px / camera.image_width_px
    return record.altitude_m / focal_px


def decode_factor(record: ImageRecord, target_m: float) -> int:
    """The largest of :data:`DECODE_FACTORS` at which the frame's decoded pixels are still
    no coarser on the ground than ``target_m`` (1 if the frame is already that coarse)."""
    ratio = target_m / ground_sampling_m(record)
    return max(f for f in DECODE_FACTORS if f <= max(ratio, 1.0))


def nadir_point(record: ImageRecord, crs: str) -> tuple[float, float]:
    """The ground point under the camera (the image centre's), in ``crs``."""
    return lonlat_to_crs(crs).transform(record.lon_deg, record.lat_deg)


def frame_size_px(record: ImageRecord) -> tuple[int, int]:
    """The frame's (width, height) in pixels, from the photo or else its camera."""
    return (
        record.width_px or record.camera.image_width_px,
        record.height_px or record.camera.image_height_px,
    )


def frame_to_ground(record: ImageRecord, crs: str) -> Affine:
    """Affine from frame pixel coordinates (col, row; corner-based) to ground ``crs`` coords."""
    width_px, height_px = frame_size_px(record)
    x_m, y_m = nadir_point(record, crs)
    bearing_deg = record.yaw_deg + true_north_bearing_deg(record.lon_deg, record.lat_deg, crs)
    gsd_m = ground_sampling_m(record)
    return (
        Affine.translation(x_m, y_m)
        @ Affine.rotation(-bearing_deg)
        @ Affine.scale(gsd_m, -gsd_m)
        @ Affine.translation(-width_px / 2.0, -height_px / 2.0)
    )


def footprint(record: ImageRecord, crs: str) -> Polygon:
    """The frame's four ground corners in ``crs`` (top-left, top-right, bottom-right, ...)."""
    width_px, height_px = frame_size_px(record)
    transform = frame_to_ground(record, crs)
    corners = [(0, 0), (width_px, 0), (width_px, height_px), (0, height_px)]
    return Polygon([transform @ corner for corner in corners])


def overlapping_pairs(
    footprints: Sequence[Polygon], min_overlap: float = 0.0
) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of footprints that intersect and share at least
    ``min_overlap`` of footprint ``i``'s area; ordered by ``i``."""
    tree = STRtree(footprints)
    pairs = []
    for i, shape in enumerate(footprints):
        for j in tree.query(shape, predicate="intersects"):
            if j > i and (
                min_overlap <= 0.0
                or shape.intersection(footprints[j]).area >= min_overlap * shape.area
            ):
                pairs.append((i, int(j)))
    return pairs
