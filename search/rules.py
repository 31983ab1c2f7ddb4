"""Placement rules: what each (position, block) and each stage does to each objective.

An additive model over one-hot placement features, fitted per objective by ridge-regularised
least squares over the unique architectures: y = b0 + sum_j beta_j x_j, where x_j says "block B at
position P" (or, for the stage model, how many B blocks sit in stage S). Standard errors come from
the residual variance and (X'X + lambda I)^-1, the usual linear-model uncertainty; they are honest
only as far as the additive assumption is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from attnas.evaluators.metric_registry import METRICS, metric
from attnas.models.backbones import layout
from attnas.space import ArchSpec


@dataclass
class Effect:
    feature: str  # "cnl@layer3.5" or "cnl@layer3"
    block: str
    where: str
    objective: str
    estimate: float
    stderr: float
    support: int  # architectures that have the feature


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


def fit_effects(table: pd.DataFrame, objectives: list[str], level: str = "position", ridge: float = 1e-3) -> list[Effect]:
    """Effects of every observed (block, position|stage) on every objective."""
    specs = [ArchSpec.parse(s) for s in table["spec"]]
    X, keys = _features(specs, level)
    if not keys:
        return []
    design = np.hstack([np.ones((len(X), 1)), X])
    effects = []
    for name in objectives:
        y = table[name].to_numpy(dtype=float)
        gram = design.T @ design + ridge * np.diag([0.0] + [1.0] * len(keys))
        inverse = np.linalg.pinv(gram)
        beta = inverse @ design.T @ y
        residual = y - design @ beta
        dof = len(y) - np.linalg.matrix_rank(design)
        # as many features as architectures: the fit is exact and says nothing about its noise
        sigma2 = float(residual @ residual) / dof if dof > 0 else float("nan")
        stderr = np.sqrt(np.clip(np.diag(inverse @ design.T @ design @ inverse) * sigma2, 0, None))
        for j, (block, where) in enumerate(keys, start=1):
            effects.append(Effect(f"{block}@{where}", block, where, name, float(beta[j]), float(stderr[j]), int((X[:, j - 1] > 0).sum())))
    return effects


def effects_frame(effects: list[Effect]) -> pd.DataFrame:
    return pd.DataFrame([e.__dict__ for e in effects])


def _fmt(name: str, estimate: float, stderr: float) -> str:
    return metric(name).format(estimate, stderr, signed=True) if name in METRICS else f"{estimate:+.3g} {name} (± {stderr:.2g})"


def rules_in_words(table: pd.DataFrame, front: pd.DataFrame, objectives: list[str], max_rules: int = 8) -> list[str]:
    """Placement rules a person can act on, strongest first."""
    rules = []
    effects = fit_effects(table, objectives, "position")
    if effects:
        frame = effects_frame(effects)
        first = frame[frame["objective"] == objectives[0]].copy()
        first["z"] = first["estimate"] / first["stderr"].replace(0, np.nan)
        for _, row in first.sort_values("estimate", ascending=False).head(max_rules).iterrows():
            others = frame[(frame["feature"] == row["feature"]) & (frame["objective"] != objectives[0])]
            parts = [_fmt(objectives[0], row["estimate"], row["stderr"])]
            parts += [_fmt(o["objective"], o["estimate"], o["stderr"]) for _, o in others.iterrows()]
            rules.append(f"{row['block']} at {row['where']}: {', '.join(parts)} (seen in {row['support']} architectures)")
    front_specs = [ArchSpec.parse(s) for s in front["spec"]]
    all_specs = [ArchSpec.parse(s) for s in table["spec"]]
    stages = [stage.name for stage in layout(all_specs[0].backbone).stages] if all_specs else []
    for stage in stages:
        tried = sum(stage in s.stages().values() for s in all_specs)
        on_front = sum(stage in s.stages().values() for s in front_specs)
        if tried >= 3 and on_front == 0:
            rules.append(f"blocks in {stage} never reach the front ({tried} architectures tried)")
    blocks_on_front = sorted({c.block for s in front_specs for c in s.blocks.values()})
    if front_specs:
        counts = [s.num_blocks for s in front_specs]
        rules.append(f"the front uses {min(counts)}-{max(counts)} blocks; block types on it: {', '.join(blocks_on_front) or 'none'}")
    return rules
