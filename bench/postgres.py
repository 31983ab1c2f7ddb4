"""A throw-away PostgreSQL server for the storage tests and the scale-out benchmark.

The machine's own PostgreSQL (`initdb`, `pg_ctl`; CI installs the Debian package), a cluster in a
temporary folder listening on 127.0.0.1 only, removed when the block ends. As root it runs as
the `postgres` system user, which PostgreSQL requires.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


def binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    return binary("initdb") is not None and binary("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server() -> Iterator[tuple[str, int, str]]:
    """(host, port, user) of a running throw-away server with trust authentication."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("no PostgreSQL server binary (initdb, pg_ctl); apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="attnas-postgres-"))  # under /tmp: reachable by the postgres user
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "attnas", "--auth=trust", "-E", "UTF8"], check=True,
                       capture_output=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start"],
                       check=True, capture_output=True)
        yield "127.0.0.1", port, "attnas"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def database(host: str, port: int, user: str, name: str) -> str:
    """A fresh database on the server, as a storage URL."""
    import psycopg

    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as connection:
        # FORCE: sessions a previous test left open (a killed worker's pool) must not block a rerun
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{user}@{host}:{port}/{name}"
