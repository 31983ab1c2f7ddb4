"""Query-gallery distances, computed a block of queries at a time.

A Market-1501 evaluation is 3,368 x 15,913 distances from 2,048-d features: the matrix itself
(214 MB in float32) fits, the broadcast intermediates of a naive computation would not.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("euclidean", "cosine")


def _as_tensor(features, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-D (images x feature dim), got shape {tuple(tensor.shape)}")
    if len(tensor) == 0:
        raise ValueError(f"{name} is empty")
    if torch.isnan(tensor).any():
        rows = torch.isnan(tensor).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"{name} contains NaN (rows {rows}...); the model produced NaN features")
    return tensor.float()


def compute_distance_matrix(
    query_features, gallery_features, metric: str = "euclidean", normalize: bool = False, block_size: int = 1024
) -> np.ndarray:
    """(Q, G) float32 distances: squared euclidean (rank-equivalent to euclidean) or 1 - cosine."""
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    qf, gf = _as_tensor(query_features, "query features"), _as_tensor(gallery_features, "gallery features")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query features are {qf.shape[1]}-d but gallery features are {gf.shape[1]}-d")
    if normalize or metric == "cosine":
        qf = torch.nn.functional.normalize(qf, dim=1)
        gf = torch.nn.functional.normalize(gf, dim=1)
    out = torch.empty(len(qf), len(gf), dtype=torch.float32)
    g_sq = (gf * gf).sum(dim=1)
    for start in range(0, len(qf), block_size):
        q = qf[start : start + block_size]
        if metric == "cosine":
            out[start : start + len(q)] = 1.0 - q @ gf.T
        else:
            block = (q * q).sum(dim=1, keepdim=True) + g_sq[None, :] - 2.0 * (q @ gf.T)
            out[start : start + len(q)] = block.clamp_(min=0.0)
    return out.numpy()
