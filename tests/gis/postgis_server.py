"""A throw-away PostgreSQL + PostGIS server on loopback, from Debian's packages
(``postgresql``, ``postgresql-15-postgis-3``; ``.ci/run`` installs them).

initdb refuses to run as root: as root the cluster belongs to the ``postgres`` user (its data
folder outside pytest's private temporary folders, which that user cannot enter).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DATABASE = "raqib"
USER = "raqib"
INSTALL = "apt-get install postgresql postgresql-15-postgis-3"


def postgresql_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder that has PostGIS beside it, if any."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        control = Path("/usr/share/postgresql") / folder.name / "extension/postgis.control"
        if (folder / "bin/initdb").is_file() and control.is_file():
            return folder / "bin"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner() -> Callable[[list[str]], list[str]]:
    if os.geteuid() != 0:
        return lambda command: command
    return lambda command: ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def running_postgis() -> Iterator[str]:
    """Start a server on 127.0.0.1 with a database holding PostGIS; yield its URL; stop it.
    Skips (fails when ``CI`` is set) where the packages are missing."""
    binaries = postgresql_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL + PostGIS not found: .ci/run must install them ({INSTALL})")
        pytest.skip(f"PostgreSQL + PostGIS are not installed ({INSTALL})")
    import psycopg

    owner = _as_owner()
    root = Path(tempfile.mkdtemp(prefix="raqib-postgis-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(
            owner([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
                   "-E", "UTF8", "--no-sync"]),
            **run,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        subprocess.run(
            owner([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                   "-l", str(root / "server.log"), "start"]),
            **run,
        )  # fmt: skip
        try:
            admin = f"postgresql://{USER}@127.0.0.1:{port}"
            with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
            with psycopg.connect(f"{admin}/{DATABASE}", autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
            yield f"{admin}/{DATABASE}"
        finally:
            subprocess.run(
                owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                **run,
            )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
