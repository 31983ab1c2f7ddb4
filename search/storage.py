"""Optuna storages from a URL, with heartbeats for RDB storages so a killed worker's trial is
failed and retried instead of staying RUNNING forever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna


def make_storage(url: str, heartbeat_interval: int | None = 60, grace_period: int | None = 300, max_retry: int = 2):
    """An Optuna storage from a URL; RDB storages get heartbeats so a killed worker's trial is
    failed and retried instead of staying RUNNING forever."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in url:
        raise ValueError(f"storage {url!r} is not a URL; use sqlite:///PATH.db, postgresql://..., or journal:PATH")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several workers on one SQLite file wait for each other's writes (the default 5 s gives
        # 'database is locked' as soon as a few heartbeats and trial writes collide)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    if heartbeat_interval:
        kwargs |= dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    return _create_rdb_storage(url, kwargs)


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
