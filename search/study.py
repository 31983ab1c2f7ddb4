"""The search driver: a multi-objective Optuna study over the space, resumable and shareable.

What a user relies on, and where it is kept:
* every trial stores its canonical spec, its per-seed runs and every metric as user attributes
  (so `study.trials_dataframe()` and optuna-dashboard show them), and the objectives are named;
* an architecture is trained once per seed per study (see `trials`); the references enqueued
  first get `reference_repeats` seeds, and the pooled spread of repeated specs is the study's
  `noise_floor`;
* the references are queued once, under a study lock, whatever the number of workers, and queued
  again on resume when one is missing or failed (a Ctrl-C during the baseline loses nothing);
* constraints go through `trial.set_constraint`, so infeasible trials are kept, ranked behind;
* `n_trials` is the number of COMPLETE trials the study should hold, across runs and workers,
  never more: a trial that would exceed it is pruned as surplus; failed trials are reported and
  stop the search once there are `max_failures` of them;
* a trial that raises is FAIL with its error stored, and the study goes on; Ctrl-C or SIGTERM
  marks the running trial FAIL with the reason, and the same command resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from attnas.evaluators import CachedEvaluator, make_evaluator
from attnas.evaluators.metric_registry import METRICS, constraint_violation, directions
from attnas.search.config import ConfigError, SearchConfig
from attnas.search.frontier import FrontierContext
from attnas.search.interrupts import Terminated
from attnas.search.names import check_study_name, folder_name
from attnas.search.samplers import make_sampler
from attnas.search.storage import make_storage, serialise_popping, storage_of, study_lock
from attnas.search.trials import make_objective
from attnas.space import SearchSpace, make_space, references

log = logging.getLogger("attnas.search")


@dataclass
class SearchSetup:
    study: optuna.Study
    space: SearchSpace
    evaluator: CachedEvaluator
    objectives: list[str]
    constraints: dict[str, float]
    url: str  # the storage URL, for the study lock


def _check_or_record(study: optuna.Study, key: str, value: Any, hint: str) -> None:
    stored = study.user_attrs.get(key)
    if stored is None:
        try:
            study.set_user_attr(key, value)
        except Exception:  # noqa: BLE001 - another worker recorded it first; compare with theirs
            stored = study.user_attrs.get(key)
    if stored is not None and stored != value:
        raise ValueError(f"study {study.study_name!r} was run with {key}={stored!r}, this run has {value!r}; {hint}")


def check_encoding(study: optuna.Study, encoding: str) -> None:
    """The space's encoding (`slots` or `positional`) decides which parameters a trial holds, so
    a study keeps the one it started with (older studies: read off their trials' parameters)."""
    if "encoding" not in study.user_attrs:
        used = {"slots" if any(name.startswith("slot") for name in t.params) else "positional"
                for t in study.get_trials(deepcopy=False) if t.params}
        if used and used != {encoding}:
            raise ValueError(f"study {study.study_name!r} was run with space.encoding={'/'.join(sorted(used))}, this run has "
                             f"{encoding!r}; set space.encoding={sorted(used)[0]} or use another study_name")
    _check_or_record(study, "encoding", encoding, f"set space.encoding={study.user_attrs.get('encoding')} or use another "
                                                  f"study_name")


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
    if cfg.n_trials < 0 or cfg.max_failures < 1 or cfg.workers < 1:
        raise ConfigError(f"n_trials must be >= 0, max_failures and workers >= 1; got n_trials={cfg.n_trials}, "
                          f"max_failures={cfg.max_failures}, workers={cfg.workers}")
    space = make_space(cfg.space)
    objectives = list(cfg.evaluator.objectives)
    dirs = directions(objectives)
    constraints = {str(k): float(v) for k, v in cfg.constraints.items()}
    if workdir is None and cache_path is not None:
        workdir = str(Path(cache_path).parent)
    evaluator = make_evaluator(cfg.evaluator, cfg.dataset, cfg.device, workdir, cache_path)
    check_metrics(objectives, constraints, evaluator.produces(), cfg.evaluator.name)
    evaluator.prepare()  # the data loaded and carved before the storage is touched: a bad dataset.root leaves no study
    url = cfg.storage or (f"sqlite:///{Path(workdir) / 'study.db'}" if workdir else None)
    if url is None:
        raise ConfigError("set storage=URL (sqlite:///PATH.db, postgresql://..., journal:PATH); attnas-search defaults "
                          "to runs/<study_name>/study.db")
    check_study_name(cfg.study_name)
    storage = make_storage(url, cfg.heartbeat_interval, cfg.grace_period, cfg.max_retry)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, directions=dirs, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != dirs:
        raise ValueError(f"study {study.study_name!r} exists with directions {[d.name.lower() for d in study.directions]}, "
                         f"this run asks {dirs} for {objectives}; pick another study_name")
    # seeded by the seed, the worker and how far the study is: a resumed study does not re-propose what
    # it holds, and workers of one study draw differently (ones started alike reseed when they collide)
    context = FrontierContext(space, objectives, {k: f for k, f in evaluator.predictors().items()
                                                  if k in objectives or k in constraints}, dict(constraints))
    study.sampler = make_sampler(cfg.sampler, sampler_seed(cfg.seed, cfg.worker or 0, len(study.trials)), cfg.n_trials, context)
    hint = "results would not be comparable; use another study_name (or storage)"
    _check_or_record(study, "objectives", objectives, hint)
    _check_or_record(study, "space", space.identity(), hint)
    check_encoding(study, space.resolved_encoding)
    if cfg.multifidelity.enabled:  # rungs of another size or eta would be ranked together
        _check_or_record(study, "multifidelity", {"rungs": list(cfg.multifidelity.rungs), "eta": cfg.multifidelity.eta}, hint)
    if folder_name(study.study_name) != study.study_name:
        study.set_user_attr("folder_name", folder_name(study.study_name))  # where its files are: runs/<folder_name>/
    _check_or_record(study, "evaluator", evaluator.fingerprint(), hint)
    timed_on = evaluator.context().get("timing_device")  # latency timed here: on the study's model of device only
    if timed_on:
        _check_or_record(study, "timing_device", timed_on, "this worker cannot time latencies comparable with the study's: "
                         "run it on that device, or take latency from a profile of it (evaluator.latency.source=profile "
                         "evaluator.latency.profile.path=PATH)")
    _check_or_record(study, "constraints", constraints, hint)
    if study.metric_names != objectives:  # optuna-dashboard and trials_dataframe show "mAP", not "values_0"
        study.set_metric_names(objectives)
    study.set_user_attr("evaluator_config", dataclasses.asdict(cfg.evaluator))
    study.set_user_attr("dataset_config", dataclasses.asdict(cfg.dataset))
    study.set_user_attr("software", software())
    if url.startswith("sqlite"):
        serialise_popping(study, url)
    prepared = SearchSetup(study, space, evaluator, objectives, constraints, url)
    if cfg.enqueue_references:
        enqueue_references(prepared, cfg)
    return prepared


def sampler_seed(seed: int, worker: int, trials: int) -> int:
    """A 32-bit seed from (seed, worker, trials so far), stable across processes."""
    import hashlib

    return int.from_bytes(hashlib.sha1(f"{seed}:{worker}:{trials}".encode()).digest()[:4], "big")


def enqueue_references(s: SearchSetup, cfg: SearchConfig) -> None:
    """Queue each configured reference that the study lacks (none complete, waiting or running),
    under the study lock, so workers starting together queue it once and a resumed study gets a
    failed or interrupted reference back."""
    with study_lock(storage_of(s.study), s.url, s.study.study_name):
        held = {t.user_attrs.get("reference_spec") for t in s.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))}
        complete = {t.user_attrs.get("spec") for t in s.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
        for spec in references(cfg.space, s.space):
            if str(spec) not in held and str(spec) not in complete:
                s.study.enqueue_trial(s.space.params_for(spec), user_attrs={"reference": True, "reference_spec": str(spec)})


def software() -> dict[str, str]:
    """Versions that shaped the numbers: attnas (and its git revision when run from a checkout), torch, optuna."""
    from importlib.metadata import version

    import torch

    here = Path(__file__).resolve().parent
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        revision, dirty = "", ""
    return {"attnas": version("attnas"), "git": (revision + ("+dirty" if dirty.strip() else "")) or "unknown",
            "torch": torch.__version__, "optuna": optuna.__version__}


def prepare(s: SearchSetup) -> None:
    """One-time work of the evaluator (data, validation split, parent), recorded in the study."""
    s.evaluator.prepare(s.space)
    provenance = s.evaluator.provenance()
    if "validation" in provenance:
        s.study.set_user_attr("validation", provenance["validation"])
        s.study.set_user_attr("data", provenance["data"])


def run_search(cfg: SearchConfig, cache_path: str | None = None, workdir: str | None = None) -> optuna.Study:
    """Set the study up (config errors surface here, before any work), prepare the evaluator
    (data, parent), then search, in this process (attnas-search starts `workers` processes)."""
    if cfg.workers != 1:
        raise ConfigError("workers > 1 starts worker processes, which attnas-search does; from Python, run one "
                          "run_search per process on the same storage")
    prepared = setup(cfg, cache_path, workdir)
    prepare(prepared)
    return search(prepared, cfg)


def count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def search(s: SearchSetup, cfg: SearchConfig) -> optuna.Study:
    study, target = s.study, cfg.n_trials
    done = count(study, TrialState.COMPLETE)
    log.info("study %s: %s; %d of %d trials complete", study.study_name, s.space.describe(), min(done, target), target)
    if done >= target:
        return study
    bar = tqdm(total=target, initial=done, desc="trials", disable=not cfg.progress)

    def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        complete, failed = count(study_, TrialState.COMPLETE), count(study_, TrialState.FAIL)
        bar.n = min(complete, target)
        bar.set_postfix(failed=failed, last=trial.user_attrs.get("spec", "?"))
        bar.refresh()
        if complete >= target:
            study_.stop()
        elif failed >= cfg.max_failures:
            log.error("stopping: %d trials failed (max_failures=%d); last error: %s", failed, cfg.max_failures,
                      trial.user_attrs.get("error", "?"))
            study_.stop()

    quiet_interrupts()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        study.optimize(make_objective(s, cfg), n_trials=None, timeout=cfg.timeout, catch=(Exception,), callbacks=[on_trial])
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return study


def _terminate(signum, frame) -> None:
    raise Terminated(f"signal {signum} (SIGTERM)")


class _OneLineInterrupts(logging.Filter):
    """Optuna logs a failed trial with its traceback; an interrupted one is said in the app's one
    line instead (`attnas.search.interrupts`: the trial's number travels with the interrupt)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a halt (SearchHalted is a KeyboardInterrupt) or an interrupt: the app says it, once
        return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def quiet_interrupts() -> None:
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _OneLineInterrupts) for f in handler.filters):
            handler.addFilter(_OneLineInterrupts())
