"""The probability of being on the Pareto front when every objective is known only up to a
standard error: the share of Monte Carlo draws (each objective ~ Normal(mean, se), independent)
in which an architecture is non-dominated. Seeded: the same study gives the same numbers.

Shared by the analysis (the dashboard's colours, the shortlist of a two-stage search) and the
loop (racing gives more seeds to architectures whose probability is undecided), so it lives
below both. Two objectives, the usual case, take a sort per draw (n log n) instead of the n^2
pairwise comparison: a 500-architecture study costs milliseconds, not seconds.
"""

from __future__ import annotations

import numpy as np


def _non_dominated_2d(loss: np.ndarray) -> np.ndarray:
    """(draws, n) mask of rows of (draws, n, 2) losses that no other row of their draw dominates
    (identical rows all kept). Sorted by (first, second) loss, a row is dominated exactly when
    some row before it, other than its identical twins, has a second loss at most its own."""
    draws, n, _ = loss.shape
    order = np.lexsort((loss[..., 1], loss[..., 0]), axis=-1)
    a, b = np.take_along_axis(loss[..., 0], order, -1), np.take_along_axis(loss[..., 1], order, -1)
    twin = np.zeros((draws, n), dtype=bool)
    twin[:, 1:] = (a[:, 1:] == a[:, :-1]) & (b[:, 1:] == b[:, :-1])
    start = np.maximum.accumulate(np.where(twin, 0, np.arange(n)[None]), axis=-1)  # first row of each run of twins
    best_before = np.full((draws, n), np.inf)
    best_before[:, 1:] = np.minimum.accumulate(b, axis=-1)[:, :-1]
    dominated = np.take_along_axis(best_before, start, -1) <= b
    result = np.empty((draws, n), dtype=bool)
    np.put_along_axis(result, order, ~dominated, -1)
    return result


def probability_non_dominated(means: np.ndarray, ses: np.ndarray, directions: list[str], draws: int = 2000,
                              seed: int = 0, chunk: int = 50) -> np.ndarray:
    """Per row, the share of draws in which the row is non-dominated."""
    means, ses = np.asarray(means, dtype=float), np.asarray(ses, dtype=float)
    n, d = means.shape
    if n == 0:
        return np.zeros(0)
    sign = np.where(np.array(directions) == "maximize", -1.0, 1.0)
    rng = np.random.default_rng(seed)
    hits = np.zeros(n)
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        loss = (means[None] + rng.standard_normal((size, n, d)) * ses[None]) * sign  # (draws, n, d)
        if d == 2:
            hits += _non_dominated_2d(loss).sum(axis=0)
            continue
        le = (loss[:, :, None, :] <= loss[:, None, :, :]).all(-1)  # [k, j, i]: j at least as good as i everywhere
        lt = (loss[:, :, None, :] < loss[:, None, :, :]).any(-1)
        hits += (~(le & lt).any(axis=1)).sum(axis=0)
    return hits / draws
