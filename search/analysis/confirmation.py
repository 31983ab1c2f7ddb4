"""Confirmation on fresh seeds: the pick(s) of a search and the plain backbone retrained under seeds
the study never used, judged on those runs alone.

A search picks the candidate with the best estimate out of many, so its estimate is biased
upwards (the winner's curse): the more candidates, the more of the winner's lead is luck.
Training the pick again under new seeds gives an estimate that selection never saw. The decision
rests on those runs alone: each pick's gain is its seed-blocked difference with the plain
backbone over the confirmation seeds (`search.seed_blocks`), and its noise is the residual of the
confirmation runs themselves (for one pick, the spread of its paired differences). The study's
residual is not borrowed: it is estimated from the references, and when they are much alike (blocks
that start as identity and barely train) it understates the noise of a pick that differs more.
Every pick ever sent to confirmation is one family: Holm's step-down at `alpha`, one-sided, so
trying pick after pick costs its multiplicity.

The record lives in the study (`user_attrs["confirmation"]`), written after every run, so an
interrupted confirmation resumes and nothing is trained twice:

    {"objective": "mAP", "plain": "resnet50", "seeds": [1002, 1003, 1004], "alpha": 0.05,
     "runs": {spec: {"seeds": [...], "mAP": [...], ...}},        # as trials store per_seed
     "picks": [{"spec": ..., "search_gain": ..., "search_se": ..., "search_dof": ...}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import optuna

from attnas.evaluators.metric_registry import METRICS
from attnas.search.analysis.multiplicity import holm, one_sided_p
from attnas.search.seed_blocks import fit_seed_blocked

KEY = "confirmation"


@dataclass
class Confirmed:
    """One pick's confirmation: its gain on fresh seeds beside the search's estimate."""

    spec: str
    gain: float
    se: float
    p: float  # one-sided, this pick alone
    confirmed: bool  # Holm over every pick of the study
    seeds: int
    search_gain: float
    search_se: float


@dataclass
class Confirmation:
    objective: str
    plain: str
    seeds: list[int]
    alpha: float
    dof: int  # of the pooled residual
    residual_sd: float
    results: list[Confirmed] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # picks whose fresh-seed runs are incomplete

    def result(self, spec: str) -> Confirmed | None:
        return next((r for r in self.results if r.spec == spec), None)

    @property
    def confirmed(self) -> list[str]:
        return [r.spec for r in self.results if r.confirmed]

    def describe(self, result: Confirmed, named: bool = True) -> str:
        m = METRICS[self.objective]
        return (f"{result.spec + ': ' if named else ''}{m.format(result.gain, result.se, signed=True)} on {result.seeds} fresh seeds "
                f"({'confirmed' if result.confirmed else 'not confirmed'}, one-sided p {result.p:.2g}); the search said "
                f"{m.format(result.search_gain, result.search_se, signed=True)}")

    def sentence(self) -> str:
        if not self.results:
            return f"confirmation on fresh seeds under way: {len(self.pending)} pick(s) pending"
        head = (f"confirmation on {len(self.seeds)} fresh seeds ({', '.join(map(str, self.seeds))}) against {self.plain}: "
                f"{len(self.confirmed)} of {len(self.results)} pick(s) confirmed (family-wise {self.alpha:.0%}, Holm; residual "
                f"SD {METRICS[self.objective].format(self.residual_sd)}, {self.dof} degrees of freedom)")
        return head + "".join(f"; {self.describe(r)}" for r in self.results)


def decide(record: dict) -> Confirmation:
    """The decision a confirmation record supports, from its own runs."""
    name, plain, seeds, alpha = record["objective"], record["plain"], list(record["seeds"]), float(record.get("alpha", 0.05))
    runs = record.get("runs", {})
    complete = {s: r for s, r in runs.items() if set(seeds) <= set(r.get("seeds", []))}
    picks = [p for p in record.get("picks", []) if p["spec"] != plain]
    done = [p for p in picks if p["spec"] in complete and plain in complete]
    fit = fit_seed_blocked({s: _only(r, seeds) for s, r in complete.items()}, name, plain) if done else None
    dof = fit.floor.dof if fit is not None and fit.floor is not None else 0
    residual_sd = fit.floor.residual_sd if dof else float("nan")
    result = Confirmation(name, plain, seeds, alpha, dof, residual_sd, pending=[p["spec"] for p in picks if p not in done])
    if fit is None:
        return result
    sign = 1.0 if METRICS[name].direction == "maximize" else -1.0
    rows = [fit.index(p["spec"]) for p in done]
    gain = sign * fit.gain[rows]
    se = residual_sd * fit.unit_se()[rows]
    p_values = one_sided_p(gain / se, dof) if dof else np.full(len(rows), np.nan)
    confirmed = holm(p_values, alpha)
    for pick, g, s, p, ok in zip(done, gain, se, p_values, confirmed):
        result.results.append(Confirmed(pick["spec"], float(g), float(s), float(p), bool(ok), len(seeds),
                                        float(pick.get("search_gain", np.nan)), float(pick.get("search_se", np.nan))))
    return result


def _only(record: dict, seeds: list[int]) -> dict:
    """A per-seed record restricted to `seeds` (a pick confirmed with more seeds before keeps them)."""
    keep = [i for i, s in enumerate(record["seeds"]) if s in seeds]
    return {k: [v[i] for i in keep] for k, v in record.items() if isinstance(v, list)}


def confirmation_of(study: optuna.Study) -> Confirmation | None:
    """The study's confirmation, decided; None when none ran."""
    record = study.user_attrs.get(KEY)
    if not record:
        return None
    return decide(record)
