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

import math
import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from attnas.evaluators import CachedEvaluator
from attnas.evaluators.metric_registry import METRICS, se_name
from attnas.search.noise import NoiseFloor
from attnas.space import ArchSpec


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


def known_record(study: optuna.Study, spec: str, number: int, wait_s: float) -> Known | None:
    """The richest finished record of `spec`; when a lower-numbered trial is still training it,
    wait for that trial (up to `wait_s`) rather than train the same spec twice."""
    deadline = time.monotonic() + wait_s
    while True:
        running, best = False, None
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number == number or other.user_attrs.get("spec") != spec:
                continue
            if other.state == TrialState.COMPLETE and "metrics" in other.user_attrs:
                per_seed = other.user_attrs.get("per_seed") or {}
                if best is None or len(per_seed.get("seeds", [])) > len(best.per_seed.get("seeds", [])):
                    cost = {k: v for k, v in other.user_attrs["metrics"].items() if k not in per_seed and not k.endswith("_se")}
                    best = Known(other.user_attrs.get("duplicate_of", other.number), cost, per_seed)
            elif other.state == TrialState.RUNNING and other.number < number:
                running = True
        if best is not None or not running or time.monotonic() > deadline:
            return best
        time.sleep(2.0)


def evaluate(evaluator: CachedEvaluator, spec: ArchSpec, seeds: list[int], known: Known | None) -> tuple[dict, dict, bool]:
    """(cost metrics, per-seed record, whether anything new was computed)."""
    fresh = known is None
    cost = known.cost if known is not None else evaluator.measure_cost(spec)
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
