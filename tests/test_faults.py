"""Workers that die: many worker processes on one study, on a real PostgreSQL server, SQLite and a
journal file; one is killed with SIGKILL, SIGTERM or SIGINT in the middle of a trial.

What must hold: the killed trial is failed (by the heartbeat after `grace_period` for SIGKILL, at
once with its reason for SIGTERM/SIGINT) and queued again; the live workers are not held up by
it; the study ends with exactly `n_trials` COMPLETE trials; no (spec, seed) is trained twice
(every training the cache file records); no completed trial is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.faults
STUDY = "faults"


def _worker(folder: Path, storage: str, index: int, *extra: str) -> subprocess.Popen:
    """One `attnas-search` worker process (the tiny budget, slowed to a few seconds a trial)."""
    command = [sys.executable, "-m", "attnas.search.apps.search_app", "space=resnet18", "evaluator=tiny", "dataset.synth.ids=16",
               f"dataset.root={folder / 'synth'}", f"storage={storage}", f"study_name={STUDY}", "progress=false",
               "report=false", f"worker={index}", "heartbeat_interval=1", "grace_period=4", "evaluator.train.epochs=4",
               "evaluator.reference_repeats=1", f"hydra.run.dir={folder}", f"hydra.job.name=worker{index}",
               "device.threads=1", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _load(storage: str) -> optuna.Study:
    from attnas.search.storage import make_storage

    return optuna.load_study(study_name=STUDY, storage=make_storage(storage, heartbeat_interval=None))


def _prepare_data(folder: Path) -> None:
    from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate

    generate(folder / "synth", SynthConfig(ids=16))


def _running_trial(storage: str, deadline: float) -> optuna.trial.FrozenTrial:
    from attnas.search.storage import make_storage

    polled = make_storage(storage, heartbeat_interval=None)  # one connection pool for the whole wait
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=STUDY, storage=polled)
            running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if "spec" in t.user_attrs and "worker" in t.user_attrs]
            if running:
                return running[0]
        except KeyError:  # the study is not created yet
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


def _trainings(folder: Path) -> Counter:
    """(spec, seed) of every training that finished, as the shared cache file records them."""
    lines = (folder / "evaluations.jsonl").read_text().splitlines() if (folder / "evaluations.jsonl").exists() else []
    return Counter((e["spec"], e["seed"]) for e in map(json.loads, lines) if e.get("seed") is not None)


def _storage_url(kind: str, folder: Path, request) -> str:
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{folder / 'study.db'}" if kind == "sqlite" else f"journal:{folder / 'study.journal'}"


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_worker_killed_mid_trial_loses_nothing_and_the_study_ends_exactly_at_n_trials(tmp_path, request, kind, how):
    storage = _storage_url(kind, tmp_path, request)
    _prepare_data(tmp_path)
    workers = [_worker(tmp_path, storage, i, "n_trials=8") for i in range(3)]
    victim = _running_trial(storage, time.monotonic() + 120)
    pid = victim.user_attrs["worker"]["pid"]
    os.kill(pid, how)
    outputs = {w.pid: w.communicate(timeout=300)[0] for w in workers}
    codes = {w.pid: w.returncode for w in workers}
    assert codes[pid] == {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}[how], outputs[pid][-2000:]
    assert all(code == 0 for p, code in codes.items() if p != pid), {p: o[-2000:] for p, o in outputs.items()}
    if how != signal.SIGKILL:
        assert "Traceback" not in outputs[pid] and "run the same command to resume" in outputs[pid]
    study = _load(storage)
    states = Counter(t.state for t in study.trials)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    if how == signal.SIGKILL:  # nobody could say why: the heartbeat failed it, and it was queued again
        assert any(t.system_attrs.get("failed_trial") == victim.number for t in study.trials)
    else:
        assert killed.user_attrs["error"].startswith("interrupted:")
    assert states[TrialState.COMPLETE] == 8, states
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    trained = _trainings(tmp_path)
    assert trained and max(trained.values()) == 1, "a (spec, seed) was trained twice"
    complete_specs = {t.user_attrs["spec"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert {spec for spec, _ in trained} <= complete_specs | {killed.user_attrs["spec"]}


@pytest.mark.parametrize("kind", ["postgresql", "sqlite", "journal"])
def test_the_trial_target_holds_exactly_with_several_workers(tmp_path, request, kind):
    storage = _storage_url(kind, tmp_path, request)
    _prepare_data(tmp_path)
    workers = [_worker(tmp_path, storage, i, "n_trials=7", "evaluator.train.epochs=1") for i in range(4)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[-2000:] for o in outputs]
    study = _load(storage)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 7
    assert sum(t.user_attrs.get("reference_spec") is not None for t in study.trials) == 2  # queued once, by one worker
    trained = _trainings(tmp_path)
    assert max(trained.values()) == 1, "a (spec, seed) was trained twice"


def test_a_dead_workers_trial_does_not_hold_the_live_ones(tmp_path):
    """A worker dies while training the spec another worker then draws: the live one waits only
    until the heartbeat says the first is dead, then trains the spec itself."""
    from tests.test_search import config
    from attnas.search import study as search_study
    from attnas.search.trials import known_record

    cfg = config(tmp_path, "n_trials=1", "heartbeat_interval=1", "grace_period=2", "enqueue_references=false")
    setup = search_study.setup(cfg)
    storage = setup.study._storage
    dead = storage.create_new_trial(setup.study._study_id)  # a worker claims the plain backbone ...
    storage.set_trial_user_attr(dead, "spec", "resnet18")
    storage.set_trial_user_attr(dead, "claimed", 0.0)
    storage.record_heartbeat(dead)  # ... and dies: its heartbeat stops
    started = time.monotonic()
    known, collided = known_record(setup.study, "resnet18", 99, time.time(), wait_s=7200)
    assert known is None and collided and time.monotonic() - started < 30  # seconds, not the two hours of duplicate_wait
    assert setup.study.trials[0].state == TrialState.FAIL


def test_workers_starting_together_on_sqlite_never_take_the_same_queued_trial(tmp_path):
    """Optuna's hand-over of a queued trial is not atomic on SQLite; attnas serialises it."""
    from tests.test_search import config
    from attnas.search import study as search_study

    cfg = config(tmp_path, "n_trials=1", "enqueue_references=false")
    setup = search_study.setup(cfg)
    for _ in range(20):
        setup.study.enqueue_trial({})
    script = ("import sys, optuna; from attnas.search.storage import make_storage, serialise_popping; "
              f"s = optuna.load_study(study_name={cfg.study_name!r}, storage=make_storage({cfg.storage!r}, None)); "
              f"serialise_popping(s, {cfg.storage!r}); "
              "print(' '.join(str(s._pop_waiting_trial_id()) for _ in range(5)))")
    jobs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    taken = [int(n) for job in jobs for n in job.communicate(timeout=120)[0].split()]
    assert len(taken) == 20 and len(set(taken)) == 20  # every queued trial went to exactly one worker
