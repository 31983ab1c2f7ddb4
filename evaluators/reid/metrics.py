"""Ranking metrics of re-ID retrieval: CMC, mAP and mINP with the Market-1501 protocol.

For each query, gallery images of the same person seen by the same camera are removed (finding
them is trivial), junk (person id -1) is removed, and queries left with no true match are
skipped. AP is the mean of precision at each true match; CMC(k) is 1 when a true match is within
the top k; INP is (#matches / rank of the hardest match) (Ye et al., 2021).

Everything is vectorised over a block of queries at a time, no Python loop over gallery items;
ties in distance are broken by gallery order (stable sort), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JUNK_PID = -1


@dataclass(frozen=True)
class RankResult:
    cmc: np.ndarray  # (max_rank,), CMC(k) at index k-1
    mAP: float
    mINP: float
    num_valid_queries: int

    def rank(self, k: int) -> float:
        """CMC(k); past the end of a small gallery every reachable match is already counted."""
        return float(self.cmc[min(k, len(self.cmc)) - 1])


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids) -> tuple[np.ndarray, ...]:
    distmat = np.asarray(distmat)
    arrays = [np.asarray(a).reshape(-1) for a in (q_pids, g_pids, q_camids, g_camids)]
    q_pids, g_pids, q_camids, g_camids = arrays
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    if num_q == 0:
        raise ValueError("empty query set: there is nothing to rank")
    if num_g == 0:
        raise ValueError("empty gallery: queries have nothing to be matched against")
    for name, arr, expected in (
        ("q_pids", q_pids, num_q), ("q_camids", q_camids, num_q), ("g_pids", g_pids, num_g), ("g_camids", g_camids, num_g),
    ):
        if len(arr) != expected:
            raise ValueError(
                f"{name} has {len(arr)} entries but distmat has {expected} "
                f"{'rows (queries)' if name.startswith('q') else 'columns (gallery images)'}"
            )
    if np.isnan(distmat).any():
        raise ValueError(f"distmat contains {int(np.isnan(distmat).sum())} NaN values; check the features for NaN")
    return distmat, q_pids, g_pids, q_camids, g_camids


def _rank_block(dist, q_pids, q_camids, g_pids, g_camids, max_rank):
    """CMC hits, AP and INP for a block of queries; returns (valid mask, cmc rows, AP, INP)."""
    order = np.argsort(dist, axis=1, kind="stable")
    gp, gc = g_pids[order], g_camids[order]
    same_pid = gp == q_pids[:, None]
    keep = ~(same_pid & (gc == q_camids[:, None])) & (gp != JUNK_PID)
    match = same_pid & keep
    rank_of = np.cumsum(keep, axis=1)  # 1-based rank among kept gallery items
    hits = np.cumsum(match, axis=1)
    num_match = match.sum(axis=1)
    valid = num_match > 0
    big = np.iinfo(rank_of.dtype).max
    first = np.where(match, rank_of, big).min(axis=1)
    last = np.where(match, rank_of, 0).max(axis=1)
    cmc = first[:, None] <= np.arange(1, max_rank + 1)[None, :]
    precision_sum = np.where(match, hits / np.maximum(rank_of, 1), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = precision_sum / num_match
        inp = num_match / last
    return valid, cmc, ap, inp


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, block_size: int = 256) -> tuple[np.ndarray, float]:
    """torchreid-compatible signature: returns `(cmc, mAP)`; `rank_metrics` also gives mINP."""
    result = rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, block_size)
    return result.cmc, result.mAP


def rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, block_size: int = 256) -> RankResult:
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = min(max_rank, distmat.shape[1])
    cmc_sum = np.zeros(max_rank)
    ap_sum = inp_sum = 0.0
    num_valid = 0
    for start in range(0, distmat.shape[0], block_size):
        stop = start + block_size
        valid, cmc, ap, inp = _rank_block(
            distmat[start:stop], q_pids[start:stop], q_camids[start:stop], g_pids, g_camids, max_rank
        )
        cmc_sum += cmc[valid].sum(axis=0)
        ap_sum += ap[valid].sum()
        inp_sum += inp[valid].sum()
        num_valid += int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            "no query has a valid match in the gallery (after removing same-camera images of the same "
            "person and junk); check that query and gallery share identities seen by other cameras"
        )
    return RankResult(cmc=cmc_sum / num_valid, mAP=ap_sum / num_valid, mINP=inp_sum / num_valid, num_valid_queries=num_valid)


def rank_metrics_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult:
    """The protocol written plainly, one query at a time: the yardstick the vectorised version is
    tested and benchmarked against. Too slow for Market-size problems."""
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = min(max_rank, distmat.shape[1])
    cmcs, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        ranked = []
        for j in np.argsort(distmat[i], kind="stable"):
            if g_pids[j] == JUNK_PID or (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i]):
                continue
            ranked.append(g_pids[j] == q_pids[i])
        if not any(ranked):
            continue
        hits, precisions, last = 0, [], 0
        for rank, is_match in enumerate(ranked, 1):
            if is_match:
                hits += 1
                precisions.append(hits / rank)
                last = rank
        first = ranked.index(True) + 1
        cmcs.append([first <= k for k in range(1, max_rank + 1)])
        aps.append(sum(precisions) / hits)
        inps.append(hits / last)
    if not aps:
        raise ValueError("no query has a valid match in the gallery")
    return RankResult(np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps))
