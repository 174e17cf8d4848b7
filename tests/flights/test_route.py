"""Site order: nearest neighbour + 2-opt gives short open paths."""

from __future__ import annotations

import numpy as np

from flights.route import _nearest_neighbour, order_points, path_length_m


def scattered(seed: int, count: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 7000.0, size=(count, 2))


def test_the_order_visits_every_point_once() -> None:
    points = scattered(1)

    assert sorted(order_points(points)) == list(range(len(points)))


def test_the_order_is_much_shorter_than_the_input_order() -> None:
    points = scattered(2)
    identity = list(range(len(points)))

    ordered_m = path_length_m(points, order_points(points))

    assert ordered_m < 0.4 * path_length_m(points, identity)


def test_two_opt_improves_on_nearest_neighbour() -> None:
    points, start = scattered(3), np.array([3500.0, 3500.0])

    greedy_m = path_length_m(points, _nearest_neighbour(points, start), start)
    ordered_m = path_length_m(points, order_points(points, start), start)

    assert ordered_m < greedy_m


def test_the_path_starts_near_the_start_point() -> None:
    points = scattered(4)
    start = points[17] + 1.0

    assert order_points(points, start)[0] == 17


def test_a_path_of_points_on_a_line_is_the_line() -> None:
    points = np.array([[0.0, 0.0], [300.0, 0.0], [100.0, 0.0], [200.0, 0.0]])

    assert path_length_m(points, order_points(points)) == 300.0
