"""Bayesian linear regression with one prior spread per column group, fitted to the study.

y = X w + s + e: w's columns in groups (see `encoding`), each group's coefficients Normal(0,
v_g); s the training seed's effect, shared by every run under that seed, Normal(0, v_seed);
e the residual, Normal(0, v_e). The spreads are chosen by type-II maximum likelihood (the
evidence the runs give for them), with a weak log-normal prior around each group's default so a
few trials cannot switch a group off or blow it up. So the groups the data do not support stay
near zero: on an additive problem the pair group shrinks away, on one carried by pairs it grows.
A seeded metric's residual has the same weak prior around half the variance (training is noisy:
a few lucky runs must not be read as structure); a cost's is left to the data (it is nearly exact).

The study's noise model sets the seed noise where it has something to say (`SeedNoise`): a
seed-blocked split fixes v_seed and puts a floor under v_e (misfit may add to it); the pooled seed
noise alone holds v_seed + v_e near its square, as tightly as its degrees of freedom allow;
without repeated specs the seed's effect gets a broad prior and the residual is fitted.

Draws of w (Thompson sampling) are exact posterior samples by pathwise conditioning (Wilson et
al., 2020): a prior draw corrected by the data, w = w0 + D X^T K^-1 (y - X w0 - s0 - e0), which
costs O(runs x columns) instead of a columns x columns inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

HYPERPRIOR_SD = 1.0  # of each log spread around its default
SEED_SPREAD = 1.0  # prior variance of a seed's effect (standardised), when the study's noise model has no split


@dataclass(frozen=True)
class SeedNoise:
    """What the study knows of its seed noise, in the metric's units (see `runs.seed_noise`)."""

    total_sd: float | None = None  # one run around its spec's mean: seed effect and residual together
    dof: int = 0  # the degrees of freedom `total_sd` rests on
    seed_sd: float | None = None  # the seed-blocked split, when the study's noise model has one
    residual_sd: float | None = None


class FittedModel:
    """A fit of one objective: the spreads, and draws of the coefficients in the metric's units."""

    def __init__(self, X: np.ndarray, seeds: np.ndarray, y: np.ndarray, groups: dict[str, np.ndarray],
                 defaults: dict[str, float], noise: SeedNoise, seeded: bool = True) -> None:
        self.offset, self.scale = float(y.mean()), float(y.std()) or 1.0
        self.X, self.z, self.groups = X, (y - self.offset) / self.scale, groups
        levels = np.unique(seeds)
        self.S = (seeds[:, None] == levels[None, :]).astype(float)  # one column per training seed
        names = [*groups, "seed", "noise"]
        self.grams = [X[:, cols] @ X[:, cols].T for cols in groups.values()] + [self.S @ self.S.T, np.eye(len(y))]
        self.centre = np.log([*(defaults[g] for g in groups), SEED_SPREAD, 0.5])
        # the groups' spreads are held near their defaults; a seeded metric's noise near half the variance (training
        # is noisy), a cost's noise is left to the data (it is nearly exact), and so is the seed's effect
        self.hyperprior = np.array([*range(len(groups)), *([len(names) - 1] if seeded else [])])
        seed, noise_index = len(names) - 2, len(names) - 1
        floor = np.log(1e-4)
        self.total = None
        if noise.seed_sd is not None and noise.residual_sd is not None:  # the study's seed-blocked split
            fixed = {seed: 2 * np.log(max(noise.seed_sd, 1e-6) / self.scale)}
            floor = max(floor, 2 * np.log(max(noise.residual_sd, 1e-6) / self.scale))  # misfit may add to it
        elif noise.total_sd and noise.dof:  # the pooled seed noise: v_seed + v_e near its square
            fixed = {}
            self.total = (2 * np.log(noise.total_sd / self.scale), np.sqrt(2.0 / noise.dof))
        else:  # a nuisance the references' repeated seeds identify: a broad prior
            fixed = {seed: np.log(SEED_SPREAD)}
        free = [i for i in range(len(names)) if i not in fixed]
        theta = self.centre.copy()
        for i, value in fixed.items():
            theta[i] = value

        def objective(free_theta: np.ndarray) -> tuple[float, np.ndarray]:
            full = theta.copy()
            full[free] = free_theta
            value, gradient = self._evidence(full)
            return value, gradient[free]

        bounds = [(floor if i == noise_index else np.log(1e-4), max(np.log(10.0), floor + 1.0)) for i in free]
        start = np.clip(theta[free], [b[0] for b in bounds], [b[1] for b in bounds])
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 60})
        theta[free] = result.x
        self.spreads = dict(zip(names, np.exp(theta)))
        self._K = sum(v * G for v, G in zip(np.exp(theta), self.grams))
        self._chol = np.linalg.cholesky(self._K + 1e-9 * np.eye(len(y)))
        self._prior = np.zeros(X.shape[1])
        for g, cols in groups.items():
            self._prior[cols] = self.spreads[g]

    def _evidence(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood plus the log-normal hyperprior, and its gradient in log spreads."""
        spreads = np.exp(theta)
        K = sum(v * G for v, G in zip(spreads, self.grams)) + 1e-9 * np.eye(len(self.z))
        chol = np.linalg.cholesky(K)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, self.z))
        inverse = np.linalg.solve(chol.T, np.linalg.solve(chol, np.eye(len(self.z))))
        value = 0.5 * self.z @ alpha + np.log(np.diag(chol)).sum()
        gradient = np.array([0.5 * v * (np.sum(inverse * G) - alpha @ G @ alpha) for v, G in zip(spreads, self.grams)])
        held = self.hyperprior
        value += 0.5 * np.sum(((theta[held] - self.centre[held]) / HYPERPRIOR_SD) ** 2)
        gradient[held] += (theta[held] - self.centre[held]) / HYPERPRIOR_SD**2
        if self.total is not None:
            target, sd = self.total
            total = spreads[-2] + spreads[-1]
            miss = (np.log(total) - target) / sd
            value += 0.5 * miss**2
            gradient[-2:] += miss / sd * spreads[-2:] / total
        return float(value), gradient

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of the coefficients (standardised units)."""
        w0 = rng.normal(size=self._prior.shape) * np.sqrt(self._prior)
        s0 = rng.normal(size=self.S.shape[1]) * np.sqrt(self.spreads["seed"])
        e0 = rng.normal(size=len(self.z)) * np.sqrt(self.spreads["noise"])
        residual = self.z - self.X @ w0 - self.S @ s0 - e0
        return w0 + self._prior * (self.X.T @ np.linalg.solve(self._chol.T, np.linalg.solve(self._chol, residual)))

    def predict(self, rows: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """A spec's value without any seed's effect, in the metric's units."""
        return self.offset + self.scale * (rows @ coefficients)
