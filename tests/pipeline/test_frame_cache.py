"""The mosaic's decoded-frame cache: least recently used out, bounded by bytes."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.frame_cache import FrameCache


def _decoder(decoded: list[Path]) -> Callable[[Path, int], np.ndarray]:
    def decode(path: Path, decode_factor: int) -> np.ndarray:
        decoded.append(path)
        return np.full((10, 10, 3), len(decoded), np.uint8)  # 300 bytes a frame

    return decode


def test_frames_beyond_the_byte_budget_are_decoded_again_least_recent_first() -> None:
    decoded: list[Path] = []
    cache = FrameCache(_decoder(decoded), min_frames=1, budget_bytes=900)  # three frames
    a, b, c, d = (Path(name) for name in "abcd")
    first = cache(a, "h", 1)
    for path in (b, c, a, d):  # d pushes out b, the least recently used
        cache(path, "h", 1)
    assert cache(a, "h", 1) is first
    cache(b, "h", 1)
    assert decoded == [a, b, c, d, b]
    assert cache.cache_info().currsize == 3 and cache.cache_info().nbytes == 900


def test_at_least_min_frames_are_kept_whatever_their_size() -> None:
    decoded: list[Path] = []
    cache = FrameCache(_decoder(decoded), min_frames=2, budget_bytes=0)
    for name in "abab":
        cache(Path(name), "h", 1)
    assert decoded == [Path("a"), Path("b")]


def test_a_rewritten_photo_or_another_decode_factor_is_decoded_again() -> None:
    decoded: list[Path] = []
    cache = FrameCache(_decoder(decoded), min_frames=8, budget_bytes=0)
    cache(Path("a"), "old", 1)
    cache(Path("a"), "new", 1)
    cache(Path("a"), "new", 2)
    cache.cache_clear()
    cache(Path("a"), "new", 2)
    assert len(decoded) == 4 and cache.cache_info().currsize == 1
