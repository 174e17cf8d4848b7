"""Crown segmentation of canopy masks drawn by hand: touching crowns, lawns, weed strips."""

from __future__ import annotations

import cv2
import numpy as np

from models.crowns import segment_crowns

GSD_M = 0.1


def disc_mask(shape: tuple[int, int], discs: list[tuple[int, int, int]]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for col, row, radius in discs:
        cv2.circle(mask, (col, row), radius, 1, -1)
    return mask.astype(bool)


def test_touching_crowns_are_split_along_their_neck() -> None:
    small, large = (40, 50, 15), (75, 50, 25)  # col, row, radius px: overlapping by 5 px
    canopy = disc_mask((100, 120), [small, large])
    labels, peaks = segment_crowns(canopy, GSD_M)
    assert len(peaks) == 2 and set(np.unique(labels)) == {0, 1, 2}
    for col, row, radius in (small, large):
        own = labels[row, col]
        disc = disc_mask(canopy.shape, [(col, row, radius)])
        assert ((labels == own) & disc).sum() / (labels == own).sum() > 0.97
        assert ((labels == own) & disc).sum() / disc.sum() > 0.9
    # The neck, the chord where the circles cross, lies (35² + 15² - 25²) / 70 = 11.8 px right
    # of the small centre.
    boundary_cols = [np.nonzero(labels[r] == labels[50, 75])[0].min() for r in range(45, 56)]
    assert abs(np.median(boundary_cols) - 51.8) <= 1.5


def test_a_lawn_wider_than_the_largest_crown_is_no_tree() -> None:
    canopy = np.zeros((200, 200), bool)
    canopy[20:180, 20:180] = True  # 16 m of grass
    labels, peaks = segment_crowns(canopy, GSD_M)
    assert len(peaks) == 0 and not labels.any()


def test_weed_strips_thinner_than_a_quarter_crown_are_opened_away() -> None:
    canopy = disc_mask((100, 160), [(50, 50, 18)])
    canopy[48:51, 68:150] = True  # a 0.3 m wide strip of weeds running off the crown
    labels, peaks = segment_crowns(canopy, GSD_M)
    assert len(peaks) == 1
    assert not labels[48:51, 75:].any()
