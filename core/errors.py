"""Every failure a Raqib user can meet, under one root.

The CLI turns a :class:`RaqibError` into one clear line and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class RaqibError(Exception):
    """Root of all Raqib errors."""


class InputError(RaqibError):
    """A bad file or record: names the source and what is wrong with it."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class PlanError(RaqibError):
    """A mission that is unsafe or impossible to fly."""


class VehicleError(RaqibError):
    """The vehicle link failed: no heartbeat, timeout, upload mismatch."""


class ProcessingError(RaqibError):
    """A processing stage could not produce its output from valid inputs."""


class DiskFullError(ProcessingError):
    """An output could not be written for lack of space (or over the file-size limit)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(
            f"{self.path}: cannot write it, the disk is full (or the file-size limit is "
            "reached); the previous file, if any, is kept: free some space and rerun"
        )
