"""The probability of being on the Pareto front when every objective is known only up to a
standard error: the share of Monte Carlo draws (each objective ~ Normal(mean, se), independent)
in which an architecture is non-dominated. Seeded: the same study gives the same numbers.

Shared by the analysis (the dashboard's colours, the shortlist of a two-stage search) and the
loop (racing gives more seeds to architectures whose probability is undecided), so it lives
below both. Two objectives, the usual case, take a sort per draw (n log n) instead of the n^2
pairwise comparison (`pareto.non_dominated_batch`), and architectures surely dominated are not
drawn at all: a 10,000-architecture study costs seconds.
"""

from __future__ import annotations

import numpy as np

from attnas.search.pareto import non_dominated_batch, surely_dominated


def probability_non_dominated(means: np.ndarray, ses: np.ndarray, directions: list[str], draws: int = 2000,
                              seed: int = 0, chunk: int = 50, margin: float = 5.0) -> np.ndarray:
    """Per row, the share of draws in which the row is non-dominated.

    Rows that another row beats by more than `margin` standard errors on both sides in every
    objective get 0 without being drawn (their chance is below 1e-6 a draw, and they dominate
    nothing their dominator does not): a large study draws only the neighbourhood of its front."""
    means, ses = np.asarray(means, dtype=float), np.asarray(ses, dtype=float)
    n, d = means.shape
    if n == 0:
        return np.zeros(0)
    sign = np.where(np.array(directions) == "maximize", -1.0, 1.0)
    loss, spread = means * sign, margin * np.nan_to_num(ses)
    candidates = np.flatnonzero(~surely_dominated(loss - spread, loss + spread))
    means, ses = means[candidates], np.nan_to_num(ses[candidates])
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(candidates))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        drawn = (means[None] + rng.standard_normal((size, len(candidates), d)) * ses[None]) * sign  # (draws, n, d)
        hits += non_dominated_batch(drawn).sum(axis=0)
    probability = np.zeros(n)
    probability[candidates] = hits / draws
    return probability
