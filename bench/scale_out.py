"""Scale-out: trials per hour with 1, 2 and 4 worker processes, and the storage's cost per trial.

* `case=throughput`: `attnas-search workers=N` on the tiny budget (ResNet-18, 64x32, seconds a
  trial) against a fresh SQLite file or a fresh database on a throw-away PostgreSQL server on
  this machine; wall seconds from launch to exit (process start, data loading and the report
  included), trials per hour, and how many trials each worker took.
* `case=overhead`: what the driver costs per trial at 1,000 trials, with an evaluator that
  answers instantly (so everything measured is Optuna's storage plus attnas's bookkeeping: the
  duplicate lookup, the noise floor, the trial target, heartbeats): milliseconds per trial over
  the first and the last hundred trials of a 1,000-trial study.

    python -m bench.scale_out [--storages sqlite,postgresql] [--workers 1,2,4] [--trials 16] [--overhead-trials 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from bench import postgres


class InstantEvaluator:
    """The evaluator protocol with no work: metrics drawn from the spec's hash."""

    def prepare(self, backbone=None):
        pass

    def produces(self):
        return ("mAP", "latency_ratio")

    def measure_cost(self, spec):
        return {"latency_ratio": 1 + int(hashlib.sha1(str(spec).encode()).hexdigest()[:4], 16) / 65536 / 10}

    def score(self, spec, seed):
        return {"mAP": int(hashlib.sha1(f"{spec}{seed}".encode()).hexdigest()[:4], 16) / 65536}

    def fingerprint(self):
        return "instant"

    def context(self):
        return {}

    def provenance(self):
        return {}

    def predictors(self):
        return {}


def throughput(storage: str, workers: int, trials: int, data: Path, folder: Path) -> tuple[float, dict[int, int]]:
    command = [sys.executable, "-m", "attnas.search.apps.search_app", "space=resnet18", "evaluator=tiny", "dataset.synth.ids=60",
               f"dataset.root={data}", f"storage={storage}", f"n_trials={trials}", f"workers={workers}", "progress=false",
               "report=false", "evaluator.reference_repeats=1", f"hydra.run.dir={folder}", "study_name=scale"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    seconds = time.perf_counter() - started
    from attnas.search.storage import make_storage

    study = optuna.load_study(study_name="scale", storage=make_storage(storage, heartbeat_interval=None))
    per_worker: dict[int, int] = {}
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            index = trial.user_attrs["worker"]["index"]
            per_worker[index] = per_worker.get(index, 0) + 1
    return seconds, per_worker


def overhead(storage: str, trials: int, folder: Path) -> tuple[float, float]:
    """ms per trial over the first and last 100 of `trials`, through attnas's objective."""
    from hydra import compose, initialize_config_module

    from attnas.evaluators import CachedEvaluator
    from attnas.search import study as search_study
    from attnas.search.apps.config import register_configs
    from attnas.search.apps.validate import typed

    register_configs()
    with initialize_config_module("attnas.conf", version_base="1.3"):
        cfg = typed(compose("config", overrides=["sampler=random", f"storage={storage}", f"n_trials={trials}",
                                                 "progress=false", "report=false", "evaluator.reference_repeats=2",
                                                 "study_name=overhead"]))
    real = search_study.make_evaluator
    search_study.make_evaluator = lambda *args, **kwargs: CachedEvaluator(InstantEvaluator())
    try:
        prepared = search_study.setup(cfg, workdir=str(folder))
    finally:
        search_study.make_evaluator = real
    stamps: list[float] = []
    objective = search_study.make_objective(prepared, cfg)
    for _ in range(trials):
        before = time.perf_counter()
        prepared.study.optimize(objective, n_trials=1)
        stamps.append(time.perf_counter() - before)
    first, last = stamps[:100], stamps[-100:]
    return 1000 * sum(first) / len(first), 1000 * sum(last) / len(last)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storages", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--overhead-trials", type=int, default=1000)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="attnas-scale-"))
    data = generate(base / "synth", SynthConfig(ids=60))
    print(f"# {os.cpu_count()} CPUs; tiny budget (ResNet-18, 64x32); {args.trials} trials per run", flush=True)
    with postgres.server() if "postgresql" in args.storages else _nothing() as address:
        for kind in args.storages.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                folder = base / f"{kind}-{workers}"
                folder.mkdir()
                storage = postgres.database(*address, f"scale_{workers}") if kind == "postgresql" else f"sqlite:///{folder / 'study.db'}"
                seconds, per_worker = throughput(storage, workers, args.trials, data, folder)
                print(f"case=throughput storage={kind} workers={workers} trials={args.trials} wall_s={seconds:.0f} "
                      f"trials_per_hour={args.trials / seconds * 3600:.0f} per_worker={sorted(per_worker.values())}", flush=True)
            folder = base / f"{kind}-overhead"
            folder.mkdir()
            storage = postgres.database(*address, "overhead") if kind == "postgresql" else f"sqlite:///{folder / 'study.db'}"
            first, last = overhead(storage, args.overhead_trials, folder)
            print(f"case=overhead storage={kind} trials={args.overhead_trials} ms_per_trial_first100={first:.0f} "
                  f"ms_per_trial_last100={last:.0f}", flush=True)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
