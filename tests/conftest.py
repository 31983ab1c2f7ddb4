"""Shared fixtures: a throw-away PostgreSQL server (`bench/postgres.py`) for the storage and fault
tests, skipped with the reason only when no server binary exists (.ci/run installs one); every
test's device locks in a folder of its own; CUDA tests skipped without CUDA."""

from __future__ import annotations

import hashlib

import pytest
import torch

from bench import postgres


@pytest.fixture(autouse=True)
def own_device_locks(tmp_path_factory, monkeypatch):
    """Device locks in a folder of this test's own (worker processes it starts inherit it): a test
    never waits for, nor pauses, an attnas search or another test session on the machine."""
    from attnas.evaluators.device_lock import DEVICE_LOCK

    monkeypatch.setenv("ATTNAS_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
    monkeypatch.setattr(DEVICE_LOCK, "directory", None)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: pytest -m cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


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
