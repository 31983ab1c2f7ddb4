"""How much a candidate would add to a front: exact hypervolume gains for two objectives (all
candidates at once, vectorised: a proposal scores thousands), a random Chebyshev scalarisation
(ParEGO) for more.

Everything is in losses (every objective minimised), as in `search/pareto.py`.
"""

from __future__ import annotations

import numpy as np

from attnas.search.pareto import pareto_mask


def hypervolume_gains_2d(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each candidate: the area it alone adds to what `front` dominates below `reference`.

    The front dominates a staircase: between consecutive x of its points (x ascending, y
    descending) everything above the last y. A candidate adds, along x from its own x to the
    reference, the height between its y and that staircase."""
    front = front[(front < reference).all(axis=1)]
    front = front[pareto_mask(front, ["minimize", "minimize"])] if len(front) else front
    front = front[np.lexsort((front[:, 1], front[:, 0]))]
    front = front[np.concatenate([[True], np.diff(front[:, 1]) < 0])] if len(front) else front  # drop ties
    lo = np.concatenate([[-np.inf], front[:, 0]])
    hi = np.concatenate([front[:, 0], [reference[0]]])
    level = np.concatenate([[reference[1]], front[:, 1]])
    width = np.clip(np.minimum(hi[None, :], reference[0]) - np.maximum(lo[None, :], candidates[:, :1]), 0.0, None)
    height = np.clip(np.minimum(level[None, :], reference[1]) - candidates[:, 1:2], 0.0, None)
    return (width * height).sum(axis=1)


def chebyshev_scores(front: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ParEGO: minus a random weighted Chebyshev distance to the front's ideal point (higher is better)."""
    weights = rng.dirichlet(np.ones(front.shape[1]))
    span = np.ptp(front, axis=0) + 1e-9
    return -np.max(weights * (candidates - front.min(axis=0)) / span, axis=1)
