"""Non-local block (Wang et al., 2018), embedded Gaussian: every position attends to every other.

theta/phi/g are 1x1 convs to C/reduction; the affinity is softmax over all HW x HW pairs, so cost
grows with (HW)^2 -- the reason the paper finds NL blocks too slow in early stages. The output
projection is followed by BatchNorm with gamma = 0 so the block starts as identity (as in the NL
paper and in AGW's re-ID code).
"""

from __future__ import annotations

import torch
from torch import nn

from attnas.models.blocks.limits import check_reduction


class NonLocalBlock(nn.Module):
    spec_options = {"r": "reduction"}  # spec key -> constructor argument

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        inner = max(channels // reduction, 1)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        k = self.phi(x).flatten(2)  # (N, C', HW)
        v = self.g(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        affinity = torch.softmax(torch.bmm(q, k), dim=-1)  # (N, HW, HW)
        y = torch.bmm(affinity, v).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.bn(self.out(y))
