"""Reflectance from a camera's values: the two scale factors every stage agrees on.

A band's reflectance is its pixel value times a factor: from a calibration panel photographed
in the same light, or from the sun sensor's irradiance when the values are radiance.
"""

from __future__ import annotations

import math

from core.errors import InputError


def panel_scale(panel_value: float, panel_reflectance: float) -> float:
    """Factor turning a band's pixel values into reflectance, from a calibration panel photo:
    ``panel_reflectance / panel_value``.

    ``panel_value`` is the mean value (radiance, or vignetting-corrected DN) of the panel's
    pixels in this band, ``panel_reflectance`` the panel's certified reflectance in it.
    Assumes values are linear in radiance, the panel is Lambertian and the light did not
    change between the panel photo and the flight.
    """
    if not panel_value > 0 or not 0 < panel_reflectance <= 1:
        raise InputError(
            "calibration panel",
            f"needs a value > 0 and a reflectance in (0, 1], got {panel_value}, "
            f"{panel_reflectance}",
        )
    return panel_reflectance / panel_value


def irradiance_scale(irradiance_w_m2_nm: float) -> float:
    """Factor turning at-sensor radiance (W/m2/sr/nm) into reflectance, from the sun sensor:
    reflectance = pi * radiance / irradiance.

    ``irradiance_w_m2_nm`` is the horizontal spectral irradiance the sun sensor (MicaSense DLS)
    measured at capture time in this band. Assumes a Lambertian surface lit by that same
    irradiance, and no atmosphere worth correcting between the ground and a drone.
    """
    if not irradiance_w_m2_nm > 0:
        raise InputError("sun sensor", f"irradiance must be > 0, got {irradiance_w_m2_nm}")
    return math.pi / irradiance_w_m2_nm
