"""Error control over everything a study tested.

A study tries tens to hundreds of candidates, and testing each at 2 standard errors makes a
"winner" of noise ever more surely as it grows (issue 20: 10 of 30 null studies at 50
candidates). Three standard tools, each for the question it answers:

* **max-t** (family-wise error): "does any candidate beat the plain backbone?" One-sided
  single-step max-t adjusted p-values, P(max_j T_j >= t_i) under the global null, by Monte Carlo
  over the real dependence: every gain shares the plain backbone's estimate (a covariance factor
  from `search.seed_blocks`) and one residual SD estimated from `dof` degrees of freedom
  (a multivariate t). Less conservative than Bonferroni or Holm for these positively correlated
  comparisons, never more (its adjusted p is at most m p).
* **Benjamini-Hochberg** (false discovery rate): which candidates to list as significant, and
  which placement effects to state as findings.
* **Holm** (family-wise, no dependence assumed): a handful of confirmations on fresh seeds.

With FDR selection, intervals are shown at the false-coverage-rate level 1 - R q / m (Benjamini
and Yekutieli 2005, R selected of m): a finding's interval then excludes zero exactly when BH
selects it, and no other interval does.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def one_sided_p(t: np.ndarray, dof: float) -> np.ndarray:
    """P(T >= t) for Student's t with `dof` degrees of freedom (normal when infinite)."""
    t = np.asarray(t, dtype=float)
    return stats.norm.sf(t) if not np.isfinite(dof) else stats.t.sf(t, dof)


def two_sided_p(t: np.ndarray, dof: float) -> np.ndarray:
    return np.minimum(1.0, 2 * one_sided_p(np.abs(np.asarray(t, dtype=float)), dof))


def max_t_adjusted(t: np.ndarray, factor: np.ndarray, own: np.ndarray, dof: float, draws: int = 4000,
                   seed: int = 0, chunk: int = 500) -> np.ndarray:
    """One-sided max-t adjusted p-values of statistics `t` whose estimates have covariance
    proportional to F F' + diag(own) (rows of `factor`, entries of `own`). Seeded."""
    t = np.asarray(t, dtype=float)
    m = len(t)
    if m == 0:
        return np.zeros(0)
    factor = np.asarray(factor, dtype=float).reshape(m, -1)
    own = np.asarray(own, dtype=float)
    scale = np.sqrt((factor ** 2).sum(axis=1) + own)
    if not (scale > 0).all():
        raise ValueError("max_t_adjusted: every statistic needs a positive variance")
    shared, alone = factor / scale[:, None], np.sqrt(own) / scale
    rng = np.random.default_rng(seed)
    maxima = []
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        z = rng.standard_normal((size, shared.shape[1])) @ shared.T + rng.standard_normal((size, m)) * alone
        if np.isfinite(dof):
            z /= np.sqrt(rng.chisquare(dof, size) / dof)[:, None]
        maxima.append(z.max(axis=1))
    maxima = np.sort(np.concatenate(maxima))
    return (len(maxima) - np.searchsorted(maxima, t, side="left")) / len(maxima)


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """The step-up selection at false discovery rate `q`: a mask over `p` (NaN never selected)."""
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = int(finite.sum())
    selected = np.zeros(len(p), dtype=bool)
    if m == 0:
        return selected
    order = np.argsort(np.where(finite, p, np.inf))[:m]
    passed = np.flatnonzero(p[order] <= q * np.arange(1, m + 1) / m)
    if len(passed):
        selected[order[: passed[-1] + 1]] = True
    return selected


def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down selection at family-wise error `alpha`: a mask over `p`."""
    p = np.asarray(p, dtype=float)
    selected = np.zeros(len(p), dtype=bool)
    order = np.argsort(np.where(np.isfinite(p), p, np.inf))
    for rank, i in enumerate(order):
        if not np.isfinite(p[i]) or p[i] > alpha / (len(p) - rank):
            break
        selected[i] = True
    return selected


def fcr_level(selected: int, tested: int, q: float) -> float:
    """Coverage of intervals after selecting `selected` of `tested` at FDR `q`: 1 - max(R, 1) q / m."""
    return 1.0 - max(selected, 1) * q / max(tested, 1)
