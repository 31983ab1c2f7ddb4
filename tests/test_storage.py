"""Storages a study can live in: a real PostgreSQL server, SQLite, a journal file; what is refused
before Optuna touches it (bad URLs, damaged or foreign files and databases, unreachable servers);
and the study lock on each."""

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from attnas.search.analysis.export import load_study
from attnas.search.storage import make_storage, rdb_engine, storage_of, study_lock, with_driver
from attnas.search.storage_checks import StorageError

optuna.logging.set_verbosity(optuna.logging.WARNING)


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


# -- a URL, file or server that cannot hold a study: one line, before Optuna touches it --------------------------------


@pytest.mark.parametrize("url, message", [
    ("sqllite:///runs/x.db", "unknown scheme 'sqllite'; did you mean sqlite://...?"),
    ("postgres://attnas@db/attnas", "write postgresql://attnas@db/attnas"),
    ("sqlite://runs/x.db", "three slashes before the path, sqlite:///runs/x.db"),
    ("runs/x.db", "is not a URL; use sqlite:///PATH.db"),
])
def test_a_bad_storage_url_is_one_line_naming_the_fix(url, message):
    with pytest.raises(StorageError, match=re.escape(message)) as refused:
        make_storage(url)
    assert "\n" not in str(refused.value)


def _tables(path):
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_sqlite_database_of_another_program_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="is a database of another program \\(tables customers\\), not an Optuna storage"):
        make_storage(f"sqlite:///{path}")
    assert path.read_bytes() == before and _tables(path) == {"customers"}  # Optuna did not add its 13 tables


def _optuna_file(tmp_path) -> bytes:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'good.db'}")
    for _ in range(40):
        study.enqueue_trial({"x": 0.5}, user_attrs={"note": "x" * 2000})  # pages beyond the first ones
    return (tmp_path / "good.db").read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "is damaged"),  # truncated: a copy cut short, a full disk
    (lambda data: data[:4096] + os.urandom(len(data) - 4096), "is damaged"),  # overwritten past its header
    (lambda data: os.urandom(len(data)), "is not a SQLite database"),
])
def test_a_damaged_sqlite_file_is_refused_in_one_line(tmp_path, damage, message):
    path = tmp_path / "study.db"
    path.write_bytes(damage(_optuna_file(tmp_path)))
    with pytest.raises(StorageError, match=message) as refused:
        make_storage(f"sqlite:///{path}")
    assert "restore it from a copy" in str(refused.value) or "new path" in str(refused.value)


def test_an_empty_file_or_a_new_path_is_a_new_study_and_a_study_is_read_without_creating_files(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    optuna.create_study(study_name="new", storage=make_storage(f"sqlite:///{tmp_path / 'empty.db'}", None))
    assert "studies" in _tables(tmp_path / "empty.db")
    with pytest.raises(FileNotFoundError, match="no storage file at .*run attnas-search first"):
        load_study(f"sqlite:///{tmp_path / 'typo.db'}", "new")
    assert not (tmp_path / "typo.db").exists()


def test_a_journal_that_is_not_optunas_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "study.journal"
    path.write_text("a log of another program\n")
    with pytest.raises(StorageError, match="is not an Optuna journal, or is damaged \\(line 1"):
        make_storage(f"journal:{path}")
    assert path.read_text() == "a log of another program\n"
    good = tmp_path / "good.journal"
    optuna.create_study(study_name="j", storage=make_storage(f"journal:{good}"))
    good.write_text(good.read_text() + '{"op_code": 0, "cut')  # a last line cut by a killed writer is fine
    assert optuna.get_all_study_names(make_storage(f"journal:{good}")) == ["j"]


def test_an_unreachable_server_is_one_line_at_once(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"cannot open storage postgresql\\+psycopg://attnas@127.0.0.1:{port}/attnas: "
                                           ".*start the server") as refused:
        make_storage(f"postgresql://attnas@127.0.0.1:{port}/attnas")
    assert "\n" not in str(refused.value) and time.monotonic() - started < 20  # not Optuna's ten retries


def test_a_postgresql_database_of_another_program_or_a_missing_one_is_refused(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StorageError, match="is a database of another program \\(tables invoices\\)"):
        make_storage(postgres_url)
    with psycopg.connect(postgres_url) as connection:
        tables = [row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert tables == ["invoices"]
    with pytest.raises(StorageError, match='cannot open storage .*database "nowhere" does not exist'):
        make_storage(postgres_url.rsplit("/", 1)[0] + "/nowhere")


def test_the_apps_say_a_storage_problem_in_one_line_and_exit_2(tmp_path):
    foreign = tmp_path / "crm.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    runs = [("search_app", [f"storage=sqllite:///{tmp_path / 's.db'}", "evaluator=cost", f"hydra.run.dir={tmp_path / 'run'}"],
             "unknown scheme 'sqllite'"),
            ("report_app", [f"storage=sqlite:///{foreign}"], "is a database of another program")]
    for app, args, message in runs:
        done = subprocess.run([sys.executable, "-m", f"attnas.search.apps.{app}", "study_name=s", *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == 2 and message in output and "Traceback" not in output, output[-3000:]
        assert len(output.splitlines()) == 1, output
    assert _tables(foreign) == {"customers"}


# -- the study lock: real on every storage --------------------------------------------------------------------------------

_QUEUE_REFERENCES = """
import pathlib, sys, time, types, optuna
from attnas.search.storage import make_storage
from attnas.search.study import enqueue_references
from attnas.space import SpaceConfig, make_space
url, barrier, index = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
config = SpaceConfig(backbone="resnet18", positions=["layer3", "layer4"], blocks=["se", "cnl"], max_blocks=2,
                     references=["resnet18", "resnet18:layer3.1=cnl"])
study = optuna.load_study(study_name="lock", storage=make_storage(url, None))
queue = study.enqueue_trial
def slow_queue(*args, **kwargs):  # between reading what is queued and queueing: without a lock, every worker queues
    time.sleep(0.5)
    return queue(*args, **kwargs)
study.enqueue_trial = slow_queue
(barrier / index).touch()
while len(list(barrier.iterdir())) < 3:  # start together
    time.sleep(0.01)
enqueue_references(types.SimpleNamespace(study=study, url=url, space=make_space(config)), types.SimpleNamespace(space=config))
"""


@pytest.mark.parametrize("kind", ["postgresql", "sqlite", "journal"])
def test_three_workers_started_together_queue_the_references_exactly_once(tmp_path, request, kind):
    url = {"postgresql": lambda: request.getfixturevalue("postgres_url"), "sqlite": lambda: f"sqlite:///{tmp_path / 'study.db'}",
           "journal": lambda: f"journal:{tmp_path / 'study.journal'}"}[kind]()
    optuna.create_study(study_name="lock", storage=make_storage(url, None), directions=["maximize"])
    (tmp_path / "barrier").mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", _QUEUE_REFERENCES, url, str(tmp_path / "barrier"), str(i)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    queued = [t.user_attrs["reference_spec"] for t in optuna.load_study(study_name="lock", storage=make_storage(url, None)).trials]
    assert sorted(queued) == ["resnet18", "resnet18:layer3.1=cnl"], queued


def test_the_postgresql_lock_is_found_behind_optunas_cached_storage(postgres_url):
    study = optuna.create_study(study_name="wrapped", storage=make_storage(postgres_url, None))
    assert type(storage_of(study)).__name__ == "_CachedStorage"  # what Optuna hands a study
    assert rdb_engine(storage_of(study)).dialect.name == "postgresql"


def test_a_storage_without_a_study_lock_is_refused():
    class Elsewhere:  # a storage (say, a plugin's) that attnas cannot lock across processes
        pass

    with pytest.raises(StorageError, match="attnas has no study lock for storage 'redis://q' \\(Elsewhere\\)"):
        with study_lock(Elsewhere(), "redis://q", "s"):
            pass
