"""`frontier`: a sampler that knows the structure of this search problem.

Built because the general samplers fall short on it (bench/search_efficiency.py): at 50 trials on
the 2-block ResNet-50 table they find a share of the best front that leaves most of the gap to
an exhaustive search. Two facts of the problem are left unused by them:

* a spec's cost is additive over its blocks and known before training: from a device profile
  exactly, or learned from a few measured trials (nearly noise-free);
* a block's effect on accuracy depends mostly on its type and stage, a little on its exact
  position, and adds up with diminishing returns.

So each objective gets a Bayesian linear model over placement features (block x stage counts,
plus block x position indicators with half the prior spread), fitted to the finished trials
(objective values standardised, prior effect SD 1, noise from the residuals). A proposal draws
one set of coefficients from each posterior (Thompson sampling), scores a pool of candidate specs
(every spec with at most one block, random specs of the space, and one-block moves around the
current front) with the drawn models, or with the profile for the latency, and proposes the
candidate that adds the most hypervolume to the front of the finished trials as the same drawn
models see them (one noisy seed of a finished trial would otherwise set the bar). Specs already
evaluated are not proposed again, nor are specs whose known cost already breaks a constraint (a
search would record them untrained, but they would still take a trial); a learned cost only puts
the candidates its drawn model expects to break a constraint last. The first `n_startup_trials` (after the enqueued references)
are random. Two objectives only; with more, the acquisition is a random weighted sum (ParEGO).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import optuna
from attnas.evaluators.metric_registry import constraint_violation
from attnas.models.backbones import layout
from attnas.search.pareto import hypervolume_gains, pareto_mask
from attnas.space import ArchSpec, BlockChoice, SearchSpace
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState


@dataclass
class FrontierContext:
    """What the sampler is told about the search: its space, and the cost it can predict."""

    space: SearchSpace
    objectives: list[str]
    known: dict[str, Callable[[ArchSpec], float]]  # metric -> exact predictor (a device profile's latency)
    limits: dict[str, float] = field(default_factory=dict)  # the study's constraints: metric -> bound


def _features(space: SearchSpace) -> tuple[dict, dict, int]:
    """Column of each (block, stage) count and (block, position) indicator; the last `limit`
    columns say how many blocks a spec has (what diminishing returns depend on)."""
    stages = {stage.name: i for i, stage in enumerate(layout(space.backbone).stages)}
    choices = [str(c) for c in space.choices]
    stage_index = {(c, s): i for i, (c, s) in enumerate(itertools.product(choices, stages))}
    position_index = {(c, p): len(stage_index) + i for i, (c, p) in enumerate(itertools.product(choices, space.allowed_positions))}
    return stage_index, position_index, len(stage_index) + len(position_index) + space.limit


class FrontierSampler(BaseSampler):
    def __init__(self, context: FrontierContext, n_startup_trials: int = 10, candidates: int = 1500,
                 seed: int | None = None) -> None:
        self.context = context
        self.n_startup_trials = n_startup_trials
        self.candidates = candidates
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any]] = {}
        self._stage_index, self._position_index, self._width = _features(context.space)
        self._prior = np.array([1.0] * len(self._stage_index) + [0.25] * len(self._position_index)
                               + [1.0] * context.space.limit)  # prior variances

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

    # -- the model ------------------------------------------------------------------------
    def _row(self, spec: ArchSpec) -> np.ndarray:
        row = np.zeros(self._width)
        for (position, choice), stage in zip(spec.blocks.items(), spec.stages().values()):
            row[self._stage_index[(str(choice), stage)]] += 1
            row[self._position_index[(str(choice), position)]] = 1
        if spec.num_blocks > 1:  # a spec with k blocks: columns 2..k, so each extra block adds its own offset
            row[self._width - self.context.space.limit + 1: self._width - self.context.space.limit + spec.num_blocks] = 1
        return row

    def _draw(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(offset, scale, one posterior draw of the standardised coefficients)."""
        offset, scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - offset) / scale
        residual = 1.0
        for _ in range(2):  # noise variance from the residuals of the posterior mean, twice
            precision = X.T @ X / residual + np.diag(1.0 / self._prior)
            covariance = np.linalg.inv(precision)
            mean = covariance @ X.T @ z / residual
            residual = max(float(np.mean((z - X @ mean) ** 2)), 1e-3)
        coefficients = self._rng.multivariate_normal(mean, (covariance + covariance.T) / 2, method="cholesky")
        return offset, scale, coefficients

    def _pool(self, evaluated: set[str], front: list[ArchSpec]) -> list[ArchSpec]:
        space, rng = self.context.space, self._rng
        pool = {str(ArchSpec(space.backbone)): ArchSpec(space.backbone)}
        choices = [str(c) for c in space.choices]
        for position in space.allowed_positions:
            for choice in choices:
                spec = ArchSpec(space.backbone, {position: choice})
                pool[str(spec)] = spec
        for _ in range(3 * self.candidates):  # bounded: a small space holds fewer specs than `candidates`
            if len(pool) >= self.candidates:
                break
            count = int(rng.integers(1, space.limit + 1))
            positions = rng.choice(space.allowed_positions, size=count, replace=False)
            spec = ArchSpec(space.backbone, {str(p): choices[int(rng.integers(len(choices)))] for p in positions})
            pool[str(spec)] = spec
        for spec in front:  # one-block moves around the front: add, drop, swap a block
            blocks = dict(spec.blocks)
            for position in space.allowed_positions:
                for choice in choices:
                    moved = dict(blocks) | {position: choice}
                    if len(moved) <= space.limit:
                        candidate = ArchSpec(space.backbone, moved)
                        pool[str(candidate)] = candidate
            for position in blocks:
                candidate = ArchSpec(space.backbone, {p: c for p, c in blocks.items() if p != position})
                pool[str(candidate)] = candidate
        checks = [(name, self.context.known[name], limit) for name, limit in self.context.limits.items()
                  if name in self.context.known]
        return [spec for key, spec in pool.items() if key not in evaluated and spec in space
                and all(constraint_violation(name, predict(spec), limit) <= 0 for name, predict, limit in checks)]

    def _plan(self, study: optuna.Study) -> Optional[dict[str, Any]]:
        space = self.context.space
        trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values is not None]
        if len(trials) < self.n_startup_trials:
            return None
        specs = [space.sample(optuna.trial.FixedTrial(t.params)) for t in trials]
        evaluated = {str(s) for s in specs} | {str(space.sample(optuna.trial.FixedTrial(t.params)))
                                               for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                                               if t.params and len(t.params) == len(trials[0].params)}
        directions = [d.name.lower() for d in study.directions]
        sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])  # to losses
        observed = np.array([t.values for t in trials], dtype=float) * sign
        feasible = np.array([all(v <= 0 for v in t.constraints.values()) for t in trials])
        base = observed[feasible] if feasible.any() else observed
        front_rows = _pareto(base)
        front_specs = [s for s, keep in zip([s for s, f in zip(specs, feasible) if f] if feasible.any() else specs, front_rows) if keep]
        pool = self._pool(evaluated, front_specs[:10])
        if not pool:
            return None
        X = np.array([self._row(s) for s in specs])
        C = np.array([self._row(s) for s in pool])
        predicted = np.zeros((len(pool), len(directions)))
        smoothed = base.copy()  # the front as the drawn models see it, not as one noisy seed showed it
        rows_base = X[feasible] if feasible.any() else X
        for k, name in enumerate(self.context.objectives):
            if name in self.context.known:
                predicted[:, k] = sign[k] * np.array([self.context.known[name](s) for s in pool])
            else:
                offset, scale, coefficients = self._draw(X, observed[:, k])
                predicted[:, k] = offset + scale * (C @ coefficients)
                smoothed[:, k] = offset + scale * (rows_base @ coefficients)
        base = smoothed
        front_rows = _pareto(base)
        reference = np.maximum(base.max(axis=0), predicted.max(axis=0)) + 0.1 * (np.ptp(base, axis=0) + 1e-9)
        if len(directions) == 2:
            gains = hypervolume_gains(base[front_rows], predicted, reference)
        else:  # ParEGO: a random weighted Chebyshev scalarisation
            weights = self._rng.dirichlet(np.ones(len(directions)))
            span = np.ptp(base, axis=0) + 1e-9
            gains = -np.max(weights * (predicted - base.min(axis=0)) / span, axis=1)
        # a learned cost under a constraint: candidates the drawn model expects to break it come last
        drawn = [(k, name) for k, name in enumerate(self.context.objectives)
                 if name in self.context.limits and name not in self.context.known]
        if drawn:
            expected_ok = np.array([all(constraint_violation(name, sign[k] * predicted[i, k], self.context.limits[name]) <= 0
                                        for k, name in drawn) for i in range(len(pool))])
            if expected_ok.any():
                gains = np.where(expected_ok, gains, -np.inf)
        best = int(np.argmax(gains + 1e-12 * self._rng.random(len(gains))))
        return space.params_for(pool[best])


def _pareto(loss: np.ndarray) -> np.ndarray:
    return pareto_mask(loss, ["minimize"] * loss.shape[1])


def make_frontier(cfg: Any, seed: Optional[int], context: Optional[FrontierContext]) -> FrontierSampler:
    if context is None:
        raise ValueError("the frontier sampler needs the search space: use it through attnas-search or pass a FrontierContext")
    return FrontierSampler(context, cfg.n_startup_trials, cfg.candidates, seed)
