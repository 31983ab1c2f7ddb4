"""A weight-sharing supernet: one network holding, at every position of a search space, every
block variant and placement of the space, one of which (or none) is active at a time.

At each position the plain torchvision block is kept, and each choice is that same block
wrapped by the family adapter's `attach` with its own attention module: the wrappers adopt the
block's submodules, so every path through a position shares the block's convolutions and batch
norms and owns only its attention. `set_path(spec)` activates one spec; the forward pass is then
exactly the network `build_model(spec)` builds, and `extract(spec)` returns that network with
the supernet's weights (tested: the same outputs).

Training samples one path per batch (single-path one-shot, SPOS), so every block is trained in
the contexts it is scored in; blocks off the path get no gradient.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from attnas.models.backbones import backbone_family, layout
from attnas.models.blocks import create_block
from attnas.models.builder import ReIDNet, build_model
from attnas.space.spec import ArchSpec, BlockChoice, choice_at

NONE = "none"


class ChoiceBlock(nn.Module):
    """One position: the plain block and one attentive wrapper of it per (variant, placement)."""

    def __init__(self, block: nn.Module, paths: dict[str, nn.Module]) -> None:
        super().__init__()
        self.plain = block
        self.paths = nn.ModuleDict({key.replace(".", "_"): module for key, module in paths.items()})
        self.keys = {key: key.replace(".", "_") for key in paths}  # ModuleDict keys cannot hold '.'
        self.active = NONE

    def active_module(self) -> nn.Module:
        """The plain block, or the attentive wrapper of the active choice."""
        return self.plain if self.active == NONE else self.paths[self.keys[self.active]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active_module()(x)


class Supernet(nn.Module):
    """The backbone with a `ChoiceBlock` at every position of the space, and the re-ID head."""

    def __init__(self, backbone: str, positions: list[str], choices: list[str], num_classes: int, last_stride: int = 1,
                 pretrained: str | None = None) -> None:
        super().__init__()
        family, where = backbone_family(backbone), layout(backbone)
        plain = build_model(backbone, num_classes, last_stride=last_stride, pretrained=pretrained)
        # canonical choice texts ("se", not "se@post"), as str(BlockChoice) writes them in a spec
        self.backbone_name, self.family = backbone, family
        self.choices = list(dict.fromkeys(str(BlockChoice.parse(c)) for c in choices))
        self.net, self.head = plain.backbone, plain.head
        self.slots: dict[str, ChoiceBlock] = {}
        self.modules_at = {position: where.position(position).module for position in positions}  # declared paths
        with torch.random.fork_rng(devices=[]):  # as build_model: block weights do not move the backbone's RNG
            for position, path in self.modules_at.items():
                block = self.net.get_submodule(path)
                paths = {}
                for choice in dict.fromkeys(choice_at(where, position, BlockChoice.parse(c)) for c in self.choices):
                    attention = create_block(choice.block, where.channels_at(position), **choice.kwargs)
                    paths[str(choice)] = family.attach(block, attention, choice.placement)  # keyed as a spec writes it
                self.slots[position] = ChoiceBlock(block, paths)
                self.net.set_submodule(path, self.slots[position], strict=True)

    def set_path(self, spec: ArchSpec | str) -> None:
        spec = ArchSpec.parse(spec) if isinstance(spec, str) else spec
        unknown = [p for p in spec.blocks if p not in self.slots]
        if unknown or spec.backbone != self.backbone_name:
            raise ValueError(f"{spec} is not a path of this supernet ({self.backbone_name}, positions {list(self.slots)})")
        for position, slot in self.slots.items():
            slot.active = str(spec.blocks[position]) if position in spec.blocks else NONE
            if slot.active != NONE and slot.active not in slot.keys:
                raise ValueError(f"{spec}: block {slot.active} at {position} is not a choice of this supernet ({self.choices})")

    def forward(self, x: torch.Tensor):
        return self.head(self.family.features(self.net, x))

    def active_modules(self) -> Iterator[nn.Module]:
        """The modules the current path runs through (for BN recalibration)."""
        for module in self.net.modules():
            if isinstance(module, ChoiceBlock) and module.active != NONE:
                yield module.active_module().attention
        yield self.net
        yield self.head

    def extract(self, spec: ArchSpec | str) -> ReIDNet:
        """`build_model(spec)` carrying this supernet's weights for that path: each choice block is
        swapped for its active module while the weights are read, so the keys are the built
        network's own."""
        spec = ArchSpec.parse(spec) if isinstance(spec, str) else spec
        self.set_path(spec)
        model = build_model(spec, self.head.classifier.out_features)
        try:
            for position, path in self.modules_at.items():
                self.net.set_submodule(path, self.slots[position].active_module(), strict=True)
            state = {f"backbone.{k}": v for k, v in self.net.state_dict().items()}
        finally:
            for position, path in self.modules_at.items():
                self.net.set_submodule(path, self.slots[position], strict=True)
        model.load_state_dict(state | {f"head.{k}": v for k, v in self.head.state_dict().items()})
        return model
