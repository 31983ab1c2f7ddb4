"""Global context block (Cao et al., 2019): one attention-pooled context vector per image
(query-independent, so no HW x HW map), a bottleneck transform with LayerNorm, added to every
position. The last conv is zero-initialised, as in GCNet, so the block starts as identity."""

from __future__ import annotations

import torch
from torch import nn

from attnas.models.blocks.limits import check_reduction


class GCBlock(nn.Module):
    spec_options = {"r": "reduction"}  # spec key -> constructor argument

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        hidden = max(channels // reduction, 8)
        self.attend = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        nn.init.zeros_(self.transform[3].weight)
        nn.init.zeros_(self.transform[3].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(self.attend(x).view(n, 1, h * w), dim=-1)  # (N, 1, HW)
        context = torch.bmm(x.view(n, c, h * w), weights.transpose(1, 2)).view(n, c, 1, 1)
        return x + self.transform(context)
