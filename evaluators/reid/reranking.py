"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), written from the paper's algorithm.

Two images are close when their k-reciprocal neighbourhoods overlap: the final distance mixes
the Jaccard distance of those neighbourhoods with the original distance. It needs the
query-query and gallery-gallery distances too, so it is meant for evaluation, not search.
"""

from __future__ import annotations

import numpy as np


def _k_reciprocal(initial_rank: np.ndarray, i: int, k: int) -> np.ndarray:
    forward = initial_rank[i, : k + 1]
    backward = initial_rank[forward, : k + 1]
    return forward[(backward == i).any(axis=1)]


def re_rank(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked (Q, G) distances from the three (squared euclidean) distance matrices."""
    num_q = q_g.shape[0]
    original = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32)
    n = original.shape[0]
    if not (1 <= k2 <= k1 < n):
        raise ValueError(f"re-ranking needs 1 <= k2 <= k1 < number of images ({n}); got k1={k1}, k2={k2}")
    original = (original / np.maximum(original.max(axis=0, keepdims=True), 1e-12)).T
    initial_rank = np.argsort(original, axis=1, kind="stable")
    half = int(round(k1 / 2))
    V = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        reciprocal = _k_reciprocal(initial_rank, i, k1)
        expansion = [reciprocal]
        for candidate in reciprocal:
            cand = _k_reciprocal(initial_rank, candidate, half)
            if len(np.intersect1d(cand, reciprocal)) > 2 / 3 * len(cand):
                expansion.append(cand)
        members = np.unique(np.concatenate(expansion))
        weight = np.exp(-original[i, members])
        V[i, members] = weight / weight.sum()
    if k2 > 1:  # local query expansion: average the encodings of the k2 nearest neighbours
        V = V[initial_rank[:, :k2]].mean(axis=1)
    jaccard = np.zeros((num_q, n), dtype=np.float32)
    holders = [np.nonzero(V[:, j])[0] for j in range(n)]  # inverted index: who has j in its set
    for i in range(num_q):
        overlap = np.zeros(n, dtype=np.float32)
        for j in np.nonzero(V[i])[0]:
            overlap[holders[j]] += np.minimum(V[i, j], V[holders[j], j])
        jaccard[i] = 1.0 - overlap / (2.0 - overlap)
    final = jaccard * (1 - lambda_value) + original[:num_q] * lambda_value
    return final[:, num_q:]
