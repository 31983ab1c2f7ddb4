"""`build_model`: spec -> torchvision ResNet with attention blocks and a re-ID head."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn
from torchvision import models as tv_models

from attnas.models.attentive import attach
from attnas.models.blocks import create_block
from attnas.models.head import ReIDHead
from attnas.models.weights import load_backbone_weights
from attnas.space import ArchSpec, as_spec, stage_channels

#: backbone name -> torchvision constructor, as timm's registry maps names to builders
BACKBONES = {
    "resnet18": tv_models.resnet18,
    "resnet34": tv_models.resnet34,
    "resnet50": tv_models.resnet50,
    "resnet101": tv_models.resnet101,
    "resnet152": tv_models.resnet152,
}


class ReIDNet(nn.Module):
    """A torchvision ResNet trunk (stem + layer1..4) followed by the re-ID head."""

    def __init__(self, resnet: nn.Module, head: ReIDHead, spec: ArchSpec) -> None:
        super().__init__()
        resnet.fc = nn.Identity()  # classification head of ImageNet, unused
        resnet.avgpool = nn.Identity()
        self.backbone = resnet
        self.head = head
        self.spec = spec

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))

    @property
    def embedding_dim(self) -> int:
        return self.head.bnneck.num_features


def set_last_stride(resnet: nn.Module, stride: int) -> None:
    """Re-ID trick: stride 1 in layer4 keeps a 16x8 map at 256x128 input (finer features)."""
    first = resnet.layer4[0]
    conv = first.conv2 if hasattr(first, "conv3") else first.conv1  # where torchvision strides
    conv.stride = (stride, stride)
    if first.downsample is not None:
        first.downsample[0].stride = (stride, stride)
    first.stride = stride


def build_model(
    spec: ArchSpec | str | Mapping[str, Any],
    num_classes: int,
    last_stride: int = 1,
    pretrained: str | os.PathLike | None = None,
    block_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReIDNet:
    """Build the network a spec describes.

    `pretrained`: None (random init), "imagenet" (torchvision's cached checkpoint) or a path to a
    torchvision state_dict. Weights load into the plain ResNet before attention is attached, so
    the load is strict for every backbone weight. `block_kwargs` maps a block name to options
    for its constructor, e.g. `{"se": {"reduction": 8}}`.
    """
    spec = as_spec(spec)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    resnet = BACKBONES[spec.backbone](weights=None)
    if pretrained is not None:
        load_backbone_weights(resnet, spec.backbone, pretrained)
    set_last_stride(resnet, last_stride)
    channels = stage_channels(spec.backbone)
    block_kwargs = block_kwargs or {}
    # The blocks draw their initial weights from a forked generator, so that under one seed every
    # spec gets the same backbone and head weights as the plain network: candidates of a search
    # then differ by their blocks only, not by a reshuffled initialisation (common random numbers).
    with torch.random.fork_rng(devices=[]):
        for position, choice in spec.blocks.items():
            stage, index = position.split(".")
            layer = getattr(resnet, stage)
            attention = create_block(choice.block, channels[int(stage[-1]) - 1], **block_kwargs.get(choice.block, {}))
            layer[int(index)] = attach(layer[int(index)], attention, choice.placement)
    return ReIDNet(resnet, ReIDHead(channels[-1], num_classes), spec)


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Inserted attention blocks by position (`layer3.5`), for tests and reports."""
    found = {}
    for name, module in model.named_modules():
        if name.endswith(".attention"):
            found[name.removeprefix("backbone.").removesuffix(".attention")] = module
    return found
