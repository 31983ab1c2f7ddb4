"""A validation query/gallery split carved from the TRAINING identities.

Search trials must never be scored on the test split: selecting architectures on test inflates
the reported numbers (a known failure of torchreid/fast-reid-based studies). The test split is
only for the final report of an exported architecture.

Two protocols, the same two the data sets themselves use:

* `market`: each validation identity gives one query per camera, the rest of its images go to
  the gallery (Market-1501 style); needs identities with a second image in some camera;
* `cross_camera`: each validation identity's images from its first camera are queries, those
  from its other cameras the gallery (VIPeR, PRID, CUHK01 style); works with one image per camera.

`auto` takes `market` when every query would keep a same-identity gallery image from another
camera (the only kind the ranking protocol counts), else `cross_camera`.

A split must be able to rank (`resolution`): with `min_queries` the carve-out grows beyond
`num_val_ids`, one randomly drawn identity at a time, until it holds that many queries, never
taking more than half of the eligible identities from training. Budgets that train for real ask
for enough queries (`evaluator.min_val_queries`); the smoke-test budget does not, and its tiny
splits are then reported as unable to rank.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from attnas.evaluators.reid.datasets.base import ImageRecord, relabel, stats
from attnas.evaluators.reid.resolution import Resolution, structure

PROTOCOLS = ("auto", "market", "cross_camera")


@dataclass
class ValidationSplit:
    train: list[ImageRecord]  # the training ids that remain, relabelled 0..N-1
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    protocol: str  # the protocol used (`auto` resolved)
    ids: list[int]  # the validation identities (original labels)
    asked: int = 0  # num_val_ids as configured (fewer than len(ids) when the carve-out grew to reach min_queries)

    @property
    def resolution(self) -> Resolution:
        return structure(self.query, self.gallery)

    def summary(self) -> str:
        grown = f", grown from {self.asked} to reach enough queries" if self.asked and self.asked < len(self.ids) else ""
        return (f"validation ({self.protocol}, {len(self.ids)} ids carved from the training ids{grown}): query {stats(self.query)} | "
                f"gallery {stats(self.gallery)} | chance mAP {self.resolution.chance_map:.3f} | training keeps {stats(self.train)}")


def _market(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    query, gallery, seen = [], [], set()
    for record in records:
        if record.camid not in seen:
            seen.add(record.camid)
            query.append(record)
        else:
            gallery.append(record)
    return query, gallery


def _cross_camera(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    first = min(r.camid for r in records)
    return [r for r in records if r.camid == first], [r for r in records if r.camid != first]


def _matched(query: list[ImageRecord], gallery: list[ImageRecord]) -> bool:
    """Every query has a gallery image of its identity from another camera."""
    cams = {r.camid for r in gallery}
    return all(cams - {q.camid} for q in query)


def _assign(by_pid: dict[int, list[ImageRecord]], val_ids: list[int], protocol: str) -> tuple[str, list, list]:
    """(resolved protocol, query, gallery) of the identities `val_ids`."""
    if protocol == "auto":
        protocol = "market" if all(_matched(*_market(by_pid[pid])) for pid in val_ids) else "cross_camera"
    split = _market if protocol == "market" else _cross_camera
    query, gallery = [], []
    for pid in val_ids:
        q, g = split(by_pid[pid])
        if not _matched(q, g):
            raise ValueError(f"the {protocol} validation protocol leaves identity {pid}'s queries without a gallery image "
                             f"from another camera; use protocol cross_camera (evaluator.validation=cross_camera)")
        query += q
        gallery += g
    return protocol, query, gallery


def carve_validation(train: Sequence[ImageRecord], num_val_ids: int, seed: int = 0, protocol: str = "auto",
                     min_queries: int = 0) -> ValidationSplit:
    """Validation ids are drawn among ids seen by at least two cameras (with `seed`); with
    `min_queries`, more are drawn until the split holds that many queries (or half the eligible ids)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown validation protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if min_queries < 0:
        raise ValueError(f"min_queries must be >= 0 (evaluator.min_val_queries), got {min_queries}")
    by_pid: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in train:
        by_pid[record.pid].append(record)
    eligible = sorted(pid for pid, recs in by_pid.items() if len({r.camid for r in recs}) >= 2)
    if num_val_ids < 1 or num_val_ids > len(eligible) - 2:
        raise ValueError(
            f"cannot carve {num_val_ids} validation ids: {len(eligible)} training ids are seen by 2+ cameras "
            f"and at least 2 must stay for training; choose 1..{max(len(eligible) - 2, 0)} (evaluator.num_val_ids)"
        )
    val_ids = sorted(np.random.default_rng(seed).choice(eligible, size=num_val_ids, replace=False).tolist())
    resolved, query, gallery = _assign(by_pid, val_ids, protocol)
    if len(query) < min_queries:
        others = [pid for pid in np.random.default_rng(seed + 1).permutation(eligible).tolist() if pid not in set(val_ids)]
        cap = max(num_val_ids, min(len(eligible) // 2, len(eligible) - 2))
        while len(query) < min_queries and others and len(val_ids) < cap:
            val_ids = sorted([*val_ids, others.pop(0)])
            resolved, query, gallery = _assign(by_pid, val_ids, protocol)
    remaining = relabel([r for r in train if r.pid not in set(val_ids)])
    return ValidationSplit(remaining, query, gallery, resolved, val_ids, num_val_ids)
