"""Storages a study can live in: a real PostgreSQL server, SQLite, a journal file."""

import optuna
import pytest

from attnas.search.storage import make_storage, with_driver


def test_postgresql_urls_get_an_installed_driver_or_a_one_line_error(monkeypatch):
    import importlib.util

    assert with_driver("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"  # psycopg 3 (attnas[postgres])
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # the user's choice stands
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("psycopg", "psycopg2") else real(name, *a))
    with pytest.raises(ValueError, match="needs a database driver, and none is installed: pip install 'attnas\\[postgres\\]'"):
        with_driver("postgresql://u@h/db")


def test_a_study_lives_in_a_real_postgresql_server(postgres_url):
    storage = make_storage(postgres_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="pg", storage=storage, directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=3)
    again = optuna.load_study(study_name="pg", storage=postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    assert len(again.trials) == 3 and again.trials[0].state.name == "COMPLETE"
