"""When an image was captured, as GeoTIFF tags: written by whoever makes an orthophoto (the
mosaic, the simulator), read by the models that need the sun of that moment.

Two tags: ``CAPTURED_AT`` (Raqib's own, ISO 8601 with its UTC offset: exact) and the standard
``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``, local time without a zone, as EXIF and most
photogrammetry tools write it; read in a default zone when it is the only one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from core.errors import InputError

CAPTURED_AT_TAG = "CAPTURED_AT"
TIFF_DATETIME_TAG = "TIFFTAG_DATETIME"
TIFF_DATETIME_FORMAT = "%Y:%m:%d %H:%M:%S"
DEFAULT_TIMEZONE = ZoneInfo("Africa/Casablanca")
"""Zone of a ``TIFFTAG_DATETIME`` that comes without ``CAPTURED_AT`` (Berkane's)."""


def capture_tags(captured_at: datetime) -> dict[str, str]:
    """The tags saying an image was captured at ``captured_at`` (time-zone aware)."""
    if captured_at.tzinfo is None:
        raise ValueError(f"capture time {captured_at} has no time zone")
    return {
        CAPTURED_AT_TAG: captured_at.isoformat(),
        TIFF_DATETIME_TAG: captured_at.strftime(TIFF_DATETIME_FORMAT),
    }


def read_capture_time(
    tags: Mapping[str, str], default_tz: tzinfo = DEFAULT_TIMEZONE
) -> datetime | None:
    """The capture time the tags state (``CAPTURED_AT``, else ``TIFFTAG_DATETIME`` read in
    ``default_tz``); None if neither is there or readable (a tag is a hint, not an input)."""
    try:
        exact = datetime.fromisoformat(tags[CAPTURED_AT_TAG])
        if exact.tzinfo is not None:
            return exact
    except (KeyError, ValueError):
        pass
    try:
        local = datetime.strptime(tags[TIFF_DATETIME_TAG].strip(), TIFF_DATETIME_FORMAT)
    except (KeyError, ValueError):
        return None
    return local.replace(tzinfo=default_tz)


def parse_captured_at(text: str, source: str = "--captured-at") -> datetime:
    """A capture time typed by a user (ISO 8601; without an offset, in Berkane's zone);
    InputError naming ``source`` if it is not one."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            source, f"{text!r} is not a date and time (e.g. 2026-01-15T11:00+01:00)"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=DEFAULT_TIMEZONE)
