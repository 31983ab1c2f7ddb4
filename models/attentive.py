"""torchvision residual blocks with one attention block attached.

The attentive classes take over the submodules of a real torchvision block (same attribute
names, so state_dict keys stay `layer3.5.conv1.weight` and ImageNet checkpoints load into an
attentive network unchanged) and add `attention` plus its placement. Only `forward` is ours: it
is torchvision's forward with the attention call where the placement says.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


class _Attentive:
    attention: nn.Module
    placement: str

    def _adopt(self, block: nn.Module, attention: nn.Module, placement: str) -> None:
        nn.Module.__init__(self)  # type: ignore[arg-type]
        for name, child in block.named_children():
            setattr(self, name, child)
        self.downsample = block.downsample  # None (a plain attribute) when the shapes already match
        self.stride = block.stride
        self.attention = attention
        self.placement = placement

    def extra_repr(self) -> str:
        return f"placement={self.placement}"


class AttentiveBottleneck(_Attentive, Bottleneck):
    def __init__(self, block: Bottleneck, attention: nn.Module, placement: str) -> None:
        self._adopt(block, attention, placement)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.placement == "pre":
            out = self.attention(out)
        out = self.relu(out + identity)
        return self.attention(out) if self.placement == "post" else out


class AttentiveBasicBlock(_Attentive, BasicBlock):
    def __init__(self, block: BasicBlock, attention: nn.Module, placement: str) -> None:
        self._adopt(block, attention, placement)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.placement == "pre":
            out = self.attention(out)
        out = self.relu(out + identity)
        return self.attention(out) if self.placement == "post" else out


def attach(block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
    if isinstance(block, Bottleneck):
        return AttentiveBottleneck(block, attention, placement)
    if isinstance(block, BasicBlock):
        return AttentiveBasicBlock(block, attention, placement)
    raise TypeError(f"cannot attach attention to {type(block).__name__}; expected a torchvision residual block")
