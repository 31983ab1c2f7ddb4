"""Seed-blocked estimates: run = architecture + seed + residual.

Every spec of a study trains under shared seeds (the references under seed..seed+2, the others
under seed), and under one seed every architecture sees the same batches and initial weights:
`bench/noise.py` measured that most of one run's seed noise (1.26 of 1.52 mAP points) is such a
seed effect, shared by all architectures. Comparing a candidate with the plain backbone *within*
the seeds they share removes it. The pooled one-way floor (`noise.pooled_sd`) does not: every
single-seed candidate is trained under the same seed and compared with the plain mean over three,
so a lucky seed makes them all look better, and the noise of a difference is overstated.

The fit is the intra-block least-squares analysis of an unbalanced two-way layout, architecture
and seed both fixed effects:

    y[a, s] = mu[a] + b[s] + e[a, s],   e ~ Normal(0, residual_sd^2)

A spec with a single run fits it exactly and says nothing about the residual, so the model is
fitted on the *core* (specs with two or more runs) and each single-run spec is estimated from its
run and the core's seed effect, mu[a] = y[a, s] - b[s] (the same numbers the full fit gives, at a
fraction of its cost at 500 candidates). A gain mu[a] - mu[plain] is estimable when shared seeds
connect the two (a seed the core never saw cannot be removed, unless both ran under it); else NaN.

The covariance of all gains comes as a factor, Cov = residual_sd^2 (F F' + diag(own)): every gain
shares the plain backbone's estimate, and the multiplicity corrections (`search.analysis.
multiplicity`) sample that structure in a few milliseconds. The seed-effect SD is a moment
estimate from the fitted seed effects, less their own estimation noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class BlockedFloor:
    """The seed-blocked noise of one metric, with what it rests on."""

    residual_sd: float  # one run around its architecture + seed fit: the noise of a within-seed comparison
    seed_sd: float  # SD of the seed effect shared by every architecture (NaN with fewer than 2 seeds)
    dof: int  # residual degrees of freedom
    seeds: int  # distinct seeds of the core
    specs: int  # specs trained under 2+ seeds (the core)
    runs: int  # runs of the core

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SeedBlockedFit:
    """Every spec's gain over the baseline within shared seeds, with the covariance factor."""

    specs: list[str]
    baseline: str | None
    gain: np.ndarray  # mu[spec] - mu[baseline]; NaN when not estimable (or no baseline)
    factor: np.ndarray  # (specs, r): Cov(gain) / residual_sd^2 = F F' + diag(own)
    own: np.ndarray  # a spec's own single run, when it has one (1), else 0
    adjusted: np.ndarray  # seed-adjusted mean: mu[spec] at the core's average seed
    adjusted_var: np.ndarray  # its variance / residual_sd^2
    floor: BlockedFloor | None  # None when no spec has two runs

    def index(self, spec: str) -> int:
        return self.specs.index(spec)

    def unit_se(self) -> np.ndarray:
        """Standard errors of the gains in residual SDs."""
        return np.sqrt((self.factor ** 2).sum(axis=1) + self.own)

    def se(self) -> np.ndarray:
        """Standard errors of the gains; NaN without a residual (no core, or no degree of freedom)."""
        if self.floor is None or self.floor.dof < 1:
            return np.full(len(self.specs), np.nan)
        return self.floor.residual_sd * self.unit_se()

    def by_spec(self) -> dict[str, tuple[float, float]]:
        """spec -> (gain, its standard error)."""
        return {spec: (float(g), float(s)) for spec, g, s in zip(self.specs, self.gain, self.se())}


def _runs(records: Mapping[str, Mapping], metric: str) -> dict[str, dict[int, float]]:
    runs = {}
    for spec, record in records.items():
        values = record.get(metric)
        if values is None:
            continue
        pairs = {int(s): float(v) for s, v in zip(record["seeds"], values) if v is not None and np.isfinite(v)}
        if pairs:
            runs[spec] = pairs
    return runs


def fit_seed_blocked(records: Mapping[str, Mapping], metric: str, baseline: str | None) -> SeedBlockedFit | None:
    """The two-way fit of `metric` over `records` (spec -> {"seeds": [...], metric: [...]}, one per
    seed, as trials store `per_seed`); None when no spec has a run of it."""
    runs = _runs(records, metric)
    if not runs:
        return None
    specs = list(runs)
    core = [s for s in specs if len(runs[s]) >= 2]
    seeds = sorted({seed for s in core for seed in runs[s]})
    mu = {s: i for i, s in enumerate(core)}
    b = {seed: len(core) + i - 1 for i, seed in enumerate(seeds) if i > 0}  # the first core seed is the reference (0)
    p = len(core) + max(len(seeds) - 1, 0)
    rows = [(s, seed, y) for s in core for seed, y in sorted(runs[s].items())]
    X = np.zeros((len(rows), p))
    for r, (s, seed, _) in enumerate(rows):
        X[r, mu[s]] = 1.0
        if seed in b:
            X[r, b[seed]] = 1.0
    y = np.array([row[2] for row in rows])
    gram = X.T @ X
    M = np.linalg.pinv(gram, hermitian=True) if p else np.zeros((0, 0))
    beta = M @ X.T @ y if p else np.zeros(0)
    rank = int(np.linalg.matrix_rank(X)) if p else 0
    dof = len(rows) - rank
    rss = float(((y - X @ beta) ** 2).sum()) if p else 0.0
    residual_sd = float(np.sqrt(rss / dof)) if dof > 0 else float("nan")
    values, vectors = np.linalg.eigh(M) if p else (np.zeros(0), np.zeros((0, 0)))
    keep = values > 1e-12 * max(values.max(initial=0.0), 1.0)
    L = vectors[:, keep] * np.sqrt(values[keep])  # M = L L'
    projection = M @ gram if p else np.zeros((0, 0))  # onto the row space of X: what the core can estimate

    def coefficients(spec: str) -> tuple[np.ndarray, dict[int, float], float, float]:
        """mu_hat[spec] = vector . beta + sum(extra[seed] * unknown b[seed]) + own * its run."""
        vector = np.zeros(p)
        if spec in mu:
            vector[mu[spec]] = 1.0
            return vector, {}, 0.0, 0.0
        (seed, value), = runs[spec].items()
        if seed in b:
            vector[b[seed]] = -1.0
        extra = {} if seed in seeds else {seed: -1.0}
        return vector, extra, 1.0, value

    coefs = {s: coefficients(s) for s in specs}
    seed_mean = np.zeros(p)
    if seeds:
        for seed in b:
            seed_mean[b[seed]] = 1.0 / len(seeds)
    adjusted, adjusted_var = np.full(len(specs), np.nan), np.full(len(specs), np.nan)
    for i, s in enumerate(specs):
        vector, extra, own, value = coefs[s]
        level = vector + seed_mean
        if not extra and p and np.allclose(projection.T @ level, level, atol=1e-8):
            adjusted[i] = level @ beta + own * value
            adjusted_var[i] = level @ M @ level + own
    gain, factor_rows, owns = np.full(len(specs), np.nan), np.zeros((len(specs), L.shape[1])), np.zeros(len(specs))
    base_own = 0.0
    if baseline in coefs:
        base_vector, base_extra, base_own, base_value = coefs[baseline]
        for i, s in enumerate(specs):
            if s == baseline:
                gain[i] = 0.0
                continue
            vector, extra, own, value = coefs[s]
            contrast = vector - base_vector
            merged = {k: extra.get(k, 0.0) - base_extra.get(k, 0.0) for k in {*extra, *base_extra}}
            if any(abs(v) > 0 for v in merged.values()) or (p and not np.allclose(projection.T @ contrast, contrast, atol=1e-8)):
                owns[i] = np.nan
                continue
            gain[i] = (contrast @ beta if p else 0.0) + own * value - base_own * base_value
            factor_rows[i] = contrast @ L if p else factor_rows[i]
            owns[i] = own
    if base_own:  # a single-run baseline: its run's noise is in every gain
        column = np.where(np.isfinite(gain) & (np.array(specs) != baseline), 1.0, 0.0)
        factor_rows = np.hstack([factor_rows, column[:, None]])
    floor = None
    if core:
        floor = BlockedFloor(residual_sd, _seed_sd(beta, M, b, len(seeds), residual_sd), dof, len(seeds), len(core), len(rows))
    return SeedBlockedFit(specs, baseline if baseline in coefs else None, gain, factor_rows, owns, adjusted, adjusted_var, floor)


def _seed_sd(beta: np.ndarray, M: np.ndarray, b: dict[int, int], k: int, residual_sd: float) -> float:
    """sqrt((sum (b_hat - mean)^2 - residual_sd^2 tr(C V C)) / (k - 1)), floored at 0: the spread of
    the fitted seed effects less what their estimation noise (V = M on the seed block) adds."""
    if k < 2 or not np.isfinite(residual_sd):
        return float("nan")
    index = [None, *b.values()]  # the reference seed's effect is 0 with no variance
    effects = np.array([0.0 if i is None else beta[i] for i in index])
    V = np.array([[0.0 if i is None or j is None else M[i, j] for j in index] for i in index])
    C = np.eye(k) - 1.0 / k
    spread = float(((effects - effects.mean()) ** 2).sum())
    return float(np.sqrt(max(spread - residual_sd ** 2 * np.trace(C @ V @ C), 0.0) / (k - 1)))


def blocked_floors(records: Mapping[str, Mapping], metrics: Sequence[str], baseline: str | None) -> dict[str, SeedBlockedFit]:
    """The seed-blocked fit of each metric that `records` hold."""
    fits = {}
    for name in metrics:
        fit = fit_seed_blocked(records, name, baseline)
        if fit is not None:
            fits[name] = fit
    return fits


def gain_sentence(fit: SeedBlockedFit | None, metric: str, spec: str) -> str:
    """", +0.4 mAP points (± 0.9) over resnet50 within shared seeds" for the trial log; "" for the
    baseline itself, or when the study cannot compare them yet."""
    from attnas.evaluators.metric_registry import METRICS

    if fit is None or fit.baseline is None or spec == fit.baseline or spec not in fit.specs:
        return ""
    i = fit.index(spec)
    if not np.isfinite(fit.gain[i]):
        return ""
    return f", {METRICS[metric].format(float(fit.gain[i]), float(fit.se()[i]), signed=True)} over {fit.baseline} within shared seeds"


def record_blocked_floor(study, metric: str, fit: SeedBlockedFit | None, log) -> None:
    """Store the study's seed-blocked noise (`user_attrs["seed_blocked_noise"]`) and log it when it changes."""
    if fit is None or fit.floor is None or fit.floor.dof < 1:
        return
    value = {metric: fit.floor.to_dict()}
    if value != study.user_attrs.get("seed_blocked_noise"):
        study.set_user_attr("seed_blocked_noise", value)
        log.info("seed-blocked noise of %s: seed effect sd %.4f, residual sd %.4f (%d degrees of freedom, %d seeds)", metric,
                 fit.floor.seed_sd, fit.floor.residual_sd, fit.floor.dof, fit.floor.seeds)
