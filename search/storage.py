"""Optuna storages from a URL, checked first (`storage_checks`: one line, and nothing written into
a file or database that is not an Optuna one), with heartbeats for RDB storages so a killed
worker's trial is failed and retried instead of staying RUNNING forever; the study lock, real on
every storage it accepts; and the only places attnas reaches into Optuna's private API, each with
the upstream issue that makes it necessary:

* `storage_of(study)`: a `Study` has no public accessor for its storage (`study._storage`); the
  second stage of a two-stage search opens its first stage in the same storage;
* `rdb_engine(storage)`: the SQLAlchemy engine behind an RDB storage, for the advisory study lock
  (Optuna wraps an RDBStorage in a private `_CachedStorage` whose backend holds the engine);
* `serialise_popping(study, ...)`: Optuna hands a queued trial to a worker by a check-then-set that
  relies on SELECT ... FOR UPDATE, which SQLite ignores (optuna/optuna#4621, #2925).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import optuna

from attnas.evaluators.artefacts import file_lock
from attnas.search.names import folder_name
from attnas.search.storage_checks import (StorageError, check_journal_file, check_server, check_sqlite_file, check_url,
                                           sqlite_path)


def make_storage(url: str, heartbeat_interval: int | None = 60, grace_period: int | None = 300, max_retry: int = 2,
                 create: bool = True):
    """An Optuna storage from a URL; RDB storages get heartbeats so a killed worker's trial is
    failed and retried instead of staying RUNNING forever. The URL, the file or the server is
    checked first (`storage_checks`): a refusal is one line, and nothing is written into a file
    or database that is not an Optuna one. `create=False` (reading a study) refuses a missing
    file instead of making an empty one."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        _must_exist(path, create, url)
        check_journal_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    check_url(url)
    path = sqlite_path(url)
    if path is not None:
        _must_exist(path, create, url)
        check_sqlite_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    url = with_driver(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several workers on one SQLite file wait for each other's writes (the default 5 s gives
        # 'database is locked' as soon as a few heartbeats and trial writes collide)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    else:  # a server that does not answer: say so in seconds, not after the system's TCP timeout
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 30}}
        check_server(url, kwargs["engine_kwargs"])
    if heartbeat_interval:
        kwargs |= dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    return _create_rdb_storage(url, kwargs)


def _must_exist(path: Path, create: bool, url: str) -> None:
    if not create and not path.exists():
        raise FileNotFoundError(f"no storage file at {str(path)!r} (storage={url}); check the path, or run attnas-search first")


#: URL scheme -> (driver modules SQLAlchemy can use, in its order of preference; the package to install)
DRIVERS = {"postgresql": ((("psycopg", "psycopg"), ("psycopg2", "psycopg2")), "pip install 'attnas[postgres]' (psycopg 3)"),
           "mysql": ((("mysqldb", "MySQLdb"), ("pymysql", "pymysql")), "pip install mysqlclient (or pymysql)")}


def with_driver(url: str) -> str:
    """The URL with a driver SQLAlchemy can import: `postgresql://` takes psycopg 3 when it is
    installed, else psycopg2; with neither, one line says what to install (SQLAlchemy's own
    error is a 40-line traceback that never names the package)."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if "+" in scheme or scheme not in DRIVERS:
        return url
    candidates, hint = DRIVERS[scheme]
    for driver, module in candidates:
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}+{driver}{sep}{rest}"
    raise ValueError(f"storage {scheme}://... needs a database driver, and none is installed: {hint}")


def _create_rdb_storage(url: str, kwargs: dict[str, Any], attempts: int = 10) -> optuna.storages.RDBStorage:
    """Workers started together on a new database race to create Optuna's tables; the loser sees
    'table ... already exists' (or a duplicate version row) and simply connects once they exist."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + 0.3 * attempt)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def study_lock(storage: optuna.storages.BaseStorage, url: str, study_name: str) -> Iterator[None]:
    """Mutual exclusion between workers of one study for the few bookkeeping steps that must not
    interleave (queueing the references): a file lock beside a SQLite or journal file, an advisory
    lock on PostgreSQL (pg_advisory_lock) or MySQL (GET_LOCK), held for the block only; a lock of
    this process for storages no other process can open (in memory). Any other storage is refused:
    without a lock, workers started together queue the references once each."""
    path = sqlite_path(url) or (Path(url.removeprefix("journal:")) if url.startswith("journal:") else None)
    if path is not None:
        with file_lock(path.with_name(f"{path.name}.{folder_name(study_name)}")):
            yield
        return
    engine = rdb_engine(storage)
    dialect = engine.dialect.name if engine is not None else ""
    if dialect == "sqlite" or isinstance(storage, optuna.storages.InMemoryStorage) or \
            isinstance(getattr(storage, "_backend", None), optuna.storages.InMemoryStorage):
        with _PROCESS_LOCK:
            yield
        return
    if dialect not in ("postgresql", "mysql"):
        raise StorageError(f"attnas has no study lock for storage {url!r} ({dialect or type(storage).__name__}); use "
                           f"SQLite, PostgreSQL, MySQL or a journal file")
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha1(f"attnas:{study_name}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        if dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        else:
            connection.execute(text("SELECT GET_LOCK(:key, 600)"), {"key": str(key)})
        try:
            yield
        finally:
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            else:
                connection.execute(text("SELECT RELEASE_LOCK(:key)"), {"key": str(key)})


#: the study lock of storages only this process sees (in-memory SQLite, Optuna's InMemoryStorage)
_PROCESS_LOCK = threading.RLock()


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study lives in (no public accessor in Optuna 5)."""
    return study._storage


def rdb_engine(storage: optuna.storages.BaseStorage) -> Any:
    """The SQLAlchemy engine of an RDB storage, unwrapping Optuna's `_CachedStorage`; None for others."""
    backend = getattr(storage, "_backend", storage)
    return getattr(backend, "engine", None)


def serialise_popping(study: optuna.Study, url: str) -> None:
    """Two worker processes starting together on SQLite can both take the same queued trial, train
    it twice and fail on the second `tell`: take the queued trial under the study's lock, which
    makes Optuna's check-then-set atomic (PostgreSQL and MySQL honour FOR UPDATE and need nothing).
    Optuna's own method is wrapped, not replaced."""
    pop = study._pop_waiting_trial_id

    def locked_pop():
        with study_lock(storage_of(study), url, study.study_name):
            return pop()

    study._pop_waiting_trial_id = locked_pop
