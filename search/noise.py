"""Seed noise: how much a metric moves when only the training seed changes.

At search budgets, two architectures often differ by less than two seeds of one architecture.
These are the standard one-way random-effects statistics over specs (groups) and seeds
(repeats within a group):

* pooled within-spec standard deviation: sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1)), the
  seed noise of one training run, from every spec trained under two or more seeds;
* ICC(1): the share of the variance of one run that is explained by the architecture,
  (MSB - MSW) / (MSB + (n0 - 1) MSW) with n0 the effective group size (unbalanced groups);
  near 0 means rankings are coin tosses, near 1 means seeds hardly matter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class NoiseFloor:
    """Pooled seed noise of one metric, with what it rests on."""

    sd: float  # standard deviation of one training run around its spec's mean
    dof: int  # sum of (seeds - 1) over the repeated specs
    specs: int  # specs trained under 2+ seeds
    seeds: int  # training runs of those specs

    def se(self, n_seeds: int) -> float:
        """Standard error of a mean over `n_seeds` runs of one spec."""
        return self.sd / np.sqrt(max(n_seeds, 1))

    def to_dict(self) -> dict:
        return asdict(self)


def pooled_sd(groups: Sequence[Sequence[float]]) -> NoiseFloor | None:
    """Pooled within-group SD over groups of two or more values; None when there are none."""
    repeated = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if not repeated:
        return None
    dof = sum(len(g) - 1 for g in repeated)
    within = sum(float(((g - g.mean()) ** 2).sum()) for g in repeated)
    return NoiseFloor(float(np.sqrt(within / dof)), dof, len(repeated), sum(len(g) for g in repeated))


@dataclass(frozen=True)
class VarianceSplit:
    icc: float  # share of one run's variance explained by the spec
    arch_sd: float  # SD of the specs' true means (0 when MSB <= MSW)
    seed_sd: float  # within-spec SD
    specs: int
    runs: int


def icc(groups: Sequence[Sequence[float]]) -> VarianceSplit:
    """One-way random-effects ICC(1) and its variance components; groups need 2+ values each."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g) >= 1]
    k, n = len(arrays), sum(len(g) for g in arrays)
    if k < 2 or n <= k:
        raise ValueError(f"ICC needs at least 2 specs and more runs than specs; got {k} specs, {n} runs")
    grand = np.concatenate(arrays).mean()
    msb = sum(len(g) * (g.mean() - grand) ** 2 for g in arrays) / (k - 1)
    msw = sum(float(((g - g.mean()) ** 2).sum()) for g in arrays) / (n - k)
    n0 = (n - sum(len(g) ** 2 for g in arrays) / n) / (k - 1)
    value = (msb - msw) / (msb + (n0 - 1) * msw) if msb + (n0 - 1) * msw > 0 else 0.0
    return VarianceSplit(float(value), float(np.sqrt(max(msb - msw, 0.0) / n0)), float(np.sqrt(msw)), k, n)


def richest_records(trials) -> dict[str, dict]:
    """Per spec, the finished trial's record with the most seeds: {"seeds": [...], "per_seed":
    {metric: [...]}} (a re-proposal copies its original, so counting it again would double it)."""
    best: dict[str, dict] = {}
    for trial in trials:
        spec, per_seed = trial.user_attrs.get("spec"), trial.user_attrs.get("per_seed")
        if spec is None or not per_seed:
            continue
        if spec not in best or len(per_seed["seeds"]) > len(best[spec]["seeds"]):
            best[spec] = per_seed
    return best


def noise_floors(trials, metrics: Sequence[str]) -> dict[str, NoiseFloor]:
    """Pooled seed noise of each metric over every spec with 2+ seeds among `trials`."""
    records = richest_records(trials).values()
    floors = {}
    for name in metrics:
        floor = pooled_sd([r[name] for r in records if name in r])
        if floor is not None:
            floors[name] = floor
    return floors
