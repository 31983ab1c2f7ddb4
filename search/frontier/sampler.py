"""`FrontierSampler`: Optuna's sampler interface around the models, the pool and the acquisition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from attnas.evaluators.metric_registry import METRICS, constraint_violation
from attnas.search.frontier.acquisition import chebyshev_scores, hypervolume_gains_2d
from attnas.search.frontier.encoding import Key, SpecCoder
from attnas.search.frontier.model import FittedModel
from attnas.search.frontier.runs import records, runs, seed_noise
from attnas.search.pareto import pareto_mask
from attnas.space import ArchSpec, SearchSpace

#: prior spread of each column group before the study says otherwise (standardised units)
DEFAULT_SPREADS = {"stage": 1.0, "position": 0.25, "count": 1.0, "block_pair": 0.1, "pair": 0.1}


@dataclass
class FrontierContext:
    """What the sampler is told about the search: its space, and the cost it can predict."""

    space: SearchSpace
    objectives: list[str]
    known: dict[str, Callable[[ArchSpec], float]]  # metric -> exact predictor (a device profile's latency)
    limits: dict[str, float] = field(default_factory=dict)  # the study's constraints: metric -> bound


class FrontierSampler(BaseSampler):
    def __init__(self, context: FrontierContext, n_startup_trials: int = 10, candidates: int = 1500,
                 seed: int | None = None, draws: int = 4, explore: float = 0.0) -> None:
        wrong = [f"{name}={value}" for name, value, ok in (
            ("n_startup_trials", n_startup_trials, n_startup_trials >= 0), ("candidates", candidates, candidates >= 1),
            ("draws", draws, draws >= 1), ("explore", explore, 0.0 <= explore <= 1.0)) if not ok]
        if wrong:
            raise ValueError(f"frontier sampler: {', '.join(wrong)} is out of range; valid: n_startup_trials >= 0, "
                             f"candidates >= 1, draws >= 1, 0 <= explore <= 1")
        self.context = context
        self.draws = draws
        self.explore = explore
        self.n_startup_trials = n_startup_trials
        self.candidates = candidates
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, Optional[dict[str, Any]]] = {}
        self._coder = SpecCoder(context.space)
        self._keys: dict[int, Key] = {}  # trial number -> key
        self._known: dict[tuple[str, Key], float] = {}  # (metric, key) -> predicted cost

    # -- Optuna's sampler interface ---------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if trial.number not in self._plans:
            self._plans[trial.number] = self._plan(study)
        plan = self._plans[trial.number]
        if plan is None or param_name not in plan:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        return plan[param_name]

    # -- reading the study ------------------------------------------------------------------
    def _key(self, trial: FrozenTrial) -> Key:
        if trial.number not in self._keys:
            self._keys[trial.number] = self._coder.key(self.context.space.sample(optuna.trial.FixedTrial(trial.params)))
        return self._keys[trial.number]

    def _cost(self, name: str, key: Key) -> float:
        if (name, key) not in self._known:
            self._known[(name, key)] = float(self.context.known[name](self._coder.spec(key)))
        return self._known[(name, key)]

    # -- a proposal -------------------------------------------------------------------------
    def _plan(self, study: optuna.Study) -> Optional[dict[str, Any]]:
        context, coder = self.context, self._coder
        trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values is not None]
        if len(trials) < self.n_startup_trials:
            return None
        width = len(trials[0].params)
        held = records(trials, self._key)
        evaluated = {r.key for r in held} | {self._key(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                                            if t.params and len(t.params) == width}
        sign = np.array([-1.0 if d.name.lower() == "maximize" else 1.0 for d in study.directions])  # to losses
        observed = np.array([r.values for r in held], dtype=float) * sign
        feasible = np.array([r.feasible for r in held])
        base_rows = np.nonzero(feasible)[0] if feasible.any() else np.arange(len(held))
        first_front = base_rows[_pareto(observed[base_rows])]
        checks = [(name, limit) for name, limit in context.limits.items() if name in context.known]
        pool = [k for k in coder.pool(self._rng, self.candidates, [held[i].key for i in first_front[:10]])
                if k not in evaluated and all(constraint_violation(n, self._cost(n, k), lim) <= 0 for n, lim in checks)]
        if not pool:
            return None
        if self._rng.random() < self.explore:  # an exploratory proposal: any new spec of the pool
            return context.space.params_for(coder.spec(pool[int(self._rng.integers(len(pool)))]))
        X, C = coder.matrix([r.key for r in held]), coder.matrix(pool)
        draws = self.draws
        predicted = np.zeros((draws, len(pool), len(sign)))
        smoothed = np.repeat(observed[None], draws, axis=0)  # the front as the drawn models see it, not as one noisy seed showed it
        for k, name in enumerate(context.objectives):
            if name in context.known:
                predicted[:, :, k] = sign[k] * np.array([self._cost(name, key) for key in pool])
                continue
            rows, seeds, values = runs(held, k, name)
            metric = METRICS.get(name)
            model = FittedModel(X[rows], seeds, sign[k] * values, coder.groups, DEFAULT_SPREADS, seed_noise(trials, name),
                                seeded=metric is None or metric.seeded)
            coefficients = np.stack([model.draw(self._rng) for _ in range(draws)], axis=1)
            predicted[:, :, k] = model.predict(C, coefficients).T
            smoothed[:, :, k] = model.predict(X, coefficients).T
        gains = np.zeros(len(pool))
        for d in range(draws):  # Monte Carlo expected gain: the mean over joint draws of the models
            base = smoothed[d][base_rows]
            if len(sign) == 2:
                reference = np.maximum(base.max(axis=0), predicted[d].max(axis=0)) + 0.1 * (np.ptp(base, axis=0) + 1e-9)
                gains += hypervolume_gains_2d(base[_pareto(base)], predicted[d], reference) / draws
            else:
                gains += chebyshev_scores(base, predicted[d], self._rng) / draws
        predicted = predicted.mean(axis=0)
        # a learned cost under a constraint: candidates the drawn model expects to break it come last
        drawn = [(k, name) for k, name in enumerate(context.objectives) if name in context.limits and name not in context.known]
        if drawn:
            expected_ok = np.array([all(constraint_violation(name, sign[k] * predicted[i, k], context.limits[name]) <= 0
                                        for k, name in drawn) for i in range(len(pool))])
            if expected_ok.any():
                gains = np.where(expected_ok, gains, -np.inf)
        best = int(np.argmax(gains + 1e-12 * self._rng.random(len(gains))))
        return context.space.params_for(coder.spec(pool[best]))


def _pareto(loss: np.ndarray) -> np.ndarray:
    return pareto_mask(loss, ["minimize"] * loss.shape[1])


def make_frontier(cfg: Any, seed: Optional[int], context: Optional[FrontierContext]) -> FrontierSampler:
    if context is None:
        raise ValueError("the frontier sampler needs the search space: use it through attnas-search or pass a FrontierContext")
    return FrontierSampler(context, cfg.n_startup_trials, cfg.candidates, seed, cfg.draws, cfg.explore)
