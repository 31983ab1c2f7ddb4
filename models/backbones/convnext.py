"""ConvNeXt family: convnext_tiny/small/base/large (torchvision).

Positions are the CNBlocks of the four stages, named as torchvision names them: `features.1.0`
.. `features.7.2` (stages sit at `features.1, .3, .5, .7`; the even indices are the stem and the
downsampling layers). A block's residual branch is `layer_scale * block(x)` with stochastic
depth; `pre` attends to that branch before the add, `post` to the sum.

The ImageNet classifier (LayerNorm2d, flatten, linear) is replaced by the re-ID head. Last
stride 1 turns the 2x2 stride-2 convolution before the last stage into a stride-1 one that pads
one row and column (right, bottom): the weights and their keys stay, and the last stage keeps
the previous stage's resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.convnext import CNBlock

from attnas.models.backbones.base import BackboneFamily, Position

#: model -> (blocks per stage, channels per stage), as torchvision's builders configure them
ARCHITECTURES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "convnext_large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}


class AttentiveCNBlock(CNBlock):
    def __init__(self, block: CNBlock, attention: nn.Module, placement: str) -> None:
        nn.Module.__init__(self)
        self.block = block.block
        self.layer_scale = block.layer_scale
        self.stochastic_depth = block.stochastic_depth
        self.attention = attention
        self.placement = placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.stochastic_depth(self.layer_scale * self.block(x))
        if self.placement == "pre":
            branch = self.attention(branch)
        out = branch + x
        return self.attention(out) if self.placement == "post" else out

    def extra_repr(self) -> str:
        return f"placement={self.placement}"


class _StrideOneDownsample(nn.Conv2d):
    """The 2x2 downsampling conv at stride 1, padded so the map keeps its size."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, stride=1, bias=conv.bias is not None,
                         device="meta")  # no allocation: the trained parameters move over below
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (0, self.kernel_size[1] - 1, 0, self.kernel_size[0] - 1)))


class ConvNeXtFamily(BackboneFamily):
    names = tuple(ARCHITECTURES)
    classifier_prefixes = ("classifier.",)

    def positions(self, name: str) -> tuple[Position, ...]:
        depths, widths = ARCHITECTURES[name]
        return tuple(Position(f"features.{2 * s + 1}.{i}", f"features.{2 * s + 1}.{i}", f"features.{2 * s + 1}", width)
                     for s, (depth, width) in enumerate(zip(depths, widths)) for i in range(depth))

    def out_channels(self, name: str) -> int:
        return ARCHITECTURES[name][1][-1]

    def attach(self, block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
        if not isinstance(block, CNBlock):
            raise TypeError(f"cannot attach attention to {type(block).__name__}; expected a torchvision CNBlock")
        return AttentiveCNBlock(block, attention, placement)

    def features(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net.features(x)

    def set_last_stride(self, net: nn.Module, stride: int) -> None:
        if stride == 1:
            net.features[6][1] = _StrideOneDownsample(net.features[6][1])
