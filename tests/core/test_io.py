"""Atomic writes: the target is replaced whole on success and untouched on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.io import atomic_path


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".csv"
        assert target.read_text() == "old\n"  # nothing visible until the block ends
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_the_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask


def test_a_failure_leaves_the_old_target_byte_identical_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "model.joblib"
    old = bytes(range(256))
    target.write_bytes(old)
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        tmp.with_name(tmp.name + "-journal").write_bytes(b"sqlite sidecar")
        raise RuntimeError("boom")
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib"]


def test_a_failure_without_a_target_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "sub" / "a.gpkg"):
        raise RuntimeError
    assert list((tmp_path / "sub").iterdir()) == []


def test_temporary_names_are_unique_and_keep_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "ortho.tif"
    with atomic_path(target) as a, atomic_path(target) as b, atomic_path(target) as c:
        assert len({a, b, c}) == 3
        assert {a.suffix, b.suffix, c.suffix} == {".tif"}
        assert all(p.exists() for p in (a, b, c))
    assert target.exists()


def test_a_suffix_overrides_the_targets(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "mosaic.cog", suffix=".tif") as tmp:
        assert tmp.suffix == ".tif"
        tmp.write_bytes(b"x")
    assert (tmp_path / "mosaic.cog").read_bytes() == b"x"
