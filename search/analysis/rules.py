"""Placement rules: what each block does at each stage (and position) to each objective, stated as
a finding only when the study can tell it from noise after controlling the false discovery rate
over every effect it estimated.

An additive model over placement features, fitted by ridge-regularised weighted least squares
over every evaluated architecture: y = b0 + sum_j beta_j x_j, where x_j counts "block B in stage
S" (or "block B at position P") and y is the architecture's value: for a seeded objective its
seed-adjusted mean from the two-way fit (`search.seed_blocks`; an architecture trained under a
lucky seed would otherwise lend the luck to its placements), else its mean. Weights are the
inverse measurement variances when every architecture has one, else the number of seeds.

The standard error of each effect is the larger of two:

* a case bootstrap SD: architectures drawn with replacement, the model refitted; it carries what
  the additive model misses;
* the model SE from the measurement noise, SE^2 = [A^-1 X'W Sigma W X A^-1]_jj (A = X'WX +
  ridge). A feature seen in one architecture has a residual of zero, so the bootstrap alone
  would call any seed fluke a finding; this SE does not.

Each effect gets a two-sided p-value (Student's t with the residual degrees of freedom of its
objective's noise). `discoveries` then selects by Benjamini-Hochberg within each objective at
q / (number of objectives), both levels in one family: the overall false discovery rate over
every effect stays at most q (the union bound), and an objective whose effects are all real
(latency, FLOPs) cannot license false accuracy rules by raising the step-up threshold. Intervals
are shown at the false-coverage level 1 - R q' / m of their family (`multiplicity.fcr_level`),
so a finding's interval excludes zero and no other's does. An effect seen in fewer than two
architectures is never tested: one architecture cannot separate a placement from the rest of it.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse, stats

from attnas.evaluators.metric_registry import METRICS, Metric
from attnas.search.analysis.multiplicity import benjamini_hochberg, fcr_level, two_sided_p
from attnas.models.backbones import layout
from attnas.space import ArchSpec


@dataclass
class Effect:
    feature: str  # "cnl@layer3" or "cnl@layer3.5"
    block: str  # block variant: "cnl", "cnl(r=8)"
    where: str  # stage or position
    objective: str
    estimate: float
    lo: float  # interval at `level`
    hi: float
    stderr: float  # the larger of the bootstrap SD and the model SE
    support: int  # architectures that have the feature
    p_value: float = np.nan  # two-sided, this effect alone
    dof: float = np.inf  # degrees of freedom of the noise behind `stderr`
    level: float = 0.95  # coverage of [lo, hi]: 95% alone, the false-coverage level after `discoveries`
    finding: bool = False  # selected by `discoveries`: the study can tell it from noise

    def at_level(self, level: float) -> "Effect":
        half = _quantile(level, self.dof) * self.stderr
        return replace(self, lo=self.estimate - half, hi=self.estimate + half, level=level)


def _quantile(level: float, dof: float) -> float:
    upper = 1 - (1 - level) / 2
    return float(stats.norm.ppf(upper) if not np.isfinite(dof) else stats.t.ppf(upper, dof))


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


@functools.lru_cache(maxsize=65536)
def parse_spec(text: str) -> ArchSpec:
    """`ArchSpec.parse`, remembered: an analysis reads each of hundreds of specs several times."""
    return ArchSpec.parse(text)


def _refits(design: np.ndarray, y: np.ndarray, weights: np.ndarray, counts: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge WLS coefficients of every bootstrap sample at once (row counts as weights). A spec
    holds at most a few blocks, so X'WX is a sum of few-entry outer products: one sparse product
    gives every sample's Gram matrix."""
    n, p = design.shape
    entries, rows, values = [], [], []
    for r in range(n):
        nz = np.flatnonzero(design[r])
        entries += [a * p + b for a in nz for b in nz]
        rows += [r] * len(nz) ** 2
        values += [design[r, a] * design[r, b] for a in nz for b in nz]
    outer = sparse.csr_matrix((values, (entries, rows)), shape=(p * p, n))
    w = counts * weights
    grams = np.asarray(outer @ w.T).T.reshape(len(w), p, p) + ridge * np.diag([0.0] + [1.0] * (p - 1))
    return np.linalg.solve(grams, ((w * y) @ design)[..., None])[..., 0]


def fit_effects(table: pd.DataFrame, objectives: list[str], level: str = "stage", bootstrap: int = 200, seed: int = 0,
                ridge: float = 1e-3, dof: dict[str, float] | None = None) -> list[Effect]:
    """Effects of every observed (block, stage|position) on every objective, with two-sided p-values
    and 95% intervals of each alone. `dof` maps an objective to the degrees of freedom of its
    noise (infinite when exact or measured per architecture). `discoveries` selects the findings."""
    specs = [parse_spec(s) for s in table["spec"]]
    X, keys = _features(specs, level)
    if not keys:
        return []
    design = np.hstack([np.ones((len(X), 1)), X])
    seeds = table["seeds"].to_numpy(dtype=float) if "seeds" in table else np.ones(len(X))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(X), np.full(len(X), 1.0 / len(X)), size=bootstrap).astype(float)  # case bootstrap
    present = (counts @ (X > 0)) > 0  # (bootstrap, features): drawn at least once
    effects = []
    for name in objectives:
        y = table[name].to_numpy(dtype=float)
        known_rows = np.isfinite(y)  # untrained specs (skipped for their latency) say nothing of accuracy
        if name.startswith("latency") and "latency_unreliable" in table:  # a flagged (disturbed) timing says nothing of latency
            known_rows &= ~(table["latency_unreliable"].fillna(0).to_numpy(dtype=float) > 0)
        if not known_rows.all():
            effects += fit_effects(table[known_rows].reset_index(drop=True), [name], level, bootstrap, seed, ridge, dof)
            continue
        variance = table[f"{name}_se"].to_numpy(dtype=float) ** 2 if f"{name}_se" in table else np.full(len(y), np.nan)
        known = bool(np.isfinite(variance).all() and (variance > 0).all())
        weights = 1.0 / variance if known else seeds
        beta, mapping = _solve(design, y, weights / weights.mean(), ridge)
        model_se = np.sqrt(np.clip((mapping ** 2) @ np.nan_to_num(variance), 0, None))[1:] if np.isfinite(variance).all() \
            else np.zeros(len(keys))
        boot = np.where(present, _refits(design, y, weights / weights.mean(), counts, ridge)[:, 1:], np.nan)
        freedom = (dof or {}).get(name, np.inf)
        for j, (block, where) in enumerate(keys):
            column = boot[:, j][np.isfinite(boot[:, j])]
            spread = float(column.std(ddof=1)) if len(column) >= 20 else np.inf  # too rarely drawn: unknown
            sd, estimate = max(spread, float(model_se[j])), float(beta[j + 1])
            p = float(two_sided_p(estimate / sd, freedom)) if sd > 0 else float(estimate == 0)
            effect = Effect(f"{block}@{where}", block, where, name, estimate, np.nan, np.nan, sd, int((X[:, j] > 0).sum()),
                            p if np.isfinite(sd) else 1.0, freedom)
            effects.append(effect.at_level(0.95) if np.isfinite(sd) else replace(effect, lo=-np.inf, hi=np.inf))
    return effects


def discoveries(effects: list[Effect], q: float = 0.05) -> list[Effect]:
    """`effects` with the findings selected (Benjamini-Hochberg within each objective at q over
    the number of objectives, stage and position effects in one family) and every tested
    effect's interval at its family's false-coverage level."""
    objectives = sorted({e.objective for e in effects if e.support >= 2})
    share = q / max(len(objectives), 1)
    chosen = list(effects)
    for name in objectives:
        family = [i for i, e in enumerate(effects) if e.objective == name and e.support >= 2]
        selected = benjamini_hochberg(np.array([effects[i].p_value for i in family]), share)
        level = fcr_level(int(selected.sum()), len(family), share)
        for i, picked in zip(family, selected):
            moved = effects[i].at_level(level) if np.isfinite(effects[i].stderr) else effects[i]
            chosen[i] = replace(moved, finding=bool(picked))
    return chosen


def effects_frame(effects: list[Effect]) -> pd.DataFrame:
    return pd.DataFrame([asdict(e) for e in effects], columns=list(Effect.__dataclass_fields__))


def _fmt(name: str, effect: Effect) -> str:
    m = METRICS.get(name) or Metric(name, None, "", "", label=name)
    scale = m.display_scale
    interval = f"[{effect.lo * scale:+.2g}, {effect.hi * scale:+.2g}]" if np.isfinite(effect.lo) else "[interval n/a]"
    return f"{m.format(effect.estimate, signed=True)} {interval}"


def _level(effect: Effect) -> str:
    return f"{100 * effect.level:.3g}%"


def unclear_first(effects: list[Effect]) -> Effect:
    """The first tested effect that is not a finding (its family's interval level stands for all)."""
    return next(e for e in effects if not e.finding and e.support >= 2)


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
                rules.findings.append(f"{effect.block} in {effect.where}: {_fmt(name, effect)} ({_level(effect)} interval, "
                                      f"{effect.support} architectures)")
        for effect in position_effects:
            if effect.objective == name and effect.finding:
                rules.findings.append(f"{effect.block} at {effect.where}: {_fmt(name, effect)} ({_level(effect)} interval, "
                                      f"{effect.support} architectures)")
        label = METRICS[name].label if name in METRICS else name
        tested = [e for e in (*effects, *(e for e in position_effects if e.objective == name)) if e.support >= 2]
        unclear = [f"{e.block} in {e.where} [{e.lo * _scale(name):+.2g}, {e.hi * _scale(name):+.2g}]"
                   for e in effects if not e.finding and e.support >= 2]
        if unclear:
            rules.noise.append(f"{name}: not distinguishable from noise ({_level(unclear_first(effects))} intervals, {label}, "
                               f"include zero; false discovery rate controlled over the {len(tested)} effects tested): "
                               f"{'; '.join(unclear)}")
        # one architecture cannot separate a placement's effect from everything else that spec holds
        alone = [f"{e.block} in {e.where} [{e.lo * _scale(name):+.2g}, {e.hi * _scale(name):+.2g}]"
                 for e in effects if not e.finding and e.support < 2]
        if alone:
            rules.noise.append(f"{name}: seen in one architecture only, not tested (95% intervals, {label}): "
                               f"{'; '.join(alone)}")
    specs = [parse_spec(s) for s in table["spec"]]
    front_specs = [parse_spec(s) for s in front["spec"]]
    for stage in (s.name for s in layout(specs[0].backbone).stages) if specs else ():
        tried = sum(stage in s.stages().values() for s in specs)
        if tried >= 3 and not any(stage in s.stages().values() for s in front_specs):
            rules.observations.append(f"no architecture with a block in {stage} is on the front ({tried} tried)")
    if front_specs:
        counts = [s.num_blocks for s in front_specs]
        blocks = sorted({c.variant for s in front_specs for c in s.blocks.values()})
        rules.observations.append(f"the front holds {min(counts)}-{max(counts)} blocks; block types on it: {', '.join(blocks) or 'none'}")
    return rules
