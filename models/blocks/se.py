"""Squeeze-and-excitation (Hu et al., 2018): re-weight channels from their global average."""

from __future__ import annotations

import torch
from torch import nn

from attnas.models.blocks.gates import gate, zero_init_
from attnas.models.blocks.limits import check_reduction


class SEBlock(nn.Module):
    spec_options = {"r": "reduction"}  # spec key -> constructor argument

    def __init__(self, channels: int, reduction: int = 16, identity_init: bool = True) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.identity_init = identity_init
        if identity_init:
            zero_init_(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * gate(self.fc2(self.relu(self.fc1(s))), self.identity_init)
