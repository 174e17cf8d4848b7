"""Decoded frames kept per process while mosaic tiles are built, bounded by bytes.

Tiles are rendered row by row and a frame meets about two tiles of each of about two tile
rows; a cache holding the frames of a tile's neighbourhood decodes each frame about once per
tile row. A count alone cannot bound it: a 20 MP frame is 60 MB, a preview frame 4 MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

FrameKey = tuple[Path, str, int]
"""(path, sha256, decode factor): the hash is in the key, so a photo rewritten at the same
path is decoded again."""


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    currsize: int
    """Frames held now."""
    nbytes: int


class FrameCache:
    """``decode(path, decode_factor)`` kept least-recently-used first out, holding at least
    ``min_frames`` frames and more while they fit in ``budget_bytes``. Thread-safe; two
    threads asking for the same missing frame may both decode it."""

    def __init__(
        self,
        decode: Callable[[Path, int], np.ndarray],
        *,
        min_frames: int,
        budget_bytes: int,
    ) -> None:
        self._decode = decode
        self._min_frames = min_frames
        self._budget_bytes = budget_bytes
        self._frames: OrderedDict[FrameKey, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    def __call__(self, path: Path, sha256: str, decode_factor: int) -> np.ndarray:
        key = (path, sha256, decode_factor)
        with self._lock:
            if key in self._frames:
                self._hits += 1
                self._frames.move_to_end(key)
                return self._frames[key]
            self._misses += 1
        pixels = self._decode(path, decode_factor)
        with self._lock:
            if key not in self._frames:
                self._frames[key] = pixels
                self._nbytes += pixels.nbytes
                self._evict()
        return pixels

    def _evict(self) -> None:
        while len(self._frames) > self._min_frames and self._nbytes > self._budget_bytes:
            _, oldest = self._frames.popitem(last=False)
            self._nbytes -= oldest.nbytes

    def cache_clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._nbytes = self._hits = self._misses = 0

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._frames), self._nbytes)
