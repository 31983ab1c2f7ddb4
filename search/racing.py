"""Racing (`evaluator.racing=true`): more seeds for the architectures whose place on the front is
undecided, before new ones are proposed, up to a seed budget.

One seed ranks architectures poorly (`bench/noise.py`: two seeds rank 12 specs alike at Kendall
tau 0.25), yet most of a study's candidates are clearly off the front after one. After each
finished trial the policy reads every trained, feasible architecture's probability of being on
the front (`front_probability`, accuracy known to the study's pooled seed noise over
sqrt(seeds), costs to their own standard error). The architectures between `UNDECIDED` are
undecided; the one closest to a coin toss (ties: fewer seeds, then the better first objective)
with fewer than `racing_seeds` seeds gets one more seed, as the next trial: an enqueued
re-proposal of its spec, which trains only the missing seed (`trials.evaluate`). The sampler is
not touched: a race is a trial like any other and counts towards `n_trials`.

The budget bounds the cost: races stop while the candidates' runs would exceed `racing_budget`
runs per distinct candidate (1.5: at most half a seed more per candidate on average).
`bench/evidence.py` measures what racing buys against fixed repeats.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from attnas.evaluators.metric_registry import METRICS, constraint_violation, se_name
from attnas.search.front_probability import probability_non_dominated
from attnas.search.noise import NoiseFloor
from attnas.space import ArchSpec

log = logging.getLogger("attnas.search")

#: a probability of being on the front inside this range is undecided
UNDECIDED = (0.1, 0.9)


def next_race(means: np.ndarray, ses: np.ndarray, directions: Sequence[str], seeds: np.ndarray, max_seeds: int,
              draws: int = 500, seed: int = 0) -> int | None:
    """The row to give one more seed, or None when every row is decided or has `max_seeds` seeds."""
    if len(means) == 0:
        return None
    p = probability_non_dominated(means, ses, list(directions), draws=draws, seed=seed)
    open_ = (p > UNDECIDED[0]) & (p < UNDECIDED[1]) & (np.asarray(seeds) < max_seeds)
    if not open_.any():
        return None
    first = np.asarray(means)[:, 0] * (1.0 if directions[0] == "maximize" else -1.0)
    order = np.lexsort((-first, np.asarray(seeds), np.abs(p - 0.5)))  # closest to 0.5, then fewer seeds, then better
    return int(next(i for i in order if open_[i]))


Row = tuple[list[float], list[float], int, bool]  # values, standard errors, seeds, whether a reference


def _rows(trials: list[Any], objectives: list[str], floors: dict[str, NoiseFloor]) -> dict[str, Row]:
    """spec -> (values, standard errors, seeds, reference) of each trained, feasible architecture (its richest trial)."""
    rows: dict[str, Row] = {}
    for t in trials:
        attrs = t.user_attrs
        metrics, spec = attrs.get("metrics") or {}, attrs.get("spec")
        if spec is None or attrs.get("trained") is False or any(v > 0 for v in (t.constraints or {}).values()):
            continue
        n = len((attrs.get("per_seed") or {}).get("seeds", [])) or 1
        reference = bool(attrs.get("reference") or attrs.get("reference_spec")) or (spec in rows and rows[spec][3])
        if spec in rows and rows[spec][2] >= n:
            rows[spec] = (*rows[spec][:3], reference)  # a re-proposal of a reference is still the reference
            continue
        values, ses = [], []
        for name in objectives:
            values.append(float(metrics.get(name, math.nan)))
            if name in METRICS and METRICS[name].seeded:
                ses.append(floors[name].se(n) if name in floors else math.nan)
            else:
                ses.append(float(metrics.get(se_name(name), 0.0)))
        rows[spec] = (values, ses, n, reference)
    return {s: r for s, r in rows.items() if all(math.isfinite(v) for v in r[0]) and all(math.isfinite(e) for e in r[1])}


class _Finished:
    """The trial being finished, as `_rows` reads trials (its constraint values from its metrics)."""

    def __init__(self, trial: optuna.Trial, limits: dict[str, float]) -> None:
        self.user_attrs = trial.user_attrs
        metrics = self.user_attrs.get("metrics") or {}
        self.constraints = {name: constraint_violation(name, metrics[name], limit)
                            for name, limit in limits.items() if name in metrics}


def schedule_race(trial: optuna.Trial, space: Any, objectives: list[str], directions: list[str], floors: dict[str, NoiseFloor],
                  constraints: dict[str, float], max_seeds: int, budget: float) -> str | None:
    """After `trial` (finished but not yet told), enqueue one more seed of the most undecided
    architecture when the budget allows; returns its spec."""
    study = trial.study
    if any(t.user_attrs.get("race_of") for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))):
        return None  # one race at a time
    trials = [*study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), _Finished(trial, constraints)]
    rows = _rows(trials, objectives, floors)
    candidates = {s: r for s, r in rows.items() if not r[3]}
    if not candidates or sum(r[2] for r in candidates.values()) + 1 > budget * len(candidates):
        return None
    specs = list(rows)
    chosen = next_race(np.array([rows[s][0] for s in specs]), np.array([rows[s][1] for s in specs]), directions,
                       np.array([rows[s][2] if not rows[s][3] else max_seeds for s in specs]), max_seeds, seed=len(trials))
    if chosen is None:
        return None
    spec = specs[chosen]
    study.enqueue_trial(space.params_for(ArchSpec.parse(spec)), user_attrs={"race_of": spec, "racing_seeds": rows[spec][2] + 1})
    log.info("racing: %s is undecided on the front; one more seed (%d) before new proposals", spec, rows[spec][2] + 1)
    return spec
