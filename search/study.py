"""The search driver: a multi-objective Optuna study over the space, resumable and shareable.

What a user relies on, and where it is kept:
* every trial stores its canonical spec and every metric as user attributes (so
  `study.trials_dataframe()` and optuna-dashboard show them);
* an architecture is trained once per seed per study: a trial whose spec a finished trial already
  holds reuses its runs (`duplicate_of` when nothing new was needed), and one that another worker
  is training waits for it; the references enqueued first get `reference_repeats` seeds, the
  others `repeats`, and the pooled spread of repeated specs is the study's `noise_floor`;
* constraints go through `trial.set_constraint`, so infeasible trials are kept, ranked behind;
* a trial that raises is FAIL with its error stored, and the study goes on; Ctrl-C leaves the
  storage consistent (the interrupted trial is FAIL) and the same command resumes;
* `n_trials` is the number of finished trials the study should hold, across runs and workers.
"""

from __future__ import annotations

import logging
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
from attnas.search.noise import noise_floors
from attnas.search.samplers import make_sampler
from attnas.search.storage import make_storage
from attnas.search.trials import evaluate, known_record, summarise
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


def make_objective(setup_: SearchSetup, cfg: SearchConfig):
    space, evaluator, objectives, constraints = setup_.space, setup_.evaluator, setup_.objectives, setup_.constraints
    seeded = [name for name in evaluator.produces() if name in METRICS and METRICS[name].seeded]

    def objective(trial: optuna.Trial) -> list[float]:
        spec = space.sample(trial)
        key = str(spec)
        trial.set_user_attr("spec", key)
        trial.set_user_attr("num_blocks", spec.num_blocks)
        repeats = cfg.evaluator.reference_repeats if trial.user_attrs.get("reference") else cfg.evaluator.repeats
        seeds = [cfg.seed + i for i in range(max(repeats, 1))]
        try:
            known = known_record(trial.study, key, trial.number, cfg.duplicate_wait)
            cost, per_seed, fresh = evaluate(evaluator, spec, seeds, known)
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            log.warning("trial %d (%s) failed: %s", trial.number, key, error)
            raise
        if not fresh and known is not None:
            trial.set_user_attr("duplicate_of", known.number)
        else:
            trial.set_user_attr("measured_on", evaluator.context())
        if per_seed:
            trial.set_user_attr("per_seed", per_seed)
        floors = noise_floors([*trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                               _Pending(key, per_seed)], seeded)
        metrics = summarise(cost, per_seed, floors)
        trial.set_user_attr("metrics", metrics)
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        for name, limit in constraints.items():
            trial.set_constraint(name, constraint_violation(name, metrics[name], limit))
        record_noise_floor(trial.study, floors)
        return [metrics[name] for name in objectives]

    return objective


@dataclass
class _Pending:
    """The trial being finished, as `noise_floors` reads trials."""

    spec: str
    per_seed: dict

    @property
    def user_attrs(self) -> dict:
        return {"spec": self.spec, "per_seed": self.per_seed}


def record_noise_floor(study: optuna.Study, floors: dict) -> None:
    """Store the study's seed noise (`noise_floor`) and log it when it changes."""
    value = {name: floor.to_dict() for name, floor in floors.items()}
    if value and value != study.user_attrs.get("noise_floor"):
        study.set_user_attr("noise_floor", value)
        for name, floor in floors.items():
            log.info("noise floor of %s: sd %.4f from %d specs, %d seeded runs", name, floor.sd, floor.specs, floor.seeds)


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
        study.optimize(make_objective(s, cfg), n_trials=remaining, timeout=cfg.timeout,
                       n_jobs=cfg.workers, catch=(Exception,), callbacks=[on_trial])
    finally:
        bar.close()
    return study
