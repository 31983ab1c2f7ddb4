"""Ctrl-C and SIGTERM, sent for real to the apps at the moments a user sends them (tiny budgets):
one line saying what was interrupted and how to go on, exit 130 or 143, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.folders import prid_like

pytestmark = pytest.mark.slow  # each case starts an app and waits for its moment
VENV_BIN = Path(sys.executable).parent
SEARCH = ["space=resnet18", "evaluator=tiny", "progress=false", "evaluator.reference_repeats=1"]


def private(folder: Path) -> dict[str, str]:
    """The environment with a temporary folder of the test's own: the machine-wide device lock
    (a file in it) then pauses no training here for another process's latency timing."""
    return dict(os.environ, TMPDIR=str(folder))


def interrupt(command: list[str], moment: str, signum: int, cwd: Path, wait: float = 1.0) -> tuple[int, list[str]]:
    """Run `command`, send `signum` `wait` seconds after it prints `moment`; its exit status and lines."""
    app = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=private(cwd) | {"PYTHONUNBUFFERED": "1"})
    lines = []
    for line in app.stdout:
        lines.append(line.rstrip())
        if moment in line:
            time.sleep(wait)
            app.send_signal(signum)
            break
    else:
        raise AssertionError(f"{moment!r} never came: {lines[-5:]}")
    lines += app.communicate(timeout=120)[0].splitlines()
    return app.returncode, [line for line in lines if line.strip()]


def assert_one_line(code: int, lines: list[str], signum: int, what: str, then: str) -> None:
    kind = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], lines[-5:]
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    said = [line for line in lines if "interrupted (" in line or "terminated (" in line]
    assert len(said) == 1 and said[0] == lines[-1], lines[-5:]
    assert f"{kind} while {what}" in said[0] and said[0].endswith(then), said[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_the_synthetic_set_is_generated(tmp_path, signum):
    code, lines = interrupt([str(VENV_BIN / "attnas-search"), *SEARCH, "dataset.synth.ids=300",
                             f"dataset.root={tmp_path / 'synth'}"], "making the synthetic data set", signum, tmp_path)
    assert_one_line(code, lines, signum, "making the synthetic data set (300 ids) (nothing of it is kept)",
                    "run the same command to resume")
    assert not (tmp_path / "synth").exists()  # nothing half-written where the set belongs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_the_parent_trains_and_the_same_command_resumes(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-search"), *SEARCH, "dataset=folder", f"dataset.root={prid_like(tmp_path / 'prid')}",
               "evaluator.parent=tiny", "evaluator.parent_train.epochs=30", "n_trials=1", "report=false"]
    code, lines = interrupt(command, "training the parent", signum, tmp_path, wait=0.5)
    assert_one_line(code, lines, signum, "making the parent resnet18 (nothing of it is kept)", "run the same command to resume")
    (study,) = (tmp_path / "runs").iterdir()
    assert not list(study.glob("parent-*.pt"))
    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=private(tmp_path))
    assert resumed.returncode == 0 and list(study.glob("parent-*.pt")), resumed.stdout[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_the_supernet_trains(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-search"), *SEARCH, "evaluator=supernet", "evaluator.parent=null",
               "evaluator.num_val_ids=4", "dataset=folder", f"dataset.root={prid_like(tmp_path / 'prid')}",
               "evaluator.train.p=4", "evaluator.train.k=2", "evaluator.train.epochs=400"]
    code, lines = interrupt(command, "training the supernet", signum, tmp_path)
    assert_one_line(code, lines, signum, "making the supernet (nothing of it is kept)", "run the same command to resume")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_a_trial_runs(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-search"), *SEARCH, "dataset=folder", f"dataset.root={prid_like(tmp_path / 'prid')}",
               "evaluator.train.epochs=300", "n_trials=1"]
    code, lines = interrupt(command, "0 of 1 trials complete", signum, tmp_path, wait=3.0)
    assert_one_line(code, lines, signum, "running trial 0, which is marked FAIL with the reason", "run the same command to resume")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_profiling_and_the_same_command_resumes(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-profile"), "space=resnet18", "input_size=[64,32]", "repeats=200", "warmup=1",
               "progress=false", f"out={tmp_path / 'profile.json'}"]
    code, lines = interrupt(command, "profiling", signum, tmp_path, wait=2.0)
    assert_one_line(code, lines, signum, "profiling", "run the same command to resume where it stopped "
                                                      "(the measured entries are kept)")


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A small finished study to report on and export from."""
    folder = tmp_path_factory.mktemp("study")
    run = subprocess.run([str(VENV_BIN / "attnas-search"), *SEARCH, "dataset=folder", f"dataset.root={prid_like(folder / 'prid')}",
                          "n_trials=3", "report=false", "hydra.run.dir=run", "study_name=prid"], cwd=folder,
                         capture_output=True, text=True, timeout=600, env=private(folder))
    assert run.returncode == 0, run.stdout[-2000:]
    return f"sqlite:///{folder / 'run' / 'study.db'}"


@pytest.fixture(scope="module")
def large_study(tmp_path_factory):
    """A finished study of 300 trials, as attnas-search stores them: its report takes about 0.5 s
    after it says what it writes on an idle machine (3 trials take under 0.2 s, and an interrupt
    sent then landed after the app had ended)."""
    from bench.report_scale import synthetic_study

    storage = f"sqlite:///{tmp_path_factory.mktemp('large') / 'study.db'}"
    synthetic_study(storage, 300, name="prid")
    return storage


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_the_report_is_written(tmp_path, signum, large_study):
    command = [str(VENV_BIN / "attnas-report"), f"storage={large_study}", "study_name=prid", f"out={tmp_path / 'report'}"]
    code, lines = interrupt(command, "writing the report of prid", signum, tmp_path, wait=0.0)
    assert_one_line(code, lines, signum, "writing the report", "run the same command again")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_the_model_is_exported(tmp_path, signum, finished_study):
    command = [str(VENV_BIN / "attnas-export"), f"storage={finished_study}", "study_name=prid", "allow_unconfirmed=true", "confirm_seeds=0",
               "model=true", "untrained=true", f"out={tmp_path / 'export'}"]
    code, lines = interrupt(command, "picked", signum, tmp_path, wait=0.2)
    assert_one_line(code, lines, signum, "exporting", "run the same command again")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_attnas_train_trains(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-train"), "spec=resnet18", "dataset=folder", f"dataset.root={prid_like(tmp_path / 'prid')}",
               "budget=tiny", "train.epochs=300", f"out={tmp_path / 'trained'}"]
    code, lines = interrupt(command, "training resnet18: epoch", signum, tmp_path)
    assert_one_line(code, lines, signum, "training", "run the same command again")
    assert not (tmp_path / "trained" / "model.pt").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_while_attnas_synth_writes(tmp_path, signum):
    command = [str(VENV_BIN / "attnas-synth"), "--out", str(tmp_path / "synth"), "--ids", "300"]
    code, lines = interrupt(command, "making the synthetic data set", signum, tmp_path)
    assert_one_line(code, lines, signum, "making the synthetic data set (300 ids) (nothing of it is kept)",
                    "run the same command again")
    assert not (tmp_path / "synth").exists()
