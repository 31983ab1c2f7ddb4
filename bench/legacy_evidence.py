"""The evidence method before issue 20, kept only so `bench/evidence.py` can measure it beside the
new one on the same simulated studies (attnas itself no longer uses it).

* Verdict: each candidate's gain is its mean minus the plain backbone's mean over all seeds, its
  standard error sqrt(se_a^2 + se_plain^2) from the pooled within-spec SD over sqrt(seeds)
  (seed effects not removed, runs treated as independent); significant when the gain exceeds
  2 standard errors, widened by Student's t for the noise floor's degrees of freedom; no
  correction for the number of candidates.
* Rules: the same additive ridge model on raw means; an effect is a finding when the wider of its
  95% percentile-bootstrap interval and its 95% model interval excludes zero and two or more
  architectures show it; no correction for the number of effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attnas.search.analysis.evidence import accuracy_objective, t_factor
from attnas.search.analysis.rules import _features, _refits, _solve
from attnas.space import ArchSpec


def significant(table: pd.DataFrame, objectives: list[str], floors: dict, min_gain_se: float = 2.0) -> list[str]:
    """The candidates the old verdict called significant (`table`: a view's architectures)."""
    name = accuracy_objective(objectives)
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty or name not in floors:
        return []
    base = plain.iloc[0]
    gain = table[name] - base[name]
    se = np.sqrt(table[f"{name}_se"] ** 2 + base[f"{name}_se"] ** 2)
    threshold = min_gain_se * t_factor(floors[name].dof)
    chosen = (table["num_blocks"] > 0) & table["feasible"] & (gain / se > threshold)
    return list(table.loc[chosen, "spec"])


def findings(table: pd.DataFrame, objectives: list[str], floors: dict, level: str = "stage", bootstrap: int = 200,
             seed: int = 0, ridge: float = 1e-3) -> list[tuple[str, str, float]]:
    """(objective, feature, estimate) of every effect the old rules stated as a finding."""
    specs = [ArchSpec.parse(s) for s in table["spec"]]
    X, keys = _features(specs, level)
    if not keys:
        return []
    design = np.hstack([np.ones((len(X), 1)), X])
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(X), np.full(len(X), 1.0 / len(X)), size=bootstrap).astype(float)  # the same case bootstrap
    present = (counts @ (X > 0)) > 0
    found = []
    for name in objectives:
        y = table[name].to_numpy(dtype=float)
        variance = table[f"{name}_se"].to_numpy(dtype=float) ** 2
        weights = 1.0 / variance if np.isfinite(variance).all() and (variance > 0).all() else table["seeds"].to_numpy(dtype=float)
        beta, mapping = _solve(design, y, weights / weights.mean(), ridge)
        model_se = np.sqrt(np.clip((mapping ** 2) @ np.nan_to_num(variance), 0, None))[1:]
        half = 1.96 * (t_factor(floors[name].dof) if name in floors else 1.0) * model_se
        boot = np.where(present, _refits(design, y, weights / weights.mean(), counts, ridge)[:, 1:], np.nan)
        for j, (block, where) in enumerate(keys):
            column = boot[:, j][np.isfinite(boot[:, j])]
            if len(column) < 20 or (X[:, j] > 0).sum() < 2:
                continue
            lo, hi = np.percentile(column, [2.5, 97.5])
            lo, hi = min(lo, beta[j + 1] - half[j]), max(hi, beta[j + 1] + half[j])
            if lo > 0 or hi < 0:
                found.append((name, f"{block}@{where}", float(beta[j + 1])))
    return found
