"""Market-size ranking: distances + CMC/mAP/mINP for 3,368 queries x 15,913 gallery, 2,048-d.

Compares the vectorised `rank_metrics` with the plain per-query reference in the same run. The
reference is timed on a subset of queries (it would take minutes on all of them) and its per-query
time extrapolated; both are checked to agree on that subset.

    python -m bench.metrics [--threads 2] [--reference-queries 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from attnas.evaluators.reid.distance import compute_distance_matrix
from attnas.evaluators.reid.metrics import rank_metrics, rank_metrics_reference


def market_sized_problem(num_q=3368, num_g=15913, dim=2048, num_ids=750, cams=6, seed=0):
    """Features = identity centre + noise, so rankings are neither trivial nor random."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids + 1, dim)).astype(np.float32)
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = np.concatenate([rng.integers(1, num_ids + 1, num_g - 2800), np.zeros(2000, int), -np.ones(800, int)])
    qf = centres[q_pids] + rng.normal(scale=3.2, size=(num_q, dim)).astype(np.float32)
    gf = centres[g_pids.clip(0)] + rng.normal(scale=3.2, size=(num_g, dim)).astype(np.float32)
    return qf, gf, q_pids, g_pids, rng.integers(0, cams, num_q), rng.integers(0, cams, num_g)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-queries", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    qf, gf, q_pids, g_pids, q_cams, g_cams = market_sized_problem()

    t0 = time.perf_counter()
    dist = compute_distance_matrix(qf, gf)
    t1 = time.perf_counter()
    result = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    t2 = time.perf_counter()
    n = args.reference_queries
    sub = rank_metrics(dist[:n], q_pids[:n], g_pids, q_cams[:n], g_cams)
    t3 = time.perf_counter()
    ref = rank_metrics_reference(dist[:n], q_pids[:n], g_pids, q_cams[:n], g_cams)
    t4 = time.perf_counter()
    assert abs(ref.mAP - sub.mAP) < 1e-9 and np.allclose(ref.cmc, sub.cmc), "vectorised and reference metrics disagree"
    per_query_fast = (t2 - t1) / len(qf)
    per_query_ref = (t4 - t3) / n
    print(f"case=vectorised threads={args.threads} queries={len(qf)} gallery={len(gf)} dim={qf.shape[1]} "
          f"distance_s={t1 - t0:.2f} ranking_s={t2 - t1:.2f} total_s={t2 - t0:.2f} mAP={result.mAP:.4f} "
          f"rank1={result.rank(1):.4f} mINP={result.mINP:.4f}")
    print(f"case=reference threads={args.threads} queries={n} (timed) ranking_s={t4 - t3:.2f} "
          f"extrapolated_ranking_s={per_query_ref * len(qf):.1f} speedup={per_query_ref / per_query_fast:.1f}x")


if __name__ == "__main__":
    main()
