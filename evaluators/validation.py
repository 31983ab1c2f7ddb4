"""A validation query/gallery split carved from the TRAINING identities.

Search trials must never be scored on the test split: selecting architectures on test inflates
the reported numbers (a known failure of torchreid/fast-reid-based studies). The test split is
only for the final report of an exported architecture.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from attnas.evaluators.datasets.base import ImageRecord, relabel


def carve_validation(
    train: Sequence[ImageRecord], num_val_ids: int, seed: int = 0
) -> tuple[list[ImageRecord], list[ImageRecord], list[ImageRecord]]:
    """(train without the validation ids, val query, val gallery).

    Validation ids are drawn among ids seen by at least two cameras; each contributes one query
    per camera (Market style) and the rest of its images to the gallery.
    """
    by_pid: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in train:
        by_pid[record.pid].append(record)
    eligible = sorted(pid for pid, recs in by_pid.items() if len({r.camid for r in recs}) >= 2)
    if num_val_ids < 1 or num_val_ids > len(eligible) - 2:
        raise ValueError(
            f"cannot carve {num_val_ids} validation ids: {len(eligible)} training ids are seen by 2+ cameras "
            f"and at least 2 must stay for training; choose 1..{max(len(eligible) - 2, 0)}"
        )
    val_ids = set(np.random.default_rng(seed).choice(eligible, size=num_val_ids, replace=False).tolist())
    query, gallery = [], []
    for pid in sorted(val_ids):
        seen = set()
        for record in by_pid[pid]:
            if record.camid not in seen:
                seen.add(record.camid)
                query.append(record)
            else:
                gallery.append(record)
    remaining = relabel([r for r in train if r.pid not in val_ids])
    return remaining, query, gallery
