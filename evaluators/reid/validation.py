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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from attnas.evaluators.reid.datasets.base import ImageRecord, relabel, stats

PROTOCOLS = ("auto", "market", "cross_camera")


@dataclass
class ValidationSplit:
    train: list[ImageRecord]  # the training ids that remain, relabelled 0..N-1
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    protocol: str  # the protocol used (`auto` resolved)
    ids: list[int]  # the validation identities (original labels)

    def summary(self) -> str:
        return (f"validation ({self.protocol}, {len(self.ids)} ids carved from the training ids): query {stats(self.query)} | "
                f"gallery {stats(self.gallery)} | training keeps {stats(self.train)}")


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


def carve_validation(train: Sequence[ImageRecord], num_val_ids: int, seed: int = 0, protocol: str = "auto") -> ValidationSplit:
    """Validation ids are drawn among ids seen by at least two cameras (with `seed`)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown validation protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
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
    remaining = relabel([r for r in train if r.pid not in set(val_ids)])
    return ValidationSplit(remaining, query, gallery, protocol, val_ids)
