"""CBAM (Woo et al., 2018): channel attention from avg- and max-pooled descriptors through one
shared MLP, then spatial attention from a 7x7 conv over the channel-wise avg and max maps."""

from __future__ import annotations

import torch
from torch import nn

from attnas.models.blocks.gates import gate, zero_init_
from attnas.models.blocks.limits import check_kernel, check_reduction


#: widest spatial kernel: 2 x 32 - 1 spans any map a block sees at the default input from every pixel
MAX_SPATIAL_KERNEL = 63


class CBAMBlock(nn.Module):
    spec_options = {"r": "reduction", "k": "kernel_size"}  # spec key -> constructor argument

    def __init__(
        self, channels: int, reduction: int = 16, kernel_size: int = 7, identity_init: bool = True
    ) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        check_kernel(kernel_size, MAX_SPATIAL_KERNEL, "the feature maps it convolves (at most 64x32, layer1 at the default "
                     "256x128 input: a wider kernel only adds taps that fall on padding)")
        hidden = max(channels // reduction, 8)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        self.identity_init = identity_init
        if identity_init:
            zero_init_(self.mlp[2])
            zero_init_(self.spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        x = x * gate(self.mlp(avg) + self.mlp(mx), self.identity_init)
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * gate(self.spatial(maps), self.identity_init)
