"""Shared fixtures: a throw-away PostgreSQL server (`bench/postgres.py`) for the storage and fault
tests, skipped with the reason only when no server binary exists (.ci/run installs one)."""

from __future__ import annotations

import hashlib

import pytest

from bench import postgres


@pytest.fixture(scope="session")
def postgres_server():
    if not postgres.available():
        pytest.skip("no PostgreSQL server binary (initdb, pg_ctl); apt-get install postgresql, as .ci/run does")
    with postgres.server() as address:
        yield address


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh database on the throw-away server, as a storage URL."""
    # PostgreSQL cuts names at 63 bytes: a digest of the full test id keeps parametrised cases apart
    readable = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40].lower()
    name = f"t_{readable}_{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]}"
    return postgres.database(*postgres_server, name)
