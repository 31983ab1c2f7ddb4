"""How finely a validation split can rank architectures: its queries, gallery, chance level and the
bootstrap SD of mAP over its queries.

On small single-shot sets a search validated on 4 queries against 4 gallery images: every
candidate scored exactly the same (GRID: mAP 1.0 for all six specs), shown as "mAP 1 +- 0.13" and
a Pareto front. mAP is a mean over queries, so how much it would move if the queries were drawn
again (the bootstrap SD over queries) and what a random ranking scores (the chance level) say
whether a difference of a point can mean anything. Below `MIN_RANKING_QUERIES` the analysis makes
no claim (`search.analysis.evidence`), and the search warns when it carves such a split.

The chance level is exact: a random ranking of n gallery images holding r true matches has
E[AP] = ((r - 1) / (n - 1) (n - H_n) + H_n) / n, H_n the n-th harmonic number (1/n when r = 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from attnas.evaluators.reid.datasets.base import ImageRecord
from attnas.evaluators.reid.metrics import JUNK_PID, rank_metrics

#: fewer validation queries than this cannot rank architectures: one query moves mAP by up to 1/queries,
#: and the bootstrap SD of mAP over queries is then several points even for a good model
MIN_RANKING_QUERIES = 20


def expected_random_ap(n: int, r: int) -> float:
    """E[AP] of a uniformly random ranking of `n` gallery images of which `r` are true matches."""
    if not 1 <= r <= n:
        raise ValueError(f"a random ranking needs 1 <= matches <= gallery, got {r} matches in {n}")
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    return harmonic / n if n == 1 else ((r - 1) / (n - 1) * (n - harmonic) + harmonic) / n


@dataclass(frozen=True)
class Resolution:
    """What a validation split can tell apart."""

    queries: int  # queries with a true match from another camera (the ones mAP averages over)
    gallery: int
    ids: int
    matches_per_query: float  # true matches a query can find, on average
    chance_map: float  # expected mAP of a random ranking
    bootstrap_sd: float = float("nan")  # SD of mAP when the queries are drawn again (a reference model's APs)
    reference_map: float = float("nan")  # that reference model's mAP
    reference: str = ""  # which model: "the parent resnet50", "the untrained plain resnet18", ...
    minimum: int = MIN_RANKING_QUERIES

    @property
    def at_ceiling(self) -> bool:
        """The reference model already ranks every query perfectly: no architecture can score higher."""
        return bool(np.isfinite(self.reference_map) and self.reference_map >= 0.999)

    @property
    def can_rank(self) -> bool:
        return self.queries >= self.minimum and not self.at_ceiling

    def shortfall(self) -> str:
        """Why it cannot rank, in a clause."""
        text = (f"{self.queries} queries against {self.gallery} gallery images, chance mAP {self.chance_map:.2f}"
                + (f", bootstrap SD of mAP over queries {self.bootstrap_sd:.2f}" if np.isfinite(self.bootstrap_sd) else ""))
        if self.at_ceiling:
            text += f"; {self.reference} already scores mAP {self.reference_map:.2f}, the ceiling"
        if self.queries < self.minimum:
            text += f"; ranking needs at least {self.minimum} queries: raise evaluator.num_val_ids or evaluator.min_val_queries"
        return text

    def describe(self) -> str:
        spread = (f", bootstrap SD of mAP over queries {100 * self.bootstrap_sd:.2g} points ({self.reference}, mAP "
                  f"{100 * self.reference_map:.3g})" if np.isfinite(self.bootstrap_sd) else "")
        return (f"{self.queries} queries ({self.ids} ids) against {self.gallery} gallery images, {self.matches_per_query:.3g} "
                f"true match(es) per query, chance mAP {100 * self.chance_map:.3g} points{spread}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Resolution":
        known = {f.name for f in fields(cls)}
        return cls(**{k: (float("nan") if v is None else v) for k, v in data.items() if k in known})


def structure(query: Sequence[ImageRecord], gallery: Sequence[ImageRecord]) -> Resolution:
    """The split's sizes and chance level (no model needed)."""
    g_pids = np.array([r.pid for r in gallery])
    g_cams = np.array([r.camid for r in gallery])
    chances, matches = [], []
    for q in query:
        same = g_pids == q.pid
        kept = ~(same & (g_cams == q.camid)) & (g_pids != JUNK_PID)
        n, r = int(kept.sum()), int((same & kept).sum())
        if r:
            chances.append(expected_random_ap(n, r))
            matches.append(r)
    return Resolution(len(chances), len(gallery), len({r.pid for r in query}), float(np.mean(matches)) if matches else 0.0,
                      float(np.mean(chances)) if chances else float("nan"))


def query_aps(distmat: np.ndarray, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord]) -> np.ndarray:
    """Average precision of every query with a true match (the values mAP averages)."""
    g_pids, g_cams = [r.pid for r in gallery], [r.camid for r in gallery]
    aps = []
    for i, q in enumerate(query):
        try:
            aps.append(rank_metrics(distmat[i:i + 1], [q.pid], g_pids, [q.camid], g_cams).mAP)
        except ValueError:  # no true match for this query: mAP skips it too
            continue
    return np.array(aps)


def bootstrap_sd(aps: np.ndarray) -> float:
    """The exact bootstrap SD of a mean over queries: sqrt(mean((ap - mean)^2) / n)."""
    aps = np.asarray(aps, dtype=float)
    return float(np.sqrt(((aps - aps.mean()) ** 2).mean() / len(aps))) if len(aps) else float("nan")


def measured(split: Resolution, distmat: np.ndarray, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord],
             reference: str) -> Resolution:
    """`split` with the bootstrap SD of a reference model's mAP (its query-gallery distances)."""
    aps = query_aps(distmat, query, gallery)
    return Resolution(**{**asdict(split), "bootstrap_sd": bootstrap_sd(aps), "reference_map": float(aps.mean()) if len(aps)
                         else float("nan"), "reference": reference})


def of_model(model: Any, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], cfg: Any, reference: str) -> Resolution:
    """The split's resolution with the bootstrap SD of `model`'s mAP (features as training scores them)."""
    from attnas.evaluators.reid.distance import compute_distance_matrix
    from attnas.evaluators.reid.training import extract_features

    distances = compute_distance_matrix(extract_features(model, query, cfg), extract_features(model, gallery, cfg), metric="cosine")
    return measured(structure(query, gallery), distances, query, gallery, reference)
