"""The shared value types: camera geometry, survey spacing, output grids."""

from __future__ import annotations

import dataclasses

import pytest

from core.types import Camera, Grid, SurveySpec

MAVIC_3E = Camera("DJI Mavic 3E", "DJI", "M3E", 17.3, 13.0, 5280, 3956, 12.29)


def test_gsd_and_altitude_are_inverse() -> None:
    altitude_m = MAVIC_3E.altitude_for_gsd_m(2.5)
    assert MAVIC_3E.gsd_cm(altitude_m) == pytest.approx(2.5)


def test_mavic_3e_gsd_matches_dji_spec_sheet() -> None:
    # DJI: "GSD 2.7 cm/px at 100 m" for the Mavic 3E wide camera.
    assert MAVIC_3E.gsd_cm(100.0) == pytest.approx(2.67, abs=0.05)


def test_survey_spacing_follows_overlaps() -> None:
    spec = SurveySpec(camera=MAVIC_3E, gsd_cm=3.0, front_overlap=0.8, side_overlap=0.7)
    across_m, along_m = MAVIC_3E.footprint_m(spec.altitude_m)
    assert spec.trigger_distance_m == pytest.approx(0.2 * along_m)
    assert spec.line_spacing_m == pytest.approx(0.3 * across_m)
    assert across_m > along_m  # the long side of the sensor flies across-track


def test_types_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MAVIC_3E.focal_length_mm = 10.0  # type: ignore[misc]


def test_grid_snaps_to_resolution_so_epochs_align() -> None:
    a = Grid.from_bounds((1000.03, 2000.04, 1100.01, 2050.02), 0.5, "EPSG:32630")
    b = Grid.from_bounds((1000.4, 2000.2, 1100.3, 2050.3), 0.5, "EPSG:32630")
    assert a == b
    assert a.bounds == (1000.0, 2000.0, 1100.5, 2050.5)
    assert a.shape == (101, 201)
