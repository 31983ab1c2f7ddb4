"""What a backbone family adapter provides, and the parts every family shares.

An adapter knows one torchvision family: where its residual blocks are (the positions a spec
names), how many channels a block at a position sees, how to wrap a block with attention before
or after its residual add, how to cut the classifier off and keep a feature map, how to set the
re-ID "last stride", and which checkpoint keys belong to the ImageNet classifier.

The layout (stages, positions, channels) is read off the real torchvision model, built on the
`meta` device (no memory, no weights, about a millisecond), so it can never disagree with the
network that `build_model` builds: there is no hand-written table to keep in sync.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torchvision import models as tv_models


@dataclass(frozen=True)
class Stage:
    """A run of blocks at one resolution: `layer3` of a ResNet, `features.5` of a ConvNeXt."""

    name: str  # module path in the torchvision model; positions are f"{name}.{index}"
    depth: int  # blocks in the stage
    channels: int  # channels a block of this stage outputs (what an inserted block operates on)


@dataclass(frozen=True)
class BackboneLayout:
    """Where attention blocks can go in one backbone, in network order."""

    backbone: str
    family: str
    stages: tuple[Stage, ...]

    @functools.cached_property
    def positions(self) -> tuple[str, ...]:
        return tuple(f"{stage.name}.{i}" for stage in self.stages for i in range(stage.depth))

    @functools.cached_property
    def _index(self) -> dict[str, tuple[int, int]]:
        return {f"{stage.name}.{i}": (s, i) for s, stage in enumerate(self.stages) for i in range(stage.depth)}

    def __contains__(self, position: object) -> bool:
        return position in self._index

    def key(self, position: str) -> tuple[int, int]:
        """(stage number, block number): network order, which text order gets wrong (`layer3.10`)."""
        if position not in self._index:
            raise ValueError(f"position {position!r} does not exist in {self.backbone}; valid positions: {self.describe()}")
        return self._index[position]

    def stage_of(self, position: str) -> Stage:
        return self.stages[self.key(position)[0]]

    def channels_at(self, position: str) -> int:
        return self.stage_of(position).channels

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels

    def describe(self) -> str:
        """Positions in short form: `layer1.0-2, layer2.0-3, ...`."""
        return ", ".join(f"{stage.name}.0-{stage.depth - 1}" for stage in self.stages)


class BackboneFamily:
    """Base of the family adapters. A family overrides the five methods marked below."""

    #: the torchvision model names this family builds, e.g. ("resnet18", "resnet50", ...)
    names: tuple[str, ...] = ()
    #: checkpoint key prefixes of the ImageNet classifier, which the re-ID head replaces
    classifier_prefixes: tuple[str, ...] = ()

    # -- to override -------------------------------------------------------------------------
    def stages(self, net: nn.Module) -> list[tuple[str, nn.Sequential]]:
        """(module path, container) of each stage whose children are insertion positions."""
        raise NotImplementedError

    def block_channels(self, block: nn.Module) -> int:
        """Channels a block outputs."""
        raise NotImplementedError

    def attach(self, block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
        """`block` with `attention` before (`pre`) or after (`post`) its residual add; keeps the
        block's submodule names, so checkpoint keys of the plain network still load."""
        raise NotImplementedError

    def features(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (N, C, H, W), classifier excluded."""
        raise NotImplementedError

    def set_last_stride(self, net: nn.Module, stride: int) -> None:
        """Stride of the last downsampling; 1 keeps a finer final map (the re-ID trick)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def build(self, name: str) -> nn.Module:
        """The torchvision model, randomly initialised (never downloads)."""
        return tv_models.get_model(name, weights=None)

    def layout(self, name: str) -> BackboneLayout:
        return _layout(self, name)

    def locate(self, net: nn.Module, layout: BackboneLayout, position: str) -> tuple[nn.Sequential, int]:
        """The container holding the block at `position` and its index in it."""
        stage, index = layout.key(position)
        return net.get_submodule(layout.stages[stage].name), index

    def imagenet_weights(self, name: str) -> tv_models.WeightsEnum:
        return tv_models.get_model_weights(name)["IMAGENET1K_V1"]

    def cached_weights_path(self, name: str) -> Path:
        """Where torchvision's weights API keeps the ImageNet checkpoint of `name`."""
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.imagenet_weights(name).url)

    def map_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Checkpoint keys as the plain torchvision model names them: drops a `module.`
        (DataParallel) prefix, keeps the `backbone.` part of an attnas re-ID checkpoint, and drops
        the ImageNet classifier."""
        if state and all(k.startswith("module.") for k in state):
            state = {k.removeprefix("module."): v for k, v in state.items()}
        if any(k.startswith("backbone.") for k in state):
            state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        return {k: v for k, v in state.items() if not k.startswith(self.classifier_prefixes)}

    def classifier_keys(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k.startswith(self.classifier_prefixes)]


@functools.lru_cache(maxsize=None)
def _layout(family: BackboneFamily, name: str) -> BackboneLayout:
    with torch.device("meta"):
        net = family.build(name)
    stages = tuple(Stage(path, len(container), family.block_channels(container[-1])) for path, container in family.stages(net))
    return BackboneLayout(name, type(family).__name__, stages)
