"""Placement rules: what each block does at each stage (and position) to each objective, with
intervals that say whether the study can tell.

An additive model over placement features, fitted by ridge-regularised weighted least squares
over every evaluated architecture: y = b0 + sum_j beta_j x_j, where y is an architecture's mean
over its seeds and x_j counts "block B in stage S" (or "block B at position P"). Weights are the
inverse measurement variances when every architecture has one (`<objective>_se`: the study's
noise floor over sqrt(seeds), the latency's own standard error), else the number of seeds.

The 95% interval of each effect is the wider of two:

* a case bootstrap: architectures are drawn with replacement, the model is refitted, and the
  2.5 and 97.5 percentiles of the refitted effect are taken (samples lacking the feature are
  left out); it carries what the additive model misses;
* the model interval from the measurement noise, estimate +- 1.96 t SE with
  SE^2 = [A^-1 X'W Sigma W X A^-1]_jj (A = X'WX + ridge), widened by Student's t for a noise
  floor from few degrees of freedom. A feature seen in one architecture has a residual of
  zero, so the bootstrap alone would call any seed fluke a finding; this interval does not.

A rule is stated as a finding only when its interval excludes zero and at least two
architectures have the feature; the others are listed as not distinguishable from noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from attnas.evaluators.metric_registry import METRICS, Metric
from attnas.models.backbones import layout
from attnas.space import ArchSpec


@dataclass
class Effect:
    feature: str  # "cnl@layer3" or "cnl@layer3.5"
    block: str  # block variant: "cnl", "cnl(r=8)"
    where: str  # stage or position
    objective: str
    estimate: float
    lo: float  # 95% bootstrap interval
    hi: float
    stderr: float  # bootstrap standard deviation of the estimate
    support: int  # architectures that have the feature

    @property
    def finding(self) -> bool:
        """The interval excludes zero (and two or more architectures show the feature): the study
        can tell this effect from noise."""
        return bool(self.support >= 2 and np.isfinite(self.lo) and (self.lo > 0 or self.hi < 0))


def _placements(spec: ArchSpec, level: str) -> list[tuple[str, str]]:
    """(block variant, position or stage) of every block of `spec`."""
    stages = spec.stages()
    return [(choice.variant, pos if level == "position" else stages[pos]) for pos, choice in spec.blocks.items()]


def _features(specs: list[ArchSpec], level: str) -> tuple[np.ndarray, list[tuple[str, str]]]:
    keys: dict[tuple[str, str], int] = {}
    for spec in specs:
        for key in _placements(spec, level):
            keys.setdefault(key, len(keys))
    X = np.zeros((len(specs), len(keys)))
    for i, spec in enumerate(specs):
        for key in _placements(spec, level):
            X[i, keys[key]] += 1
    return X, list(keys)


def _solve(design: np.ndarray, y: np.ndarray, weights: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge WLS coefficients and A^-1 X'W (to propagate measurement variances)."""
    penalty = ridge * np.diag([0.0] + [1.0] * (design.shape[1] - 1))  # the intercept is not shrunk
    weighted = design * weights[:, None]
    mapping = np.linalg.solve(weighted.T @ design + penalty, weighted.T)  # A^-1 X'W
    return mapping @ y, mapping


def _bootstrap(design: np.ndarray, y: np.ndarray, weights: np.ndarray, ridge: float, draws: int, seed: int,
               work: float = 4e9, batch: int = 64) -> np.ndarray:
    """Case-bootstrap refits of `_solve` (draws x features; NaN where a resample lacks the
    feature). A resample is a vector of counts, so its normal equations are sums of each row's
    outer product weighted by its count: sparse (a spec holds a few blocks), they cost O(rows)
    per draw instead of O(rows x features^2), and the solves run in batches. Draws are capped so
    that draws x (nonzeros + features^3) stays within `work` (never below 200): a study of any
    size gets intervals in seconds. The resamples are those of one generator seeded by `seed`,
    in order, so every objective sees the same ones."""
    from scipy import sparse

    n, q = design.shape
    # each row's nonzero columns, padded to the widest row: its outer product is every pair of them
    order = np.argsort(design == 0, axis=1, kind="stable")
    width = int((design != 0).sum(axis=1).max()) if n else 0
    columns = order[:, :width]
    valid = np.take_along_axis(design, columns, axis=1) != 0
    a, b = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    keep = (valid[:, a.ravel()] & valid[:, b.ravel()]).ravel()
    rows = np.repeat(np.arange(n), width * width)[keep]
    left, right = columns[:, a.ravel()].ravel()[keep], columns[:, b.ravel()].ravel()[keep]
    outer_t = sparse.csr_matrix((design[rows, left] * design[rows, right], (left * q + right, rows)), shape=(q * q, n))
    design_t = sparse.csr_matrix(design.T)
    present_t = sparse.csr_matrix((design[:, 1:] != 0).T.astype(float))
    draws = min(draws, max(200, int(work / (outer_t.nnz + q ** 3))))
    penalty = ridge * np.diag([0.0] + [1.0] * (q - 1))
    rng = np.random.default_rng(seed)
    boot = np.full((draws, q - 1), np.nan)
    for start in range(0, draws, batch):
        size = min(batch, draws - start)
        picks = np.stack([rng.integers(0, n, n) for _ in range(size)])
        counts = np.bincount((picks + n * np.arange(size)[:, None]).ravel(), minlength=size * n).reshape(size, n)
        weighted = (counts * weights[None]).T  # (n, size)
        normal = (outer_t @ weighted).T.reshape(size, q, q) + penalty
        refit = np.linalg.solve(normal, (design_t @ (weighted * y[:, None])).T[:, :, None])[:, 1:, 0]
        boot[start:start + size] = np.where((present_t @ counts.T).T > 0, refit, np.nan)
    return boot


def fit_effects(table: pd.DataFrame, objectives: list[str], level: str = "stage", bootstrap: int = 1000,
                seed: int = 0, ridge: float = 1e-3, widen: dict[str, float] | None = None) -> list[Effect]:
    """Effects of every observed (block, stage|position) on every objective, with 95% intervals.
    `widen` maps an objective to the Student-t factor of its noise floor (1 when exact)."""
    specs = [ArchSpec.parse(s) for s in table["spec"]]
    X, keys = _features(specs, level)
    if not keys:
        return []
    design = np.hstack([np.ones((len(X), 1)), X])
    seeds = table["seeds"].to_numpy(dtype=float) if "seeds" in table else np.ones(len(X))
    effects = []
    for name in objectives:
        y = table[name].to_numpy(dtype=float)
        known_rows = np.isfinite(y)  # untrained specs (skipped for their latency) say nothing of accuracy
        if not known_rows.all():
            sub = fit_effects(table[known_rows].reset_index(drop=True), [name], level, bootstrap, seed, ridge, widen)
            effects += sub
            continue
        variance = table[f"{name}_se"].to_numpy(dtype=float) ** 2 if f"{name}_se" in table else np.full(len(y), np.nan)
        known = bool(np.isfinite(variance).all() and (variance > 0).all())
        weights = 1.0 / variance if known else seeds
        beta, mapping = _solve(design, y, weights / weights.mean(), ridge)
        model_se = np.sqrt(np.clip((mapping ** 2) @ np.nan_to_num(variance), 0, None))[1:] if np.isfinite(variance).all() \
            else np.zeros(len(keys))
        model_half = 1.96 * (widen or {}).get(name, 1.0) * model_se
        boot = _bootstrap(design, y, weights / weights.mean(), ridge, bootstrap, seed)
        for j, (block, where) in enumerate(keys):
            column = boot[:, j][np.isfinite(boot[:, j])]
            lo, hi = np.percentile(column, [2.5, 97.5]) if len(column) >= 20 else (-np.inf, np.inf)
            estimate = float(beta[j + 1])
            lo, hi = min(lo, estimate - model_half[j]), max(hi, estimate + model_half[j])
            sd = max(float(column.std(ddof=1)) if len(column) >= 20 else np.nan, float(model_se[j]))
            effects.append(Effect(f"{block}@{where}", block, where, name, estimate, float(lo), float(hi), sd,
                                  int((X[:, j] > 0).sum())))
    return effects


def effects_frame(effects: list[Effect]) -> pd.DataFrame:
    columns = [f for f in Effect.__dataclass_fields__]
    frame = pd.DataFrame([asdict(e) for e in effects], columns=columns)
    frame["finding"] = [e.finding for e in effects]
    return frame


def _fmt(name: str, effect: Effect) -> str:
    m = METRICS.get(name) or Metric(name, None, "", "", label=name)
    scale = m.display_scale
    interval = f"[{effect.lo * scale:+.2g}, {effect.hi * scale:+.2g}]" if np.isfinite(effect.lo) else "[interval n/a]"
    return f"{m.format(effect.estimate, signed=True)} {interval}"


def _scale(name: str) -> float:
    return METRICS[name].display_scale if name in METRICS else 1.0


@dataclass
class Rules:
    findings: list[str] = field(default_factory=list)  # intervals exclude zero
    noise: list[str] = field(default_factory=list)  # not distinguishable from noise
    observations: list[str] = field(default_factory=list)  # what the front holds (facts, not effects)

    def all(self) -> list[str]:
        return [*self.findings, *self.noise, *self.observations]


def rules_in_words(table: pd.DataFrame, front: pd.DataFrame, objectives: list[str], stage_effects: list[Effect],
                   position_effects: list[Effect] = ()) -> Rules:
    """Rules a person can act on, one per (placement, objective): findings first (per objective,
    strongest first), then, per objective, the placements the study cannot tell from noise."""
    rules = Rules()
    for name in objectives:
        effects = sorted((e for e in stage_effects if e.objective == name), key=lambda e: -abs(e.estimate))
        for effect in effects:
            if effect.finding:
                rules.findings.append(f"{effect.block} in {effect.where}: {_fmt(name, effect)} ({effect.support} architectures)")
        for effect in position_effects:
            if effect.objective == name and effect.finding:
                rules.findings.append(f"{effect.block} at {effect.where}: {_fmt(name, effect)} ({effect.support} architectures)")
        label = METRICS[name].label if name in METRICS else name
        unclear = [f"{e.block} in {e.where} [{e.lo * _scale(name):+.2g}, {e.hi * _scale(name):+.2g}]"
                   for e in effects if not e.finding and e.support >= 2]
        if unclear:
            rules.noise.append(f"{name}: not distinguishable from noise (95% intervals, {label}, include zero): "
                               f"{'; '.join(unclear)}")
        # one architecture cannot separate a placement's effect from everything else that spec holds
        alone = [f"{e.block} in {e.where} [{e.lo * _scale(name):+.2g}, {e.hi * _scale(name):+.2g}]"
                 for e in effects if not e.finding and e.support < 2]
        if alone:
            rules.noise.append(f"{name}: seen in one architecture only, not a finding yet (95% intervals, {label}): "
                               f"{'; '.join(alone)}")
    specs = [ArchSpec.parse(s) for s in table["spec"]]
    front_specs = [ArchSpec.parse(s) for s in front["spec"]]
    for stage in (s.name for s in layout(specs[0].backbone).stages) if specs else ():
        tried = sum(stage in s.stages().values() for s in specs)
        if tried >= 3 and not any(stage in s.stages().values() for s in front_specs):
            rules.observations.append(f"no architecture with a block in {stage} is on the front ({tried} tried)")
    if front_specs:
        counts = [s.num_blocks for s in front_specs]
        blocks = sorted({c.variant for s in front_specs for c in s.blocks.values()})
        rules.observations.append(f"the front holds {min(counts)}-{max(counts)} blocks; block types on it: {', '.join(blocks) or 'none'}")
    return rules
