"""Losses of the bag-of-tricks baseline: label-smoothed ID loss and batch-hard triplet loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def id_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


def batch_hard_triplet_loss(features: torch.Tensor, targets: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """For each anchor: hardest positive (farthest same id) vs hardest negative (nearest other id)."""
    dist = torch.cdist(features, features).clamp(min=1e-12)
    same = targets[:, None] == targets[None, :]
    hardest_pos = (dist * same).max(dim=1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()
