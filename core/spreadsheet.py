"""CSV cells a spreadsheet would run as a formula (CSV injection): written as text.

A permit holder, AOI id or inspector note such as ``=HYPERLINK("http://evil", "open")`` in
a CSV that Excel or LibreOffice opens becomes a live formula; a leading apostrophe keeps it
text, and the program reading the sheet back takes it off again.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""


def csv_safe(value: object) -> object:
    """``value`` with a leading quote when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_unquoted(text: str) -> str:
    """Undo :func:`csv_safe` (so a round trip gives back the words as typed)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text
