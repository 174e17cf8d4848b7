"""Daylight flying windows: sunrise and sunset at a place (astral), narrowed by margins."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunrise, sunset

from core.errors import PlanError

MOROCCO_TZ = "Africa/Casablanca"
"""Local time of Berkane (UTC+1, UTC+0 during Ramadan): the tz database knows the switches."""


def flying_window(
    day: date,
    lon_deg: float,
    lat_deg: float,
    *,
    margin_s: float = 1800.0,
    earliest: time | None = None,
    latest: time | None = None,
    timezone: str = MOROCCO_TZ,
) -> tuple[datetime, datetime]:
    """When drones may fly on ``day`` at a place: from sunrise + ``margin_s`` to sunset -
    ``margin_s``, cut to the local clock times ``earliest`` - ``latest`` if given (e.g.
    09:00-16:00 to keep the sun high, shadows short). Times are timezone-aware, local.
    """
    zone = ZoneInfo(timezone)
    observer = Observer(latitude=lat_deg, longitude=lon_deg)
    margin = timedelta(seconds=margin_s)
    start = sunrise(observer, date=day, tzinfo=zone) + margin
    end = sunset(observer, date=day, tzinfo=zone) - margin
    if earliest is not None:
        start = max(start, datetime.combine(day, earliest, tzinfo=zone))
    if latest is not None:
        end = min(end, datetime.combine(day, latest, tzinfo=zone))
    if end <= start:
        raise PlanError(
            f"no flying time left on {day}: daylight {start:%H:%M}-{end:%H:%M} after a "
            f"{margin_s / 60:.0f} min margin and the {earliest}-{latest} window; "
            "reduce the margin or widen the window"
        )
    return start, end
