"""What one tool run costs as a whole process: wall time, CPU time and peak RSS."""

from __future__ import annotations

import subprocess
import tempfile
import time


def measure(command: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) of ``command``, and its
    error text if it failed.

    Peak RSS comes from GNU time (``/usr/bin/time``), not from ``wait4`` here: Linux keeps
    the high-water mark across ``exec``, so a child forked from this (large) process would
    report at least this process's RSS.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", rss_file.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wall_s = time.perf_counter() - start
        rss_kib, user_s, system_s = map(float, rss_file.read().strip().splitlines()[-1].split())
    failure = done.stderr.strip().splitlines()[-1] if done.returncode else ""
    return wall_s, user_s + system_s, rss_kib / 1024.0, failure
