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
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from attnas.evaluators import CachedEvaluator, make_evaluator
from attnas.evaluators.metric_registry import METRICS, constraint_violation, directions
from attnas.search.config import ConfigError, SearchConfig
from attnas.search.samplers import make_sampler
from attnas.search.storage import make_storage
from attnas.space import SearchSpace, make_space, references

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


def check_metrics(objectives: list[str], constraints: dict[str, float], produced: tuple[str, ...], evaluator: str) -> None:
    """Refuse, before any work, objectives and constraints the evaluator cannot produce."""
    directions(objectives)
    for kind, names in (("objective", objectives), ("constraint", list(constraints))):
        for name in names:
            if name not in produced:
                valid = [m for m in produced if METRICS.get(m) is not None and METRICS[m].direction]
                raise ConfigError(f"{kind} {name!r} is not a metric of the {evaluator!r} evaluator; valid: {', '.join(valid)}")
    for name in constraints:
        constraint_violation(name, 0.0, 0.0)  # refuses metrics with no direction


def setup(cfg: SearchConfig, cache_path: str | None = None, workdir: str | None = None) -> SearchSetup:
    space = make_space(cfg.space)
    objectives = list(cfg.evaluator.objectives)
    dirs = directions(objectives)
    constraints = {str(k): float(v) for k, v in cfg.constraints.items()}
    if workdir is None and cache_path is not None:
        workdir = str(Path(cache_path).parent)
    evaluator = make_evaluator(cfg.evaluator, cfg.dataset, cfg.device, workdir, cache_path)
    check_metrics(objectives, constraints, evaluator.produces(), cfg.evaluator.name)
    storage = make_storage(cfg.storage, cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, directions=dirs,
                                sampler=make_sampler(cfg.sampler, cfg.seed), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != dirs:
        raise ValueError(f"study {study.study_name!r} exists with directions {[d.name.lower() for d in study.directions]}, "
                         f"this run asks {dirs} for {objectives}; pick another study_name")
    hint = "results would not be comparable; use another study_name (or storage)"
    _check_or_record(study, "objectives", objectives, hint)
    _check_or_record(study, "space", space.describe(), hint)
    _check_or_record(study, "evaluator", evaluator.fingerprint(), hint)
    _check_or_record(study, "constraints", constraints, hint)
    if cfg.enqueue_references and not study.trials:
        for spec in references(cfg.space, space):
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


def evaluate_spec(evaluator: CachedEvaluator, spec, seeds: list[int]) -> dict[str, float]:
    """Cost first (cheap, seed-independent), then the score of every seed, averaged."""
    metrics = evaluator.measure_cost(spec)
    scores = [evaluator.score(spec, seed) for seed in seeds]
    for name in scores[0] if scores else ():
        metrics[name] = sum(score[name] for score in scores) / len(scores)
    return metrics


def make_objective(setup_: SearchSetup, duplicate_wait: float = 7200.0, seed: int = 0):
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
                metrics = evaluate_spec(evaluator, spec, [seed])
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
            trial.set_constraint(name, constraint_violation(name, metrics[name], limit))
        return [metrics[name] for name in objectives]

    return objective


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_search(cfg: SearchConfig, cache_path: str | None = None, workdir: str | None = None) -> optuna.Study:
    """Set the study up (config errors surface here, before any work), prepare the evaluator
    (data, parent), then search."""
    prepared = setup(cfg, cache_path, workdir)
    prepared.evaluator.prepare(prepared.space.backbone)
    return search(prepared, cfg)


def search(s: SearchSetup, cfg: SearchConfig) -> optuna.Study:
    study = s.study
    target = int(cfg.n_trials)
    remaining = target - finished_trials(study)
    log.info("study %s: %s; %d of %d trials finished", study.study_name, s.space.describe(), target - max(remaining, 0), target)
    if remaining <= 0:
        return study
    bar = tqdm(total=target, initial=target - remaining, desc="trials", disable=not cfg.progress)

    def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        front = study_.best_trials
        bar.set_postfix(front=len(front), last=trial.user_attrs.get("spec", "?"))
        if finished_trials(study_) >= target:
            study_.stop()

    try:
        study.optimize(make_objective(s, cfg.duplicate_wait, cfg.seed), n_trials=remaining, timeout=cfg.timeout,
                       n_jobs=cfg.workers, catch=(Exception,), callbacks=[on_trial])
    finally:
        bar.close()
    return study
