"""C-NL, the paper's channel-wise non-local block (our interpretation of its description).

x (N, C, H, W) -> global average pool z (N, C) -> query, key, value = three linear projections of
z to C' = C / reduction -> channel-to-channel affinity A = softmax_j(q_i * k_j) (N, C', C') ->
y_i = sum_j A_ij v_j -> linear back to C -> BatchNorm (gamma = 0) -> broadcast and add to x.

Choices where paper.md is unsure, and why:
* The projections act on the pooled vector, so q k^T is the outer product of two C'-vectors:
  pooling first is what the paper says removes the spatial affinity, and it makes the cost
  O(C'^2) whatever H and W are.
* C' = C / 2 by default, mirroring the NL block the design is derived from.
* No 1/sqrt(d) scaling of the affinity: the embedded-Gaussian NL block has none either.
* BatchNorm1d with zero gamma on the output, as NL's zero-init BN, so the block is identity at
  insertion and ImageNet features survive.
"""

from __future__ import annotations

import torch
from torch import nn

from attnas.models.blocks.limits import check_reduction


class ChannelNonLocalBlock(nn.Module):
    spec_options = {"r": "reduction"}  # spec key -> constructor argument

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        inner = max(channels // reduction, 1)
        self.query = nn.Linear(channels, inner)
        self.key = nn.Linear(channels, inner)
        self.value = nn.Linear(channels, inner)
        self.out = nn.Linear(inner, channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(2, 3))  # (N, C)
        q, k, v = self.query(z), self.key(z), self.value(z)  # (N, C')
        affinity = torch.softmax(q.unsqueeze(2) * k.unsqueeze(1), dim=-1)  # (N, C', C')
        y = torch.bmm(affinity, v.unsqueeze(2)).squeeze(2)  # (N, C')
        return x + self.bn(self.out(y))[:, :, None, None]
