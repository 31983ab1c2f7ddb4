"""ECA (Wang et al., 2020): channel attention from a 1-D conv across the pooled channels.
The kernel size adapts to the channel count as in the paper (k = |log2(C)/gamma + b/gamma|, odd)."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnas.models.blocks.gates import gate, zero_init_
from attnas.models.blocks.limits import check_kernel


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    k = int(abs(math.log2(channels) / gamma + b / gamma))
    return k if k % 2 else k + 1


class ECABlock(nn.Module):
    spec_options = {"k": "kernel_size"}  # spec key -> constructor argument

    def __init__(self, channels: int, kernel_size: int | None = None, identity_init: bool = True) -> None:
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        check_kernel(k, channels if channels % 2 else channels - 1, f"the {channels} channels it slides over")
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.identity_init = identity_init
        if identity_init:
            zero_init_(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))  # (N, C)
        s = self.conv(s.unsqueeze(1)).squeeze(1)
        return x * gate(s, self.identity_init)[:, :, None, None]
