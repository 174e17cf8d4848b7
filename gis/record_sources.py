"""Where permit and project records come from: a CSV export, a vector file, JSON (API or file).

Each reader returns a :class:`RecordTable`: the records as the source holds them (its own
field names, raw values), each with the source and line an operator finds it by.
Checking the values is :mod:`gis.records`' job.

A JSON page is a list of records, or an object holding the list under ``records_key``
(a dotted path such as ``data.items``; a GeoJSON FeatureCollection needs none) and the
link to the next page under ``next_key``. Nested fields are flattened to ``a.b``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyogrio

from core.errors import InputError
from gis.record_api import HttpOptions, fetch_pages

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
KINDS = (None, "csv", "vector", "json")
DEFAULT_HTTP = HttpOptions()


@dataclass(frozen=True)
class RawRecord:
    """One record as read: ``values`` keyed by the source's field names; ``problem`` when
    the record is unreadable as a whole (surplus CSV values, a JSON item not an object)."""

    source: str
    line: int
    values: Mapping[str, object]
    problem: str | None = None


@dataclass(frozen=True)
class RecordTable:
    """The records of one source of ``kind`` csv, vector or json. ``columns`` is None when
    each record has its own fields (json); ``crs`` is a vector file's CRS."""

    source: str
    kind: str
    records: tuple[RawRecord, ...]
    columns: frozenset[str] | None
    crs: str | None = None


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def read_table(
    location: str | Path,
    *,
    kind: str | None = None,
    delimiter: str = ",",
    layer: str | None = None,
    default_layer: str | None = None,
    records_key: str | None = None,
    next_key: str = "next",
    http: HttpOptions | None = None,
    encoding: str | None = None,
) -> RecordTable:
    """The records of a URL (JSON API), a ``.json`` file, a CSV or a vector file.

    ``kind`` (csv, vector, json) None: by the URL or the suffix; an unknown suffix is
    tried as a vector file (GDAL reads many). ``encoding`` of a CSV or JSON file (None:
    UTF-8).
    """
    if kind not in KINDS:
        raise InputError(location, f"unknown records kind {kind!r}; use csv, vector or json")
    if is_url(location):
        url = str(location)
        records = fetch_pages(
            url, lambda page, doc: json_page(page, doc, records_key, next_key), http or DEFAULT_HTTP
        )
        return RecordTable(url, "json", tuple(records), None)
    path = Path(location)
    kind = kind or {".json": "json", **dict.fromkeys(CSV_SUFFIXES, "csv")}.get(
        path.suffix.lower(), "vector"
    )
    if kind == "csv":
        return read_csv_table(path, delimiter, encoding)
    if kind == "json":
        text = _decode(path, encoding)
        records = json_page(str(path), _parse_json(path, text), records_key)[0]
        return RecordTable(str(path), "json", tuple(records), None)
    return read_vector_table(path, layer, default_layer)


def _likely_encoding(data: bytes) -> tuple[str, str] | None:
    """(codec, name) of the Windows code page ``data`` (not UTF-8) was most likely saved in
    by a spreadsheet: Arabic when most of its non-ASCII letters read as Arabic, else
    Western European; None when neither decodes it."""
    for codec, name, is_letter in _CODE_PAGES:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        foreign = [c for c in text if ord(c) > 127]
        if foreign and sum(map(is_letter, foreign)) >= 0.5 * len(foreign):
            return codec, name
    return None


_CODE_PAGES = (
    ("cp1256", "Windows-1256 (Arabic)", lambda c: "\u0600" <= c <= "\u06ff"),
    ("cp1252", "Windows-1252 (Western European)", str.isalpha),
)


def _decode(path: Path, encoding: str | None = None) -> str:
    """The text of ``path``: UTF-8 (with or without BOM), or ``encoding`` when given. Text
    in another encoding is an InputError naming the line, the encoding it looks like and
    how to read it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    codec = encoding or "utf-8-sig"
    try:
        return data.decode(codec)
    except LookupError as exc:
        raise InputError(path, f"unknown encoding {encoding!r} (e.g. utf-8, cp1256)") from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"line {line}: byte 0x{data[exc.start]:02x} is not {encoding or 'UTF-8'}"
        guess = None if encoding else _likely_encoding(data)
        if guess is not None:
            problem += (
                f"; the file looks like {guess[1]}: save it as 'CSV UTF-8', or give "
                f'encoding = "{guess[0]}" in its table of raqib.toml'
            )
        else:
            problem += "; save the file as UTF-8"
        raise InputError(path, problem) from exc


def _parse_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON (line {exc.lineno}: {exc.msg})") from exc


def read_csv_table(path: Path, delimiter: str = ",", encoding: str | None = None) -> RecordTable:
    """A CSV (UTF-8 unless ``encoding``); ``line`` is the physical line number of the row's
    end."""
    path = Path(path)
    text = _decode(path, encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = frozenset(reader.fieldnames or ())
    records = []
    for row in reader:
        surplus = row.pop(None, None)  # type: ignore[call-overload]
        problem = f"{len(surplus)} value(s) more than the header has columns" if surplus else None
        records.append(RawRecord(str(path), reader.line_num, row, problem))
    return RecordTable(str(path), "csv", tuple(records), columns)


def read_vector_table(
    path: Path, layer: str | None = None, default_layer: str | None = None
) -> RecordTable:
    """A layer or attribute table of a vector file (GeoPackage, ...); ``line`` is the
    feature id. ``layer`` None: ``default_layer`` if present, else the only layer."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        chosen = _layer(
            path, [str(n) for n in pyogrio.list_layers(path)[:, 0]], layer, default_layer
        )
        frame = pyogrio.read_dataframe(path, layer=chosen, fid_as_index=True)
        crs = pyogrio.read_info(path, layer=chosen)["crs"]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    records = _frame_records(str(path), frame)
    return RecordTable(str(path), "vector", records, _columns(frame), crs)


def _layer(path: Path, names: list[str], layer: str | None, default: str | None) -> str:
    if layer is not None:
        if layer not in names:
            raise InputError(path, f"no layer or table {layer!r}; it has {', '.join(names)}")
        return layer
    if default in names:
        return default  # type: ignore[return-value]
    if len(names) == 1:
        return names[0]
    raise InputError(
        path, f"{len(names)} layers ({', '.join(names)}): say which one holds the records"
    )


def _columns(frame: pd.DataFrame) -> frozenset[str]:
    return frozenset(str(c) for c in frame.columns)


def _frame_records(source: str, frame: pd.DataFrame) -> tuple[RawRecord, ...]:
    names = [str(c) for c in frame.columns]
    return tuple(
        RawRecord(source, int(fid), dict(zip(names, values, strict=True)))
        for fid, values in zip(frame.index, frame.itertuples(index=False), strict=True)
    )


def json_page(
    source: str, document: object, records_key: str | None, next_key: str = "next"
) -> tuple[list[RawRecord], str | None]:
    """The records of one JSON page (position from 1 as ``line``) and its next-page link."""
    if isinstance(document, list):
        return _json_records(source, document), None
    if not isinstance(document, dict):
        raise InputError(source, f"expected a JSON list or object, got {type(document).__name__}")
    key = records_key or ("features" if document.get("type") == "FeatureCollection" else None)
    if key is None:
        raise InputError(
            source,
            f"the answer is an object with keys {', '.join(map(str, document))}; "
            "set records_key to the one holding the list of records",
        )
    listed = _lookup(document, key)
    if not isinstance(listed, list):
        raise InputError(source, f"{key!r} is not a list of records in the answer")
    following = _lookup(document, next_key)
    if following is not None and not isinstance(following, str):
        raise InputError(source, f"next page link {next_key!r} is not a string: {following!r}")
    return _json_records(source, listed), following or None


def _lookup(document: dict, dotted: str) -> object:
    value: object = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _json_records(source: str, items: list) -> list[RawRecord]:
    records = []
    for line, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            records.append(RawRecord(source, line, {}, f"not an object: {item!r:.60}"))
        elif item.get("type") == "Feature":
            values = _flatten(item.get("properties") or {})
            records.append(RawRecord(source, line, {**values, "geometry": item.get("geometry")}))
        else:
            records.append(RawRecord(source, line, _flatten(item)))
    return records


def _is_geojson_geometry(value: dict) -> bool:
    return "type" in value and ("coordinates" in value or "geometries" in value)


def _flatten(item: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_geojson_geometry(value):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
