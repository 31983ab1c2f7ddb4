"""One trial of a search: a spec evaluated under its seeds, reusing what the study already knows.

A trial stores, besides the objective values:

* `seeds` and `per_seed` (`{"seeds": [0, 1, 2], "mAP": [...], ...}`): every training run;
* `metrics`: the cost metrics (latency, FLOPs, params; the same for every seed), the mean of
  each seeded metric, and `<metric>_se`, its standard error: the study's pooled seed noise
  (`noise_floor`) over sqrt(seeds) once the study has one, else NaN. Analysis recomputes the
  standard errors with the final noise floor.

A spec that an earlier trial holds is not trained again under a seed that trial has: its runs
are reused (across processes too: they are in the storage), and only missing seeds are trained.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from attnas.evaluators import CachedEvaluator
from attnas.evaluators.metric_registry import METRICS, constraint_violation, se_name
from attnas.search.faults import fault, halt_on_fault
from attnas.search.fidelity import promoted, rung_key
from attnas.search.noise import NoiseFloor, noise_floors, richest_records
from attnas.search.racing import schedule_race
from attnas.search.seed_blocks import fit_seed_blocked, gain_sentence, record_blocked_floor
from attnas.space import ArchSpec

if TYPE_CHECKING:
    from attnas.search.config import SearchConfig
    from attnas.search.study import SearchSetup

log = logging.getLogger("attnas.search")


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check (marked experimental since Optuna 2.9): trials whose worker
    stopped beating are failed, and re-queued by the storage's retry callback."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@dataclass
class Known:
    """What the study already holds of one spec."""

    number: int  # the trial that first evaluated it
    cost: dict[str, float]
    per_seed: dict[str, list] = field(default_factory=dict)  # {"seeds": [...], metric: [...]}

    def score(self, seed: int) -> dict[str, float] | None:
        seeds = self.per_seed.get("seeds", [])
        if seed not in seeds:
            return None
        index = seeds.index(seed)
        return {k: v[index] for k, v in self.per_seed.items() if k != "seeds"}


def known_record(study: optuna.Study, spec: str, number: int, claimed: float, wait_s: float) -> tuple[Known | None, bool]:
    """The richest finished record of `spec`. When another live trial claimed the same spec
    before this one (earlier `claimed` time; the trial number breaks ties, so every worker agrees
    on the order), wait for it (up to `wait_s`) rather than train the same spec twice. Returns
    the record and whether another live trial was found holding the same spec."""
    deadline = time.monotonic() + wait_s
    mine, collided = (claimed, number), False
    while True:
        fail_stale_trials(study)  # a dead worker's trial must not hold the live ones
        running, best = False, None
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number == number or other.user_attrs.get("spec") != spec:
                continue
            if other.state == TrialState.COMPLETE and "metrics" in other.user_attrs:
                per_seed = other.user_attrs.get("per_seed") or {}
                if best is None or len(per_seed.get("seeds", [])) > len(best.per_seed.get("seeds", [])):
                    cost = {k: v for k, v in other.user_attrs["metrics"].items() if k not in per_seed and not k.endswith("_se")}
                    best = Known(other.user_attrs.get("duplicate_of", other.number), cost, per_seed)
            elif other.state == TrialState.RUNNING and (other.user_attrs.get("claimed", 0.0), other.number) < mine:
                running = True
        collided |= running
        if running and time.monotonic() <= deadline:
            time.sleep(1.0)
            continue
        return best, collided


def evaluate(evaluator: CachedEvaluator, spec: ArchSpec, seeds: list[int], known: Known | None,
             cost: dict[str, float] | None = None) -> tuple[dict, dict, bool]:
    """(cost metrics, per-seed record, whether anything new was computed)."""
    fresh = known is None
    cost = cost if cost is not None else known.cost if known is not None else evaluator.measure_cost(spec)
    runs: dict[int, dict[str, float]] = {}
    if known is not None:  # keep every seed the study has, not only the ones asked for
        runs = {seed: known.score(seed) for seed in known.per_seed.get("seeds", [])}
    for seed in seeds:
        if seed not in runs:
            runs[seed] = evaluator.score(spec, seed)
            fresh = True
    ordered = sorted(runs)
    per_seed: dict[str, list] = {"seeds": ordered} if ordered and runs[ordered[0]] else {}
    for name in (runs[ordered[0]] if per_seed else {}):
        per_seed[name] = [runs[seed][name] for seed in ordered]
    return cost, per_seed, fresh


def summarise(cost: dict[str, float], per_seed: dict[str, list], floors: dict[str, NoiseFloor]) -> dict[str, float]:
    """Cost metrics, the mean of each seeded metric and its standard error."""
    metrics = dict(cost)
    n = len(per_seed.get("seeds", []))
    for name, values in per_seed.items():
        if name == "seeds":
            continue
        metrics[name] = sum(values) / n
        if name in METRICS and METRICS[name].seeded:
            metrics[se_name(name)] = floors[name].se(n) if name in floors else math.nan
    return metrics


def target_state(study: optuna.Study, number: int, target: int) -> str:
    """For trial `number`: `reached` when the study holds `target` COMPLETE trials, `full` when
    the complete ones plus those other workers started earlier (and are alive: stale ones are
    failed first) fill it, else `open`."""
    fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    if complete >= target:
        return "reached"
    running = sum(t.state == TrialState.RUNNING and t.number < number for t in trials)
    return "full" if complete + running >= target else "open"


def wait_for_a_slot(trial: optuna.Trial, target: int, wait_s: float) -> None:
    """Hold a trial that would exceed the target until a slot opens (a running trial failed,
    its worker died) or the target is reached (then the trial is pruned as surplus and this
    worker stops): the study ends with exactly `target` COMPLETE trials."""
    deadline = time.monotonic() + wait_s
    while (state := target_state(trial.study, trial.number, target)) != "open":
        if state == "reached" or time.monotonic() > deadline:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise optuna.TrialPruned(f"the study holds {target} complete trials")
        time.sleep(1.0)


def make_objective(s: "SearchSetup", cfg: "SearchConfig"):
    space, evaluator, objectives, constraints = s.space, s.evaluator, s.objectives, s.constraints
    seeded = [name for name in evaluator.produces() if name in METRICS and METRICS[name].seeded]

    def objective(trial: optuna.Trial) -> list[float]:
        try:
            return run_trial(trial)
        except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM, wherever it lands: Optuna marks the trial FAIL; say why
            with contextlib.suppress(Exception):  # the storage may already refuse (the trial failed by a heartbeat)
                trial.set_user_attr("error", f"interrupted: {str(interrupt) or 'SIGINT (Ctrl-C)'}")
            interrupt.add_note(f"running trial {trial.number}, which is marked FAIL with the reason")
            raise
        except Exception as error:  # a full disk or a lost storage stops the search (`search.faults`)
            halt_on_fault(trial, error)
            raise

    def run_trial(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(), "index": cfg.worker or 0})
        wait_for_a_slot(trial, cfg.n_trials, cfg.duplicate_wait)
        started = time.perf_counter()
        spec = space.sample(trial)
        key = str(spec)
        claimed = time.time()
        trial.set_user_attr("spec", key)
        trial.set_user_attr("claimed", claimed)
        trial.set_user_attr("num_blocks", spec.num_blocks)
        repeats = cfg.evaluator.reference_repeats if trial.user_attrs.get("reference") else cfg.evaluator.repeats
        repeats = max(repeats, trial.user_attrs.get("racing_seeds", 0))  # a race: one more seed (attnas.search.racing)
        seeds = [cfg.seed + i for i in range(max(repeats, 1))]
        try:
            known, collided = known_record(trial.study, key, trial.number, claimed, cfg.duplicate_wait)
            if collided:  # another worker drew the same spec at the same time: our samplers are in step
                trial.study.sampler.reseed_rng()
            cost = known.cost if known is not None else evaluator.measure_cost(spec)  # latency first: seconds
            broken = [f"{name} {cost[name]:.4g} breaks its limit {limit:g}" for name, limit in constraints.items()
                      if name in cost and constraint_violation(name, cost[name], limit) > 0]
            if broken and not cfg.train_infeasible and not (known and known.per_seed):
                return skip_training(trial, cost, broken, objectives, constraints, started)
            if cfg.multifidelity.enabled and not trial.user_attrs.get("reference") and not (known and known.per_seed):
                climb_rungs(trial, evaluator, spec, seeds[0], cost, objectives, cfg)
            cost, per_seed, fresh = evaluate(evaluator, spec, seeds, known, cost)
        except Exception as error:
            if fault(error) is not None:  # `objective` records it and halts
                raise
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
        finished = [*trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), _Pending(key, per_seed)]
        accuracy = next((o for o in objectives if o in seeded), seeded[0] if seeded else None)
        fit = fit_seed_blocked(richest_records(finished), accuracy, str(ArchSpec.parse(spec.backbone))) if accuracy else None
        record_blocked_floor(trial.study, accuracy, fit, log)
        gain = gain_sentence(fit, accuracy, key) if per_seed else ""
        log.info("trial %d %s: %s (%d seed%s%s)%s, %.0f s", trial.number, key, _describe(metrics, objectives),
                 len(per_seed.get("seeds", [])), "" if len(per_seed.get("seeds", [])) == 1 else "s",
                 f", copied from trial {known.number}" if not fresh and known is not None else "", gain, time.perf_counter() - started)
        if cfg.evaluator.racing:
            schedule_race(trial, space, objectives, [METRICS[o].direction for o in objectives], floors, constraints,
                          cfg.evaluator.racing_seeds, cfg.evaluator.racing_budget)
        return [metrics[name] for name in objectives]

    return objective


def skip_training(trial: optuna.Trial, cost: dict[str, float], broken: list[str], objectives: list[str],
                  constraints: dict[str, float], started: float) -> list[float]:
    """A spec whose cost already breaks a constraint: recorded infeasible, with its cost, untrained.
    Its accuracy objectives get the worst value (0 for a maximised fraction), which the
    constraint ranks behind every feasible trial anyway; analysis treats them as unknown."""
    reason = "; ".join(broken)
    placeholder = {o: (0.0 if METRICS[o].direction == "maximize" else math.inf) for o in objectives if o not in cost}
    trial.set_user_attr("trained", False)
    trial.set_user_attr("skipped", f"not trained: {reason}")
    trial.set_user_attr("metrics", cost | placeholder)
    for name, value in cost.items():
        trial.set_user_attr(name, value)
    for name, limit in constraints.items():
        trial.set_constraint(name, constraint_violation(name, (cost | placeholder)[name], limit))
    log.info("trial %d %s: infeasible before training (%s), not trained, %.0f s", trial.number, trial.user_attrs["spec"],
             reason, time.perf_counter() - started)
    return [(cost | placeholder)[o] for o in objectives]


def climb_rungs(trial: optuna.Trial, evaluator: CachedEvaluator, spec: ArchSpec, seed: int, cost: dict[str, float],
                objectives: list[str], cfg: "SearchConfig") -> None:
    """Train at each rung but the last; prune unless MO-ASHA promotes (see `search.fidelity`)."""
    settings = cfg.multifidelity
    for rung, fraction in enumerate(settings.rungs[:-1]):
        scores = evaluator.score(spec, seed, fraction)
        values = [(cost | scores)[o] for o in objectives]
        trial.set_user_attr(rung_key(rung), {"fidelity": fraction, "values": values, "metrics": scores})
        promote, position, count = promoted(trial.study, trial.number, rung, values, settings.eta)
        if not promote:
            trial.set_user_attr("pruned_at_rung", rung)
            log.info("trial %d %s: pruned at rung %d (fidelity %.3g): position %d of %d, promotion needs the best 1/%d",
                     trial.number, spec, rung, fraction, position + 1, count, settings.eta)
            raise optuna.TrialPruned(f"rung {rung}: position {position + 1} of {count}")


def _describe(metrics: dict[str, float], objectives: list[str]) -> str:
    parts = []
    for name in objectives:
        se = metrics.get(se_name(name))
        parts.append(f"{name} {metrics[name]:.4g}" + (f" ± {se:.2g}" if se is not None and math.isfinite(se) else ""))
    return ", ".join(parts)


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
