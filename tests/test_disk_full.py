"""A full disk, simulated by making writes raise OSError(ENOSPC) (or the storage answer SQLite's
"database or disk is full"): the search stops at once with one line and exit 2, the running
trial is FAIL with the reason, the same command resumes; the report and the export leave no
truncated file under a final name."""

import errno
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from attnas.search.analysis.export import export_spec
from attnas.search.analysis.report import write_report
from tests.test_analysis import HAND, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: `attnas-search` or `attnas-report` with one kind of write failing; argv: the app module, then its overrides
_APP_ON_A_FULL_DISK = """
import errno, pathlib, sys
import sqlalchemy.exc
import optuna.storages
from attnas.evaluators.cost_evaluators import CostEvaluator

fault = sys.argv[1]
if fault == "evaluation":  # the second spec's evaluation cannot write its results
    measure, calls = CostEvaluator.measure_cost, []
    def full(self, spec):
        calls.append(spec)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", "runs/full/evaluations.jsonl")
        return measure(self, spec)
    CostEvaluator.measure_cost = full
elif fault == "storage":  # from the second trial's metrics on, the storage cannot write anything
    Storage, full = optuna.storages.RDBStorage, []
    def refusing(method):
        def call(self, trial_id, *args, **kwargs):
            key = kwargs.get("key", args[0] if args else None)
            if full or (method == "set_trial_user_attr" and key == "metrics" and trial_id > 1):
                full.append(1)
                raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("database or disk is full"))
            return getattr(Storage, "_real_" + method)(self, trial_id, *args, **kwargs)
        return call
    for method in ("set_trial_user_attr", "set_trial_state_values", "set_trial_system_attr"):
        setattr(Storage, "_real_" + method, getattr(Storage, method))
        setattr(Storage, method, refusing(method))
elif fault == "report":  # the dashboard's text cannot be written whole
    write_text = pathlib.Path.write_text
    def full(self, text, *args, **kwargs):
        if "dashboard.html" in self.name:
            write_text(self, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_text(self, text, *args, **kwargs)
    pathlib.Path.write_text = full
module = __import__(f"attnas.search.apps.{sys.argv[2]}", fromlist=["main"])
sys.argv = [sys.argv[2], *sys.argv[3:]]
module.main()
"""

SEARCH = ["evaluator=cost", "space=resnet18", "n_trials=4", "progress=false", "study_name=full", "heartbeat_interval=1",
          "grace_period=2"]


def _run(folder: Path, fault: str, app: str, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", _APP_ON_A_FULL_DISK, fault, app, *args], capture_output=True, text=True,
                          timeout=600, cwd=folder)
    return done.returncode, done.stdout + done.stderr


def _problems(output: str) -> list[str]:
    """Lines that are not progress: warnings, errors, tracebacks."""
    return [line for line in output.splitlines() if re.search(r"\[(WARNING|ERROR)\]|Traceback|Error", line)]


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="full", storage=f"sqlite:///{folder / 'runs' / 'full' / 'study.db'}")


def test_a_full_disk_stops_the_search_in_one_line_and_the_same_command_resumes(tmp_path):
    code, output = _run(tmp_path, "evaluation", "search_app", *SEARCH)
    assert code == 2, output[-3000:]
    assert _problems(output) == [line for line in output.splitlines() if "[ERROR]" in line], output[-3000:]
    (line,) = _problems(output)
    assert line.endswith("disk full writing runs/full/evaluations.jsonl (No space left on device); free space there, "
                         "then run the same command to resume"), line
    study = _study(tmp_path)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL], states  # stopped at once, not a trial per remaining slot
    assert study.trials[1].user_attrs["error"].startswith("halted: disk full writing runs/full/evaluations.jsonl")
    assert not (tmp_path / "runs" / "full" / "report").exists()
    code, output = _run(tmp_path, "none", "search_app", *SEARCH)  # space freed: the same command
    assert code == 0, output[-3000:]
    assert sum(t.state == TrialState.COMPLETE for t in _study(tmp_path).trials) == 4


def test_a_storage_that_cannot_write_stops_the_search_in_one_line_and_its_trial_is_failed_on_resume(tmp_path):
    code, output = _run(tmp_path, "storage", "search_app", *SEARCH)
    assert code == 2, output[-3000:]
    (line,) = _problems(output)
    assert line.endswith("disk full: database or disk is full; free space there, then run the same command to resume"), line
    stuck = [t.number for t in _study(tmp_path).trials if t.state == TrialState.RUNNING]  # nothing could mark it FAIL
    code, output = _run(tmp_path, "none", "search_app", *SEARCH)
    assert code == 0, output[-3000:]
    study = _study(tmp_path)
    assert [study.trials[n].state for n in stuck] == [TrialState.FAIL] * len(stuck)  # its heartbeat stopped: failed
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4


def test_the_report_on_a_full_disk_keeps_the_last_whole_dashboard_and_says_so_in_one_line(tmp_path):
    storage = f"sqlite:///{tmp_path / 'hand.db'}"
    out = tmp_path / "report"
    write_report(make_study(HAND, storage=storage), out)
    whole = (out / "dashboard.html").read_text()
    code, output = _run(tmp_path, "report", "report_app", f"storage={storage}", "study_name=hand", f"out={out}")
    lines = output.strip().splitlines()  # what the report is writing, then the one line of the fault
    assert code == 2 and sum("disk full" in line for line in lines) == 1 and "disk full" in lines[-1], output[-3000:]
    assert "disk full writing" in output and ".dashboard.html.partial-" in output and "Traceback" not in output
    assert (out / "dashboard.html").read_text() == whole  # never a half-written page under the final name
    assert sorted(p.name for p in out.iterdir()) == ["architectures.csv", "dashboard.html", "front.csv", "summary.json"]


def test_reports_and_exports_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import pathlib

    write_text = pathlib.Path.write_text

    def full(self, text, *args, **kwargs):
        write_text(self, text[:10])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    study = make_study(HAND)
    with pytest.raises(OSError, match="No space left"):
        write_report(study, tmp_path / "report")
    with pytest.raises(OSError, match="No space left"):
        export_spec(study, "knee", tmp_path / "export", allow_unconfirmed=True)  # gets as far as writing
    left = [p.name for folder in ("report", "export") if (tmp_path / folder).exists() for p in (tmp_path / folder).iterdir()]
    assert left == [], left  # no final name, no temporary
