"""Survey lines in the grid frame and their boustrophedon decomposition into cells."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import Polygon, box

from flights.cells import Segment, decompose, survey_lines

SPACING_M = 20.0
EXTENSION_M = 5.0
RUNOUT_M = 10.0


def lines_over(area: Polygon) -> list[list[Segment]]:
    return survey_lines(area, SPACING_M, EXTENSION_M, RUNOUT_M)


def test_a_rectangle_is_one_cell_of_full_lines() -> None:
    lines = lines_over(box(0, 0, 200, 100))
    assert [s.x_m for line in lines for s in line] == [10.0 + 20.0 * k for k in range(10)]
    assert all(line == [Segment(line[0].x_m, -5.0, 105.0, 10.0, 10.0)] for line in lines)
    assert len(decompose(lines)) == 1


def test_a_notch_narrower_than_a_swath_still_gets_its_line() -> None:
    # A 30 m tooth at the east edge: the last line flies over the tooth's full height.
    area = Polygon([(0, 0), (200, 0), (200, 150), (190, 150), (190, 100), (0, 100)])
    last = lines_over(area)[-1]
    assert last[0].hi_m == pytest.approx(150.0 + EXTENSION_M)


def test_a_c_shape_splits_into_a_spine_and_two_arms() -> None:
    c_shape = Polygon(
        [(0, 0), (300, 0), (300, 100), (100, 100), (100, 200), (300, 200), (300, 300), (0, 300)]
    )
    cells = decompose(lines_over(c_shape))
    assert len(cells) == 3
    spine, lower, upper = sorted(cells, key=lambda c: (c[0].x_m, c[0].lo_m))
    assert all(s.x_m < 100 for s in spine) and spine[0].hi_m - spine[0].lo_m > 300
    assert all(s.hi_m < 150 for s in lower) and all(s.lo_m > 150 for s in upper)


def test_lines_stop_at_a_hole_without_run_out_and_make_four_cells() -> None:
    house = box(80, 60, 140, 120)
    field = Polygon(box(0, 0, 220, 180).exterior.coords, [house.exterior.coords])
    lines = lines_over(field)
    segments = [s for line in lines for s in line]
    legs = shapely.linestrings([[(s.x_m, s.lo_m), (s.x_m, s.hi_m)] for s in segments])
    assert not shapely.intersects(legs, house.buffer(-1e-6)).any()
    at_house = [s for s in segments if 80 < s.x_m < 140]
    assert len(at_house) == 6  # three lines, each cut in two
    assert all(s.hi_m == 60.0 and s.hi_runout_m == 0.0 for s in at_house if s.lo_m < 0)
    assert all(s.lo_m == 120.0 and s.lo_runout_m == 0.0 for s in at_house if s.lo_m > 0)
    assert all(s.lo_runout_m == RUNOUT_M for s in at_house if s.lo_m < 0)
    assert len(decompose(lines)) == 4  # west of the house, south, north, east


def test_a_line_grazing_a_hole_corner_is_not_cut() -> None:
    diamond = Polygon([(30, 50), (40, 40), (50, 50), (40, 60)])  # vertices on x = 30 and 50
    field = Polygon(box(0, 0, 100, 100).exterior.coords, [diamond.exterior.coords])
    lines = lines_over(field)
    assert [s.x_m for s in lines[1] + lines[2]] == [30.0, 50.0]
    assert all(len(line) == 1 for line in lines)


def test_a_merge_opens_a_new_cell() -> None:
    two = [Segment(0.0, 0.0, 10.0, 0, 0), Segment(0.0, 20.0, 30.0, 0, 0)]
    one = [Segment(1.0, 0.0, 30.0, 0, 0)]
    cells = decompose([two, one, one])
    assert [len(c) for c in cells] == [1, 1, 2]


def test_a_gap_between_lines_opens_a_new_cell() -> None:
    cells = decompose([[Segment(0.0, 0.0, 10.0, 0, 0)], [Segment(1.0, 50.0, 60.0, 0, 0)]])
    assert len(cells) == 2
