"""Longitude and latitude swapped: a position outside the working CRS's area of use that
swapping puts inside it (Berkane's (2.30°W, 34.93°N) written (34.93, -2.30) lands in
Tanzania, where Raqib has no no-fly zones, DEM or records)."""

from __future__ import annotations

import pyproj

MARGIN_DEG = 1.0
"""How far past its CRS's area of use a position may lie (UTM stays accurate a little
beyond its zone's edges, and an AOI may straddle one)."""

LonLatBounds = tuple[float, float, float, float]
"""west, south, east, north in degrees."""


def _degrees(value: float, positive: str, negative: str) -> str:
    return f"{abs(value):.4f}°{positive if value >= 0 else negative}"


def where(lon: float, lat: float) -> str:
    """A position as people read it: ``(2.2975°W, 34.9290°N)``."""
    return f"({_degrees(lon, 'E', 'W')}, {_degrees(lat, 'N', 'S')})"


def _inside(bounds: LonLatBounds, area: LonLatBounds) -> bool:
    west, south, east, north = area
    minx, miny, maxx, maxy = bounds
    m = MARGIN_DEG
    return west - m <= minx and maxx <= east + m and south - m <= miny and maxy <= north + m


def swapped_lonlat(bounds: LonLatBounds, crs: str, what: str) -> str | None:
    """The problem of ``what`` at ``bounds`` (lon/lat) when it lies outside the area of use of
    the working ``crs`` (give or take :data:`MARGIN_DEG`) but would lie inside with longitude
    and latitude swapped; None otherwise (a survey elsewhere is not refused for that)."""
    area = pyproj.CRS.from_user_input(crs).area_of_use
    minx, miny, maxx, maxy = bounds
    if (
        area is None
        or _inside(bounds, area.bounds)
        or not _inside((miny, minx, maxy, maxx), area.bounds)
    ):
        return None
    centre = ((minx + maxx) / 2, (miny + maxy) / 2)
    return (
        f"{what} lies at {where(*centre)}, outside the working CRS {crs} (setting crs); "
        f"longitude and latitude look swapped: swapped back it lies at {where(*centre[::-1])}"
    )
