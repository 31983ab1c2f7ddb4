"""How much each position matters for an objective, with the uncertainty a study of a few dozen
noisy architectures leaves.

The importance of a position is the share of the objective's variance over architectures that
"what sits there" (`none` or a block variant) explains: eta^2 = SS_between / SS_total of a one-way
layout (features that say what they are, not the sampler's slots). Optuna's importance
evaluators give a point value only, and at search budgets a position explains some variance by
chance alone: with k variants over n architectures the expected eta^2 of a position that does
nothing is (k - 1) / (n - 1). So each importance comes with a case-bootstrap 90% interval and that
chance level; one whose interval reaches down to its chance level is not distinguishable from
noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attnas.models.backbones import layout
from attnas.search.analysis.rules import parse_spec

COLUMNS = ["parameter", "importance", "lo", "hi", "chance", "distinguishable"]


def _eta_squared(y: np.ndarray, codes: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """eta^2 per bootstrap row: y (n,), codes (n,), weights (draws, n) counts of each architecture."""
    total_w = weights.sum(axis=1)
    mean = (weights * y).sum(axis=1) / total_w
    ss_total = (weights * (y[None] - mean[:, None]) ** 2).sum(axis=1)
    ss_between = np.zeros(len(weights))
    for level in range(k):
        member = codes == level
        w = weights[:, member].sum(axis=1)
        group_mean = np.divide((weights[:, member] * y[member]).sum(axis=1), w, out=np.zeros_like(w), where=w > 0)
        ss_between += w * (group_mean - mean) ** 2
    return np.divide(ss_between, ss_total, out=np.zeros_like(ss_total), where=ss_total > 0)


def position_importances(table: pd.DataFrame, objective: str, backbone: str, bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """One row per position that varies: importance (eta^2), its 90% bootstrap interval, the chance
    level and whether the interval clears it. Empty below four architectures."""
    table = table[np.isfinite(table[objective].to_numpy(dtype=float))]
    specs = [parse_spec(s) for s in table["spec"]]
    used = sorted({pos for spec in specs for pos in spec.blocks}, key=layout(backbone).key)
    if len(specs) < 4 or not used:
        return pd.DataFrame(columns=COLUMNS)
    y = table[objective].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(len(y)), rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=bootstrap)])
    rows = []
    for pos in used:
        labels = [str(spec.blocks[pos]) if pos in spec.blocks else "none" for spec in specs]
        levels = sorted(set(labels))
        if len(levels) < 2:
            continue
        codes = np.array([levels.index(label) for label in labels])
        eta = _eta_squared(y, codes, len(levels), weights)
        lo, hi = np.percentile(eta[1:], [5, 95])
        chance = (len(levels) - 1) / (len(y) - 1)
        rows.append([pos, float(eta[0]), float(lo), float(hi), chance, bool(lo > chance)])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("importance", ascending=False).reset_index(drop=True)
