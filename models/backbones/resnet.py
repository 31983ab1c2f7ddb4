"""ResNet family: resnet18/34/50/101/152, resnext50_32x4d, wide_resnet50_2 (torchvision).

Positions are the residual blocks `layer1.0` .. `layer4.2`, declared from the blocks per stage
and the block type that torchvision's builders pass (`_resnet(Bottleneck, [3, 4, 6, 3], ...)`);
a spec names a block by its module path. The attentive blocks below take over
the submodules of a real torchvision block (same attribute names, so state_dict keys stay
`layer3.5.conv1.weight` and ImageNet checkpoints load unchanged) and add `attention` plus its
placement. Only `forward` is ours: torchvision's forward with the attention call where the
placement says.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from attnas.models.backbones.base import BackboneFamily, Position

#: model -> (blocks per stage, channel expansion of its block: 1 for BasicBlock, 4 for Bottleneck)
ARCHITECTURES: dict[str, tuple[tuple[int, ...], int]] = {
    "resnet18": ((2, 2, 2, 2), 1),
    "resnet34": ((3, 4, 6, 3), 1),
    "resnet50": ((3, 4, 6, 3), 4),
    "resnet101": ((3, 4, 23, 3), 4),
    "resnet152": ((3, 8, 36, 3), 4),
    "resnext50_32x4d": ((3, 4, 6, 3), 4),  # wider groups inside the block, the same output channels
    "wide_resnet50_2": ((3, 4, 6, 3), 4),
}


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


class ResNetFamily(BackboneFamily):
    names = tuple(ARCHITECTURES)
    classifier_prefixes = ("fc.",)

    def positions(self, name: str) -> tuple[Position, ...]:
        depths, expansion = ARCHITECTURES[name]
        return tuple(Position(f"layer{s}.{i}", f"layer{s}.{i}", f"layer{s}", 64 * 2 ** (s - 1) * expansion)
                     for s, depth in enumerate(depths, 1) for i in range(depth))

    def out_channels(self, name: str) -> int:
        return 512 * ARCHITECTURES[name][1]

    def attach(self, block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
        if isinstance(block, Bottleneck):
            return AttentiveBottleneck(block, attention, placement)
        if isinstance(block, BasicBlock):
            return AttentiveBasicBlock(block, attention, placement)
        raise TypeError(f"cannot attach attention to {type(block).__name__}; expected a torchvision residual block")

    def features(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    def set_last_stride(self, net: nn.Module, stride: int) -> None:
        first = net.layer4[0]
        conv = first.conv2 if isinstance(first, Bottleneck) else first.conv1  # where torchvision strides
        conv.stride = (stride, stride)
        if first.downsample is not None:
            first.downsample[0].stride = (stride, stride)
        first.stride = stride
