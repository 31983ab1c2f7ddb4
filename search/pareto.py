"""Pareto dominance and hypervolume: the one implementation the search loop (samplers, MO-ASHA
promotion) and the analysis (fronts, reports, benchmarks) share.

Everything works on *losses* internally (every objective minimised); `to_loss` turns values with
Optuna directions into losses. The hypervolume is exact: a sweep in two dimensions, slicing along
the last objective (HSO) above two. Optuna keeps its own WFG implementation private
(`optuna._hypervolume`), and its only public route, `plot_hypervolume_history`, draws a figure
for every call; fronts here are small (tens of points), so the exact slicing costs microseconds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def to_loss(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Values with Optuna directions as losses (maximised objectives negated)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.array(list(directions)) == "maximize", -values, values)


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated rows (ties: identical points are all kept, as Optuna's best_trials does)."""
    loss = to_loss(values, directions)
    if len(loss) == 0:
        return np.zeros(0, dtype=bool)
    better_eq = (loss[:, None, :] <= loss[None, :, :]).all(-1)  # [j, i]: j at least as good as i everywhere
    better = (loss[:, None, :] < loss[None, :, :]).any(-1)
    return ~(better_eq & better).any(axis=0)


def non_dominated_batch(loss: np.ndarray, chunk_elements: int = 4_000_000) -> np.ndarray:
    """For a batch of loss point sets (k, n, d): which rows of each set no other row dominates
    (identical rows all stay). Two objectives take a sort per set, O(k n log n), which is what
    makes the Monte Carlo of a 10,000-architecture study affordable; more objectives compare all
    pairs, in slices of at most `chunk_elements` comparisons at a time."""
    k, n, d = loss.shape
    if n == 0:
        return np.zeros((k, 0), dtype=bool)
    if d == 2:
        order = np.lexsort((loss[:, :, 1], loss[:, :, 0]), axis=-1)  # by the first loss, ties by the second
        first = np.take_along_axis(loss[:, :, 0], order, axis=1)
        second = np.take_along_axis(loss[:, :, 1], order, axis=1)
        # the start of each run of equal first losses; everything before it is strictly better there
        starts = np.concatenate([np.ones((k, 1), dtype=bool), first[:, 1:] != first[:, :-1]], axis=1)
        group = np.maximum.accumulate(np.where(starts, np.arange(n)[None, :], 0), axis=1)
        best_before = np.concatenate([np.full((k, 1), np.inf), np.minimum.accumulate(second, axis=1)[:, :-1]], axis=1)
        rows = np.arange(k)[:, None]
        dominated = (best_before[rows, group] <= second) | (second[rows, group] < second)
        mask = np.empty((k, n), dtype=bool)
        np.put_along_axis(mask, order, ~dominated, axis=1)
        return mask
    mask = np.empty((k, n), dtype=bool)
    step = max(1, chunk_elements // max(n * n * d, 1))
    for start in range(0, k, step):
        part = loss[start:start + step]
        le = (part[:, :, None, :] <= part[:, None, :, :]).all(-1)  # [b, j, i]: j at least as good as i everywhere
        lt = (part[:, :, None, :] < part[:, None, :, :]).any(-1)
        mask[start:start + step] = ~(le & lt).any(axis=1)
    return mask


def surely_dominated(optimistic: np.ndarray, pessimistic: np.ndarray, chunk_elements: int = 4_000_000) -> np.ndarray:
    """Rows whose optimistic loss some other row's pessimistic loss beats strictly in every
    objective (n, d each). Such a row is dominated in every draw that stays inside those bounds,
    and whatever it would dominate, its dominator dominates too: a Monte Carlo of the front can
    leave it out. Two objectives take a sort, O(n log n); more compare all pairs in slices."""
    n, d = optimistic.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if d == 2:
        order = np.argsort(pessimistic[:, 0], kind="stable")
        firsts, best = pessimistic[order, 0], np.minimum.accumulate(pessimistic[order, 1])
        before = np.searchsorted(firsts, optimistic[:, 0], side="left")  # rows strictly better in the first loss
        return (before > 0) & (best[np.maximum(before - 1, 0)] < optimistic[:, 1])
    out = np.empty(n, dtype=bool)
    step = max(1, chunk_elements // max(n * d, 1))
    for start in range(0, n, step):
        out[start:start + step] = (pessimistic[None, :, :] < optimistic[start:start + step, None, :]).all(-1).any(-1)
    return out


def pareto_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Front index of each row under non-dominated sorting (0 = non-dominated)."""
    loss = to_loss(values, directions)
    ranks = np.full(len(loss), -1)
    remaining, rank = np.arange(len(loss)), 0
    while len(remaining):
        front = pareto_mask(loss[remaining], ["minimize"] * loss.shape[1])
        ranks[remaining[front]] = rank
        remaining, rank = remaining[~front], rank + 1
    return ranks


def _volume(loss: np.ndarray, reference: np.ndarray) -> float:
    """Dominated volume of loss points strictly better than `reference` in every objective."""
    loss = loss[(loss < reference).all(axis=1)]
    if len(loss) == 0:
        return 0.0
    if loss.shape[1] == 1:
        return float(reference[0] - loss[:, 0].min())
    if loss.shape[1] == 2:
        loss = loss[np.lexsort((loss[:, 1], loss[:, 0]))]
        area, best = 0.0, reference[1]
        for x, y in loss:
            if y < best:
                area += (reference[0] - x) * (best - y)
                best = y
        return float(area)
    # slice along the last objective: between consecutive levels, the (d-1)-volume of the points below
    order = np.argsort(loss[:, -1])
    levels = list(loss[order, -1]) + [reference[-1]]
    total = 0.0
    for k in range(len(order)):
        height = levels[k + 1] - levels[k]
        if height > 0:
            total += height * _volume(loss[order[: k + 1], :-1], reference[:-1])
    return float(total)


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Dominated hypervolume of `values` (objective units, Optuna directions) w.r.t. `reference`."""
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    if len(values) == 0:
        return 0.0
    return _volume(to_loss(values, directions), to_loss(np.asarray(reference, dtype=float)[None], directions)[0])


def hypervolume_gains(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For loss points: how much each candidate alone would add to the front's hypervolume."""
    now = _volume(front, reference)
    return np.array([_volume(np.vstack([front, c]), reference) - now for c in candidates])


def hypervolume_history(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> np.ndarray:
    """Hypervolume of the first k rows, for every k (rows in the order they were found)."""
    values = np.asarray(values, dtype=float)
    history, front = np.zeros(len(values)), np.zeros((0, len(directions)))
    for k in range(len(values)):
        front = np.vstack([front, values[k]])
        front = front[pareto_mask(front, directions)]
        history[k] = hypervolume(front, directions, reference)
    return history
