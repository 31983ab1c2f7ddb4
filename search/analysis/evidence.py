"""How sure a study can be: standard errors and intervals of every architecture, its probability of
being on the front, and whether any candidate beats the plain backbone beyond seed noise.

Seeded objectives (mAP, rank-k) take their standard error from the study's pooled noise floor
over sqrt(seeds); measured costs from their own (`latency_ratio_se`); FLOPs and params are exact.
When the noise floor rests on few degrees of freedom its SD is itself uncertain, so intervals,
Monte Carlo draws and the significance threshold are widened by Student's t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from attnas.evaluators.metric_registry import METRICS
from attnas.search.noise import NoiseFloor
from attnas.search.pareto import non_dominated_batch, surely_dominated

if TYPE_CHECKING:
    from attnas.search.analysis.view import StudyView


def probability_non_dominated(means: np.ndarray, ses: np.ndarray, directions: list[str], draws: int = 2000,
                              seed: int = 0, chunk: int = 50, margin: float = 5.0) -> np.ndarray:
    """Per row, the share of Monte Carlo draws (each objective ~ Normal(mean, se), independent)
    in which the row is non-dominated. Seeded: the same study gives the same numbers.

    Rows that another row beats by more than `margin` standard errors on both sides in every
    objective get 0 without being drawn (their chance is below 1e-6 a draw, and they dominate
    nothing their dominator does not): a large study draws only the neighbourhood of its front."""
    n, d = means.shape
    if n == 0:
        return np.zeros(0)
    sign = np.where(np.array(directions) == "maximize", -1.0, 1.0)
    loss, spread = means * sign, margin * np.nan_to_num(ses)
    candidates = np.flatnonzero(~surely_dominated(loss - spread, loss + spread))
    means, ses = means[candidates], ses[candidates]
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(candidates))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        loss = (means[None] + rng.standard_normal((size, len(candidates), d)) * ses[None]) * sign  # (draws, n, d)
        hits += non_dominated_batch(loss).sum(axis=0)
    probability = np.zeros(n)
    probability[candidates] = hits / draws
    return probability


def t_factor(dof: float) -> float:
    """How much wider a 95% interval is when the SD behind it comes from `dof` degrees of freedom
    (Student's t over the normal quantile): 2.2 for 2, 1.18 for 8, 1 for exact SDs."""
    return 1.0 if not np.isfinite(dof) else float(stats.t.ppf(0.975, dof) / stats.norm.ppf(0.975))


def standard_errors(table: pd.DataFrame, objectives: list[str], floors: dict[str, NoiseFloor]) -> pd.DataFrame:
    """`<objective>_se`: seeded metrics from the study's final noise floor over sqrt(seeds) (NaN
    without one); measured costs from their own standard error (`latency_ratio_se`); FLOPs and
    params are exact (0). The 95% intervals `_lo`/`_hi` use Student's t for a noise floor
    estimated from few degrees of freedom."""
    for name in objectives:
        widen = 1.0
        if name in METRICS and METRICS[name].seeded:
            floor = floors.get(name)
            se = table["seeds"].map(floor.se) if floor is not None else pd.Series(np.nan, index=table.index)
            widen = t_factor(floor.dof) if floor is not None else 1.0
        elif f"{name}_se" in table:
            se = table[f"{name}_se"].astype(float)
        else:
            se = pd.Series(0.0, index=table.index)
        table[f"{name}_se"] = se.astype(float)
        table[f"{name}_lo"] = table[name] - 1.96 * widen * table[f"{name}_se"]
        table[f"{name}_hi"] = table[name] + 1.96 * widen * table[f"{name}_se"]
    return table


def accuracy_objective(objectives: list[str]) -> str | None:
    """The first objective that training seeds move (mAP, rank-1, ...), if any."""
    return next((o for o in objectives if o in METRICS and METRICS[o].seeded), None)


def gains_over_plain(table: pd.DataFrame, objectives: list[str], directions: list[str]) -> pd.DataFrame:
    """`gain`, `gain_se`, `gain_z`: each architecture's improvement over the plain backbone on the
    accuracy objective, the standard error of that difference (independent runs:
    sqrt(se_a^2 + se_plain^2)) and their ratio. NaN when there is no accuracy objective or no
    plain backbone in the study."""
    name = accuracy_objective(objectives)
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty:
        table["gain"] = table["gain_se"] = table["gain_z"] = np.nan
        return table
    sign = 1.0 if directions[objectives.index(name)] == "maximize" else -1.0
    base = plain.iloc[0]
    table["gain"] = sign * (table[name] - base[name])
    table["gain_se"] = np.sqrt(table[f"{name}_se"] ** 2 + base[f"{name}_se"] ** 2)
    table["gain_z"] = table["gain"] / table["gain_se"]
    table.loc[table["num_blocks"] == 0, ["gain", "gain_z"]] = 0.0
    return table


@dataclass
class Verdict:
    """Does any candidate beat the plain backbone beyond seed noise?"""

    objective: str | None
    plain: str | None
    min_gain_se: float
    significant: list[str]  # specs whose gain exceeds `threshold` standard errors
    threshold: float  # min_gain_se, widened by Student's t for a noise floor from few degrees of freedom
    best_spec: str | None
    best_gain: float
    best_se: float

    def sentence(self) -> str:
        if self.objective is None:
            return "no objective depends on the training seed: nothing to test against seed noise"
        if self.plain is None:
            return (f"the plain backbone was not evaluated, so no gain in {self.objective} can be tested; "
                    f"enqueue it (space.references) and search again")
        m = METRICS[self.objective]
        best = m.format(self.best_gain, self.best_se, signed=True) if self.best_spec else "n/a"
        needed = f"{self.min_gain_se:g}" + (f" (widened to {self.threshold:.2g} for the noise floor's few degrees of "
                                            f"freedom)" if self.threshold > self.min_gain_se * 1.001 else "")
        if not self.significant:
            return (f"no candidate beats {self.plain} beyond seed noise at this budget: best {best} "
                    f"({self.best_spec}); a gain must exceed {needed} standard errors")
        return (f"{len(self.significant)} candidate(s) beat {self.plain} by more than {needed} standard "
                f"errors of {self.objective}; best {best} ({self.best_spec})")


def verdict(v: "StudyView", min_gain_se: float = 2.0) -> Verdict:
    name = accuracy_objective(v.objectives)
    table = v.architectures
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty:
        return Verdict(name, None if plain.empty else plain.iloc[0]["spec"], min_gain_se, [], min_gain_se, None, np.nan, np.nan)
    threshold = min_gain_se * (t_factor(v.noise_floor[name].dof) if name in v.noise_floor else 1.0)
    candidates = table[(table["num_blocks"] > 0) & table["feasible"]]
    significant = candidates[candidates["gain_z"] > threshold]
    best = candidates.sort_values("gain", ascending=False).iloc[0] if not candidates.empty else None
    return Verdict(name, plain.iloc[0]["spec"], min_gain_se, list(significant["spec"]), threshold,
                   None if best is None else best["spec"], np.nan if best is None else float(best["gain"]),
                   np.nan if best is None else float(best["gain_se"]))
