"""How sure a study can be: standard errors and intervals of every architecture, its probability of
being on the front, and whether any candidate beats the plain backbone beyond seed noise.

Two kinds of uncertainty, for two questions:

* *How good is this architecture?* Its mean over seeds moves with the seed effect shared by all
  architectures and with the residual, so seeded objectives take their standard error from the
  study's pooled noise floor over sqrt(seeds); measured costs from their own (`latency_ratio_se`);
  FLOPs and params are exact. With few degrees of freedom intervals are widened by Student's t.
* *Is it better than the plain backbone?* Compared within the seeds they share, the seed effect
  cancels (`search.seed_blocks`): the gain and its standard error come from the two-way fit, and
  the verdict controls the error over every candidate tested (`multiplicity`): max-t for "does
  any candidate beat it" (family-wise), Benjamini-Hochberg for the list of those that do.

A validation split too small to rank architectures (`evaluators.reid.validation.Resolution`)
voids every claim: its verdict says so instead of naming winners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from attnas.evaluators.metric_registry import METRICS
from attnas.evaluators.reid.resolution import Resolution
from attnas.search.analysis.multiplicity import benjamini_hochberg, max_t_adjusted, one_sided_p
from attnas.search.front_probability import probability_non_dominated  # noqa: F401 - re-exported for the analysis
from attnas.search.noise import NoiseFloor
from attnas.search.seed_blocks import SeedBlockedFit

if TYPE_CHECKING:
    from attnas.search.analysis.view import StudyView


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


def gains_over_plain(table: pd.DataFrame, objectives: list[str], directions: list[str],
                     fits: dict[str, SeedBlockedFit]) -> pd.DataFrame:
    """`gain`, `gain_se`, `gain_z`: each architecture's improvement over the plain backbone on the
    accuracy objective within the seeds they share, its standard error from the residual of the
    two-way fit, and their ratio. NaN without an accuracy objective, a plain backbone, or a
    shared seed."""
    name = accuracy_objective(objectives)
    fit = fits.get(name) if name else None
    table["gain"] = table["gain_se"] = table["gain_z"] = np.nan
    if fit is None or fit.baseline is None:
        return table
    sign = 1.0 if directions[objectives.index(name)] == "maximize" else -1.0
    known = fit.by_spec()
    table["gain"] = [sign * known[s][0] if s in known else np.nan for s in table["spec"]]
    table["gain_se"] = [known[s][1] if s in known else np.nan for s in table["spec"]]
    table["gain_z"] = table["gain"] / table["gain_se"]
    table.loc[table["spec"] == fit.baseline, ["gain", "gain_z"]] = 0.0
    return table


@dataclass
class Verdict:
    """Does any candidate beat the plain backbone beyond seed noise, with the error controlled
    over every candidate tested?"""

    objective: str | None
    plain: str | None
    alpha: float  # family-wise error of "any beats it", false discovery rate of the list
    tested: int = 0  # candidates with a gain estimable within shared seeds
    significant: list[str] = field(default_factory=list)  # Benjamini-Hochberg at `alpha`
    any_p: float = np.nan  # max-t adjusted p of the strongest candidate (family-wise)
    best_spec: str | None = None
    best_gain: float = np.nan
    best_se: float = np.nan
    dof: int = 0  # residual degrees of freedom behind every standard error
    untestable: int = 0  # candidates that share no seed with the plain backbone
    cannot_rank: str = ""  # why the validation split cannot rank architectures; "" when it can

    @property
    def any_beats(self) -> bool:
        return bool(np.isfinite(self.any_p) and self.any_p <= self.alpha)

    def sentence(self) -> str:
        if self.objective is None:
            return "no objective depends on the training seed: nothing to test against seed noise"
        if self.plain is None:
            return (f"the plain backbone was not evaluated, so no gain in {self.objective} can be tested; "
                    f"enqueue it (space.references) and search again")
        m = METRICS[self.objective]
        best = m.format(self.best_gain, self.best_se, signed=True) if self.best_spec else "n/a"
        if self.cannot_rank:
            return (f"no candidate beats {self.plain} beyond seed noise at this budget: the validation split cannot rank "
                    f"architectures ({self.cannot_rank}); best {best} ({self.best_spec}) is not evidence")
        if self.dof < 1:
            return (f"no candidate beats {self.plain} beyond seed noise at this budget: best {best} ({self.best_spec}); the "
                    f"seed noise is unknown (no spec shares two or more seeds with another), set evaluator.reference_repeats >= 2")
        tested = (f"{self.tested} candidate{'s' if self.tested != 1 else ''} tested within shared seeds"
                  + (f", {self.untestable} without a shared seed left out" if self.untestable else ""))
        if self.significant:
            return (f"{len(self.significant)} of {self.tested} candidates beat {self.plain} beyond seed noise (false discovery "
                    f"rate {self.alpha:.0%}; that any does: family-wise max-t p {self.any_p:.2g}); best {best} "
                    f"({self.best_spec}); {tested}")
        if self.any_beats:
            return (f"no candidate beats {self.plain} beyond seed noise on its own at a {self.alpha:.0%} false discovery "
                    f"rate, although the family-wise max-t test says some does (p {self.any_p:.2g}): best {best} "
                    f"({self.best_spec}); {tested}")
        return (f"no candidate beats {self.plain} beyond seed noise at this budget: best {best} ({self.best_spec}); "
                f"{tested}, family-wise error {self.alpha:.0%} (max-t p {self.any_p:.2g})")


def verdict(v: "StudyView", alpha: float = 0.05) -> Verdict:
    """The study's verdict at error level `alpha` (family-wise for "any", FDR for the list)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), the error level of the verdict; got {alpha}")
    name = accuracy_objective(v.objectives)
    table = v.architectures
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty:
        return Verdict(name, None if plain.empty else plain.iloc[0]["spec"], alpha)
    judged = Verdict(name, plain.iloc[0]["spec"], alpha)
    candidates = table[(table["num_blocks"] > 0) & table["feasible"] & np.isfinite(table[name].to_numpy(dtype=float))]
    ranked = candidates[np.isfinite(candidates["gain"].to_numpy(dtype=float))].sort_values("gain", ascending=False)
    judged.untestable = len(candidates) - len(ranked)
    if not ranked.empty:
        best = ranked.iloc[0]
        judged.best_spec, judged.best_gain, judged.best_se = best["spec"], float(best["gain"]), float(best["gain_se"])
    resolution = v.resolution
    if resolution is not None and not resolution.can_rank:
        judged.cannot_rank = resolution.shortfall()
        return judged
    fit = v.blocked.get(name)
    if fit is None or fit.floor is None or fit.floor.dof < 1 or ranked.empty:
        return judged
    judged.dof, judged.tested = fit.floor.dof, len(ranked)
    rows = [fit.index(s) for s in ranked["spec"]]
    t = ranked["gain_z"].to_numpy(dtype=float)
    adjusted = max_t_adjusted(t, fit.factor[rows], fit.own[rows], fit.floor.dof)
    judged.any_p = float(adjusted.min())
    chosen = benjamini_hochberg(one_sided_p(t, fit.floor.dof), alpha)
    judged.significant = list(ranked["spec"][chosen])
    return judged


def resolution_of(study) -> Resolution | None:
    """The validation split's resolution the study recorded (`validation.resolution`), if any."""
    recorded = (study.user_attrs.get("validation") or {}).get("resolution")
    return Resolution.from_dict(recorded) if recorded else None


def difference_se(v: "StudyView", a: pd.Series, b: pd.Series) -> float:
    """Standard error of the difference of two architectures on the first objective: within shared
    seeds when the study has a seed-blocked fit of it, else from their own standard errors."""
    name = v.objectives[0]
    fit = v.blocked.get(name)
    if fit is not None and fit.floor is not None and fit.floor.dof > 0 and a["spec"] in fit.specs and b["spec"] in fit.specs:
        i, j = fit.index(a["spec"]), fit.index(b["spec"])
        if np.isfinite(fit.own[i]) and np.isfinite(fit.own[j]):
            spread = fit.factor[i] - fit.factor[j]
            return float(fit.floor.residual_sd * np.sqrt(spread @ spread + fit.own[i] + fit.own[j]))
    se = float(np.hypot(a.get(f"{name}_se", np.nan), b.get(f"{name}_se", np.nan)))
    return se if np.isfinite(se) else 0.0
