"""The search driver: a multi-objective Optuna study over the space, resumable and shareable.

What a user relies on, and where it is kept:
* every trial stores its canonical spec and every metric as user attributes (so
  `study.trials_dataframe()` and optuna-dashboard show them);
* an architecture is trained once per study: a trial whose spec a finished trial already holds
  copies that trial's metrics (`duplicate_of`), and one that another worker is training waits for it;
* constraints go through `trial.set_constraint`, so infeasible trials are kept, ranked behind;
* a trial that raises is FAIL with its error stored, and the study goes on; Ctrl-C leaves the
  storage consistent (the interrupted trial is FAIL) and the same command resumes;
* `n_trials` is the number of finished trials the study should hold, across runs and workers.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Mapping

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from attnas.evaluators import CachedEvaluator
from attnas.search.factory import make_evaluator, make_sampler, make_space, make_storage, references
from attnas.search.objectives import directions
from attnas.space import SearchSpace

log = logging.getLogger("attnas.search")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


@dataclass
class SearchSetup:
    study: optuna.Study
    space: SearchSpace
    evaluator: CachedEvaluator
    objectives: list[str]
    constraints: dict[str, float]


def _check_or_record(study: optuna.Study, key: str, value: Any, hint: str) -> None:
    stored = study.user_attrs.get(key)
    if stored is None:
        try:
            study.set_user_attr(key, value)
        except Exception:  # noqa: BLE001 - another worker recorded it first; compare with theirs
            stored = study.user_attrs.get(key)
    if stored is not None and stored != value:
        raise ValueError(f"study {study.study_name!r} was run with {key}={stored!r}, this run has {value!r}; {hint}")


def setup(cfg: Mapping[str, Any], cache_path: str | None = None) -> SearchSetup:
    space = make_space(cfg["space"])
    objectives = list(cfg["evaluator"]["objectives"])
    dirs = directions(objectives)
    constraints = {str(k): float(v) for k, v in (cfg.get("constraints") or {}).items()}
    unknown = [k for k in constraints if k not in objectives and k not in ("latency_ms", "gflops", "params_m", "latency_ratio")]
    if unknown:
        raise ValueError(f"constraint(s) on {unknown} cannot be checked; constrain one of: latency_ratio, latency_ms, gflops, params_m, "
                         f"{', '.join(objectives)}")
    storage = make_storage(cfg["storage"], cfg.get("heartbeat_interval"), cfg.get("grace_period"), cfg.get("max_retry", 2))
    study = optuna.create_study(study_name=cfg["study_name"], storage=storage, directions=dirs,
                                sampler=make_sampler(cfg["sampler"], cfg.get("seed")), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != dirs:
        raise ValueError(f"study {study.study_name!r} exists with directions {[d.name.lower() for d in study.directions]}, "
                         f"this run asks {dirs} for {objectives}; pick another study_name")
    evaluator = make_evaluator(cfg["evaluator"], cfg["dataset"], cfg["device"], cache_path)
    hint = "results would not be comparable; use another study_name (or storage)"
    _check_or_record(study, "objectives", objectives, hint)
    _check_or_record(study, "space", space.describe(), hint)
    _check_or_record(study, "evaluator", evaluator.fingerprint(), hint)
    _check_or_record(study, "constraints", constraints, hint)
    if cfg.get("enqueue_references", True) and not study.trials:
        for spec in references(cfg["space"], space):
            study.enqueue_trial(space.params_for(spec), user_attrs={"reference": True}, skip_if_exists=True)
    return SearchSetup(study, space, evaluator, objectives, constraints)


def _metrics_of_duplicate(study: optuna.Study, spec: str, number: int, wait_s: float) -> tuple[int, dict] | None:
    """Metrics of a trial with the same spec: finished, or being trained by another worker."""
    deadline = time.monotonic() + wait_s
    while True:
        running = False
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number == number or other.user_attrs.get("spec") != spec:
                continue
            if other.state == TrialState.COMPLETE and "metrics" in other.user_attrs:
                return other.user_attrs.get("duplicate_of", other.number), other.user_attrs["metrics"]
            if other.state == TrialState.RUNNING and other.number < number:
                running = True
        if not running or time.monotonic() > deadline:
            return None
        time.sleep(2.0)


def make_objective(setup_: SearchSetup, duplicate_wait: float = 7200.0):
    space, evaluator, objectives, constraints = setup_.space, setup_.evaluator, setup_.objectives, setup_.constraints

    def objective(trial: optuna.Trial) -> list[float]:
        spec = space.sample(trial)
        key = str(spec)
        trial.set_user_attr("spec", key)
        trial.set_user_attr("num_blocks", spec.num_blocks)
        found = _metrics_of_duplicate(trial.study, key, trial.number, duplicate_wait)
        try:
            if found is not None:
                trial.set_user_attr("duplicate_of", found[0])
                metrics = found[1]
            else:
                metrics = evaluator.evaluate(spec)
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            log.warning("trial %d (%s) failed: %s", trial.number, key, error)
            raise
        trial.set_user_attr("metrics", metrics)
        if found is None:
            trial.set_user_attr("measured_on", evaluator.context())
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        for name, limit in constraints.items():
            trial.set_constraint(name, metrics[name] - limit)
        return [metrics[name] for name in objectives]

    return objective


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_search(cfg: Mapping[str, Any], cache_path: str | None = None) -> optuna.Study:
    s = setup(cfg, cache_path)
    study = s.study
    target = int(cfg["n_trials"])
    remaining = target - finished_trials(study)
    log.info("study %s: %s; %d of %d trials finished", study.study_name, s.space.describe(), target - max(remaining, 0), target)
    if remaining <= 0:
        return study
    bar = tqdm(total=target, initial=target - remaining, desc="trials", disable=not cfg.get("progress", True))

    def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        front = study_.best_trials
        bar.set_postfix(front=len(front), last=trial.user_attrs.get("spec", "?"))
        if finished_trials(study_) >= target:
            study_.stop()

    try:
        study.optimize(make_objective(s, cfg.get("duplicate_wait", 7200)), n_trials=remaining, timeout=cfg.get("timeout"),
                       n_jobs=int(cfg.get("workers", 1)), catch=(Exception,), callbacks=[on_trial])
    finally:
        bar.close()
    return study
