"""The stage record of an epoch: a rerun skips each stage whose inputs are unchanged.

``<epoch folder>/stages.json`` holds one entry per finished stage: its key (SHA-256 over
the content of its input files and a fingerprint of its parameters) and its outputs (paths,
relative to the folder when inside it, with their SHA-256). A stage's returned value is one
of its outputs, pickled to ``<epoch folder>/stages/<stage>.pickle``, so the next stage gets
exactly what it would have got. A stage is *current* when its entry has the same key and
every recorded output still has its recorded hash; the record is rewritten atomically after
each stage, so a killed run leaves the entries of the stages it finished and nothing else.
Keys are bound to the folder and to the version of Raqib's code (:func:`code_version`): after
an upgrade, or a moved folder, every stage runs again.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import pickle
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from core.io import atomic_path

STAGES_FILE = "stages.json"
RESULTS_FOLDER = "stages"
"""Folder of the epoch holding the stages' pickled return values."""
MISSING = "missing"
"""The content hash of a path that does not exist."""
_CHUNK = 1 << 20
T = TypeVar("T")
CODE_PACKAGES = ("core", "flights", "pipeline", "models", "gis", "sim")
"""Raqib's packages (beside this one) whose code can change a stage's result, with flows.py."""


def source_version(root: Path) -> str:
    """SHA-256 over the Python files of :data:`CODE_PACKAGES` under ``root``, and its flows.py."""
    files = sorted(p for package in CODE_PACKAGES for p in (root / package).rglob("*.py"))
    digest = hashlib.sha256()
    for path in [*files, root / "flows.py"]:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def code_version() -> str:
    """The :func:`source_version` of the Raqib this process runs (as installed)."""
    return source_version(Path(__file__).resolve().parent.parent)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """SHA-256 of a file; of a folder, over its files' relative names and hashes (hidden
    files left out: they are temporary); :data:`MISSING` when ``path`` does not exist."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return MISSING
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = member.relative_to(path)
        if not any(part.startswith(".") for part in relative.parts):
            digest.update(f"{relative.as_posix()}\0{file_sha256(member)}\n".encode())
    return digest.hexdigest()


def fingerprint(value: object) -> str:
    """SHA-256 of a value's content: data frames by their columns, types, index and cells,
    geometries by WKB, dataclasses and pydantic models by their fields; paths by name (hash
    a file's content with :func:`content_sha256`)."""
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: object) -> Any:
    """``value`` as plain JSON data that differs whenever the content differs."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, pd.DataFrame | pd.Series):
        return {"frame": _frame_sha256(value)}
    if isinstance(value, BaseGeometry):
        return {"wkb": value.wkb_hex}
    if isinstance(value, np.ndarray):
        return {"array": _array_sha256(value)}
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(item) for item in value), key=repr)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _array_sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    if array.dtype == object:
        digest.update(json.dumps([_canonical(v) for v in array.ravel()]).encode())
    else:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _frame_sha256(frame: pd.DataFrame | pd.Series) -> str:
    """A frame's (or series') columns, dtypes, CRS, index and cells."""
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    digest = hashlib.sha256(repr(getattr(frame, "crs", None)).encode())
    columns = {"__index__": pd.Series(frame.index, dtype=frame.index.dtype)} | {
        str(name): frame[name] for name in frame.columns
    }
    for name, series in columns.items():
        digest.update(f"{name}\0{series.dtype}\n".encode())
        if isinstance(series.dtype, gpd.array.GeometryDtype):
            cells = [g.wkb_hex if g is not None else None for g in series]
            digest.update(json.dumps(cells).encode())
        elif series.dtype == object:
            digest.update(json.dumps([_canonical(v) for v in series]).encode())
        else:
            digest.update(pd.util.hash_pandas_object(series, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def stage_key(files: Mapping[str, Path] | None = None, parameters: object = None) -> str:
    """The key of one run of a stage: SHA-256 over the content of its input ``files`` (by
    label) and the :func:`fingerprint` of its ``parameters``."""
    hashed = {label: content_sha256(path) for label, path in (files or {}).items()}
    return fingerprint({"files": hashed, "parameters": fingerprint(parameters)})


class StageBook:
    """The stage record of one folder (an epoch's); ``force`` treats every stage as stale."""

    def __init__(self, folder: Path, *, force: bool = False, code: str | None = None) -> None:
        self.folder = Path(folder)
        self.force = force
        self.code = code_version() if code is None else code
        self.path = self.folder / STAGES_FILE
        self._entries = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        """The recorded entries (kept with ``force``: stages not rerun stay recorded)."""
        if not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(entries, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            if self.force:
                return {}
            raise InputError(
                self.path, f"not a stage record ({exc}); delete it (or rerun with --force)"
            ) from exc
        return entries

    def result_path(self, name: str) -> Path:
        return self.folder / RESULTS_FOLDER / f"{name}.pickle"

    def _stored(self, path: Path) -> str:
        path = Path(path)
        inside = path.resolve().is_relative_to(self.folder.resolve())
        return path.resolve().relative_to(self.folder.resolve()).as_posix() if inside else str(path)

    def _located(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.folder / path

    def _bound(self, key: str) -> str:
        """``key`` bound to this folder as named (recorded values hold paths under it, so a
        moved or copied folder reruns its stages rather than read the old folder's files) and
        to the code's version (``code``: by default :func:`code_version`)."""
        return fingerprint([str(self.folder), self.code, key])

    def is_current(self, name: str, key: str) -> bool:
        """Whether ``name`` last ran with ``key`` and its outputs are still as it wrote them."""
        entry = self._entries.get(name)
        if self.force or entry is None or entry.get("key") != self._bound(key):
            return False
        outputs = entry.get("outputs", {})
        return all(content_sha256(self._located(p)) == sha for p, sha in outputs.items())

    def record(self, name: str, key: str, outputs: Iterable[Path]) -> None:
        """Record that ``name`` ran with ``key`` and wrote ``outputs`` (files or folders);
        the record file is replaced atomically."""
        self._entries[name] = {
            "key": self._bound(key),
            "outputs": {self._stored(p): content_sha256(Path(p)) for p in outputs},
        }
        with atomic_path(self.path) as scratch:
            scratch.write_text(json.dumps(self._entries, indent=2, sort_keys=True), "utf-8")

    def load(self, name: str) -> Any:
        """The pickled return value of a current stage."""
        with open(self.result_path(name), "rb") as handle:
            return pickle.load(handle)  # noqa: S301 (our own file, hash checked)

    def save(self, name: str, value: object) -> Path:
        """Pickle a stage's return value (atomically) and return its path."""
        path = self.result_path(name)
        with atomic_path(path) as scratch:
            scratch.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return path

    def run(
        self,
        name: str,
        key: str,
        compute: Callable[[], T],
        outputs: Callable[[T], Iterable[Path]] = lambda _: (),
        say: Callable[[str], None] = lambda _msg: None,
    ) -> T:
        """``compute()``'s value, or the recorded one when ``name`` is current with ``key``;
        after computing, the value and ``outputs(value)`` are recorded. ``say`` gets one line
        as the stage starts: ``stage NAME: running`` or ``stage NAME: unchanged, skipped``."""
        if self.is_current(name, key):
            try:
                value = self.load(name)
            except Exception:  # noqa: BLE001 (an unreadable pickle only means: run it again)
                pass
            else:
                say(f"stage {name}: unchanged, skipped")
                return value
        say(f"stage {name}: running")
        value = compute()
        self.record(name, key, [self.save(name, value), *outputs(value)])
        return value


def remove_leftovers(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Delete the temporary files a killed run left in ``folder`` (the hidden
    ``.<name>.<random>.tmp<suffix>`` files of :func:`core.io.atomic_path` and their SQLite
    sidecars); returns what was removed."""
    pattern = ".*.tmp*"
    found = Path(folder).rglob(pattern) if recursive else Path(folder).glob(pattern)
    removed = []
    for path in sorted(found):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
