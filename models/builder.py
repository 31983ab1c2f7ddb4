"""`build_model`: spec -> torchvision backbone with attention blocks and a re-ID head.

The builder is family-agnostic: the backbone adapter (`attnas.models.backbones`) declares where a
position is (its module path) and how many channels it has, and wraps its block; the block
registry builds the attention module with the spec's options.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from attnas.models.backbones import BackboneFamily, backbone_family, layout
from attnas.models.blocks import create_block
from attnas.models.head import ReIDHead
from attnas.models.weights import load_backbone_weights
from attnas.space.spec import ArchSpec, as_spec  # the module, not the package: space imports models.backbones

#: the re-ID input (height, width) every default in attnas uses: Market-1501's 256x128 (paper.md)
INPUT_SIZE: tuple[int, int] = (256, 128)


class ReIDNet(nn.Module):
    """A torchvision trunk (its classifier unused) followed by the re-ID head."""

    def __init__(self, net: nn.Module, family: BackboneFamily, head: ReIDHead, spec: ArchSpec) -> None:
        super().__init__()
        for name in family.classifier_prefixes:  # the ImageNet classifier: not part of the network
            setattr(net, name.rstrip("."), nn.Identity())
        self.backbone = net
        self.family = family
        self.head = head
        self.spec = spec

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.family.features(self.backbone, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))

    @property
    def embedding_dim(self) -> int:
        return self.head.bnneck.num_features


def build_model(
    spec: ArchSpec | str | Mapping[str, Any],
    num_classes: int,
    last_stride: int = 1,
    pretrained: str | os.PathLike | None = None,
) -> ReIDNet:
    """Build the network a spec describes.

    `pretrained`: None (random init), "imagenet" (torchvision's cached checkpoint) or a path to a
    state_dict (torchvision's, or the `backbone.` part of an attnas model). Weights load into the
    plain network before attention is attached, so the load is strict for every backbone weight.
    """
    spec = as_spec(spec)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    family, where = backbone_family(spec.backbone), layout(spec.backbone)
    net = family.build(spec.backbone)
    if pretrained is not None:
        load_backbone_weights(net, spec.backbone, pretrained)
    family.set_last_stride(net, last_stride)
    # The blocks draw their initial weights from a forked generator, so that under one seed every
    # spec gets the same backbone and head weights as the plain network: candidates of a search
    # then differ by their blocks only, not by a reshuffled initialisation (common random numbers).
    with torch.random.fork_rng(devices=[]):
        for position, choice in spec.blocks.items():
            declared = where.position(position)
            attention = create_block(choice.block, declared.channels, **choice.kwargs)
            block = net.get_submodule(declared.module)
            net.set_submodule(declared.module, family.attach(block, attention, choice.placement), strict=True)
    return ReIDNet(net, family, ReIDHead(where.out_channels, num_classes), spec)


def attention_modules(model: ReIDNet) -> dict[str, nn.Module]:
    """Inserted attention blocks by position (`layer3.5`), found at the declared module paths,
    for tests and reports."""
    found = {}
    for position in layout(model.spec.backbone).declared:
        attention = getattr(model.backbone.get_submodule(position.module), "attention", None)
        if isinstance(attention, nn.Module):
            found[position.name] = attention
    return found
