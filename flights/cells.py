"""Survey lines over an AOI and their boustrophedon cellular decomposition.

Everything here works in the *grid frame*: the AOI rotated so that the flight lines run
south-north (along +y), ``spacing_m`` apart in x. A line flies wherever the AOI lies within
its swath (half a spacing each side), so concave edges and notches stay covered, but it
stops at the edge of a hole: no line crosses a hole (``flights.grid`` flies the turns there
around it). Lines are then grouped into cells
(Choset's boustrophedon decomposition, done on the lines): consecutive lines whose
segments overlap one to one belong to one cell, and a cell is flown back and forth.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import shapely
from shapely.geometry import Polygon

_MIN_SEGMENT_M = 1e-6


class Segment(NamedTuple):
    """One photo leg of a line in the grid frame, and its turnaround run-outs.

    The camera fires from ``lo_m`` to ``hi_m``; the run-outs (camera off) extend the leg
    beyond the AOI for the turns, and are zero where the leg stops at a hole.
    """

    x_m: float
    lo_m: float
    hi_m: float
    lo_runout_m: float
    hi_runout_m: float


Cell = list[Segment]
"""Segments on consecutive lines, one per line, each overlapping the next (in y)."""


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _spans_by_line(
    parts: np.ndarray, index: np.ndarray, count: int
) -> list[list[tuple[float, float]]]:
    """(ymin, ymax) of each part, grouped by the line it belongs to."""
    spans: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    if len(parts):
        bounds = shapely.bounds(parts)
        for k, (_, ymin, _, ymax) in zip(index.tolist(), bounds.tolist(), strict=True):
            spans[k].append((ymin, ymax))
    return spans


def _cut(
    span: tuple[float, float], holes: list[tuple[float, float]]
) -> list[tuple[float, float, bool, bool]]:
    """``span`` minus the ``holes`` intervals: pieces (lo, hi, lo at a hole, hi at a hole)."""
    pieces = [(span[0], span[1], False, False)]
    for h_lo, h_hi in holes:
        kept = []
        for lo, hi, lo_hole, hi_hole in pieces:
            if h_hi <= lo or h_lo >= hi:
                kept.append((lo, hi, lo_hole, hi_hole))
                continue
            if h_lo - lo > _MIN_SEGMENT_M:
                kept.append((lo, h_lo, lo_hole, True))
            if hi - h_hi > _MIN_SEGMENT_M:
                kept.append((h_hi, hi, True, hi_hole))
        pieces = kept
    return pieces


def survey_lines(
    area: Polygon, spacing_m: float, extension_m: float, runout_m: float
) -> list[list[Segment]]:
    """The segments of each south-north line over ``area`` (grid frame), west to east.

    Lines are ``spacing_m`` apart, the first half a spacing in from the west edge. Each
    segment is lengthened by ``extension_m`` (photos up to the edge) and ``runout_m``
    (turnaround) at the AOI's outer edges, and ends exactly at the edge of a hole.
    """
    minx, miny, maxx, maxy = area.bounds
    count = max(1, math.ceil((maxx - minx) / spacing_m - 1e-9))
    xs = minx + (np.arange(count) + 0.5) * spacing_m
    shell = shapely.Polygon(area.exterior)
    strips = shapely.box(xs - spacing_m / 2, miny - 1.0, xs + spacing_m / 2, maxy + 1.0)
    parts, index = shapely.get_parts(shapely.intersection(shell, strips), return_index=True)
    keep = shapely.area(parts) > 0.0
    swath_spans = _spans_by_line(parts[keep], index[keep], count)

    hole_spans: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    if area.interiors:
        holes = shapely.union_all([shapely.Polygon(ring) for ring in area.interiors])
        reach = extension_m + runout_m + 1.0
        verticals = shapely.linestrings([[(x, miny - reach), (x, maxy + reach)] for x in xs])
        cuts, cut_index = shapely.get_parts(
            shapely.intersection(verticals, holes), return_index=True
        )
        hole_spans = _spans_by_line(cuts, cut_index, count)

    lines = []
    for x, spans, holes_here in zip(xs.tolist(), swath_spans, hole_spans, strict=True):
        extended = _merge([(lo - extension_m, hi + extension_m) for lo, hi in spans])
        segments = []
        for span in extended:
            crossings = [(lo, hi) for lo, hi in holes_here if hi - lo > _MIN_SEGMENT_M]
            for lo, hi, lo_hole, hi_hole in _cut(span, _merge(crossings)):
                segments.append(
                    Segment(x, lo, hi, 0.0 if lo_hole else runout_m, 0.0 if hi_hole else runout_m)
                )
        lines.append(segments)
    return lines


def _overlaps(a: Segment, b: Segment) -> bool:
    return a.lo_m < b.hi_m and b.lo_m < a.hi_m


def decompose(lines: list[list[Segment]]) -> list[Cell]:
    """Cells of the boustrophedon decomposition of ``lines`` (west to east, one list per line).

    A segment continues the cell of the segment before it (on the previous line) when each
    overlaps the other and nothing else; otherwise (a split, a merge, a gap) it opens a cell.
    """
    cells: list[Cell] = []
    previous: list[Segment] = []
    previous_cells: list[int] = []
    for segments in lines:
        current_cells = []
        for segment in segments:
            before = [i for i, p in enumerate(previous) if _overlaps(p, segment)]
            if len(before) == 1:
                after = [s for s in segments if _overlaps(previous[before[0]], s)]
                if len(after) == 1:
                    cell = previous_cells[before[0]]
                    cells[cell].append(segment)
                    current_cells.append(cell)
                    continue
            cells.append([segment])
            current_cells.append(len(cells) - 1)
        previous, previous_cells = segments, current_cells
    return cells
