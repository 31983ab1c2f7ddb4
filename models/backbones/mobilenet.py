"""MobileNetV3 family: mobilenet_v3_large, mobilenet_v3_small (torchvision), the backbone a robot
team deploys when ResNet-50 is too slow (the paper names MobileNet v3 as future work).

Positions are the inverted-residual blocks, named by their torchvision module path: the features
are one flat `nn.Sequential` (`features.0` the stem, `features.1` .. `features.15` the blocks of
the large model, `features.16` the last 1x1 convolution), so the stages are declared, not read
off the module tree. A stage begins at each stride-2 block and is named by its output stride in
the ImageNet network: `stride2` (large only), `stride4`, `stride8`, `stride16`, `stride32`
(re-ID's last stride 1 keeps the last one at 16). Channels change within a stage (80 -> 112 in
the large model's `stride16`): each position declares its own.

`pre` and `post`: `pre` attends to the block's branch (expand, depthwise, MobileNet's own SE
where the block has one, linear projection) before the residual add, `post` to the sum. A block
that downsamples or changes width has no add: there both compute the same function, so a spec
writes such a block's `pre` as `post` (the declaration says `residual=False`). An inserted block
comes in addition to MobileNet's own squeeze-excitation, which stays where it is.

The ImageNet classifier (pooling, two linear layers) is replaced by the re-ID head, which pools
the last convolution's map (960 channels, 576 for the small model). Last stride 1 sets the
depthwise convolution of the last stage's first block to stride 1 (its padding keeps the size).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual

from attnas.models.backbones.base import BackboneFamily, Position

STEM_CHANNELS = 16
#: model -> ((output channels, stride) of each inverted-residual block, channels of the last 1x1
#: convolution), as Howard et al. 2019 (tables 1 and 2) and torchvision configure them
ARCHITECTURES: dict[str, tuple[tuple[tuple[int, int], ...], int]] = {
    "mobilenet_v3_large": (((16, 1), (24, 2), (24, 1), (40, 2), (40, 1), (40, 1), (80, 2), (80, 1), (80, 1), (80, 1),
                            (112, 1), (112, 1), (160, 2), (160, 1), (160, 1)), 960),
    "mobilenet_v3_small": (((16, 2), (24, 2), (24, 1), (40, 2), (40, 1), (40, 1), (48, 1), (48, 1), (96, 2), (96, 1),
                            (96, 1)), 576),
}


class AttentiveInvertedResidual(InvertedResidual):
    def __init__(self, block: InvertedResidual, attention: nn.Module, placement: str) -> None:
        nn.Module.__init__(self)
        self.block = block.block
        self.use_res_connect = block.use_res_connect
        self.out_channels = block.out_channels
        self._is_cn = block._is_cn
        self.attention = attention
        self.placement = placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.placement == "pre":
            out = self.attention(out)
        if self.use_res_connect:
            out = out + x
        return self.attention(out) if self.placement == "post" else out

    def extra_repr(self) -> str:
        return f"placement={self.placement}"


class MobileNetV3Family(BackboneFamily):
    names = tuple(ARCHITECTURES)
    classifier_prefixes = ("classifier.",)

    def positions(self, name: str) -> tuple[Position, ...]:
        blocks, _ = ARCHITECTURES[name]
        declared, stride, channels_in = [], 2, STEM_CHANNELS  # the stem halves the input
        for index, (channels, block_stride) in enumerate(blocks, start=1):
            stride *= block_stride
            residual = block_stride == 1 and channels == channels_in
            stage = f"stride{stride}" if index == 1 or block_stride == 2 else declared[-1].stage
            declared.append(Position(f"features.{index}", f"features.{index}", stage, channels, residual))
            channels_in = channels
        return tuple(declared)

    def out_channels(self, name: str) -> int:
        return ARCHITECTURES[name][1]

    def attach(self, block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
        if not isinstance(block, InvertedResidual):
            raise TypeError(f"cannot attach attention to {type(block).__name__}; expected a torchvision InvertedResidual")
        return AttentiveInvertedResidual(block, attention, placement)

    def features(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net.features(x)

    def set_last_stride(self, net: nn.Module, stride: int) -> None:
        # the last downsampling of the freshly built network: the strided depthwise convolution of
        # the last block that has one
        strided = [m for block in net.features for m in block.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        strided[-1].stride = (stride, stride)
