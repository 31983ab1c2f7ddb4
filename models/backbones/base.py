"""What a backbone family adapter provides, and the parts every family shares.

An adapter knows one torchvision family. It declares, for each model name, the positions where
an attention block can go (as timm's `feature_info` declares a model's feature maps): the name a
spec uses, the module path of the block in the torchvision model, its stage and the channels an
inserted block sees. Nothing is derived from module names, so a position's spec name may differ
from its module path and channels may change within a stage. The adapter also wraps a block with
attention before or after its residual add, cuts the classifier off and keeps a feature map,
sets the re-ID "last stride", and names the checkpoint keys of the ImageNet classifier.

A declaration is plain data, so a layout needs no network (no `meta` device, no weights); the
tests hold every declaration to the network torchvision builds (each module path exists, each
block outputs the declared channels).
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
class Position:
    """One place a block can go, as its adapter declares it."""

    name: str  # what a spec writes: `layer3.5`, `features.5.8`, `features.4`
    module: str  # path of the block in the torchvision model (`net.get_submodule(module)`)
    stage: str  # the run of blocks at one resolution it belongs to: a space may name it instead of its positions
    channels: int  # channels the inserted attention block sees
    residual: bool = True  # the block adds its input; without an add, `pre` and `post` are the same function


@dataclass(frozen=True)
class Stage:
    """A run of positions at one resolution: `layer3` of a ResNet, `features.5` of a ConvNeXt."""

    name: str
    depth: int  # positions in the stage
    channels: int  # channels of its last position (what leaves the stage)


@dataclass(frozen=True)
class BackboneLayout:
    """Where attention blocks can go in one backbone, in network order, and the channels of the
    feature map the re-ID head sees."""

    backbone: str
    family: str
    declared: tuple[Position, ...]
    out_channels: int

    def __post_init__(self) -> None:
        names, modules = [p.name for p in self.declared], [p.module for p in self.declared]
        stages = list(dict.fromkeys(p.stage for p in self.declared))
        problems = [
            *([] if self.declared else ["no positions"]),
            *[f"position {n!r} declared twice" for n in sorted({n for n in names if names.count(n) > 1})],
            *[f"module {m!r} declared twice" for m in sorted({m for m in modules if modules.count(m) > 1})],
            *[f"stage {s!r} is not one run of positions" for s in stages
              if [p.stage for p in self.declared].count(s) != len(self._run(s))],
            *[f"stage {s!r} is also a position name" for s in stages if s in names],
            *[f"{p.name} has {p.channels} channels" for p in self.declared if p.channels < 1],
        ]
        if problems:
            raise ValueError(f"{self.family} declares an invalid layout for {self.backbone}: {'; '.join(problems)}")

    def _run(self, stage: str) -> list[Position]:
        first = next(i for i, p in enumerate(self.declared) if p.stage == stage)
        run = []
        for position in self.declared[first:]:
            if position.stage != stage:
                break
            run.append(position)
        return run

    @functools.cached_property
    def positions(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.declared)

    @functools.cached_property
    def stages(self) -> tuple[Stage, ...]:
        names = dict.fromkeys(p.stage for p in self.declared)
        return tuple(Stage(name, len(run := self._run(name)), run[-1].channels) for name in names)

    @functools.cached_property
    def _index(self) -> dict[str, tuple[int, int]]:
        stage_number = {stage.name: s for s, stage in enumerate(self.stages)}
        first = {}
        for i, p in enumerate(self.declared):
            first.setdefault(p.stage, i)
        return {p.name: (stage_number[p.stage], i - first[p.stage]) for i, p in enumerate(self.declared)}

    def __contains__(self, position: object) -> bool:
        return position in self._index

    def key(self, position: str) -> tuple[int, int]:
        """(stage number, block number in it): network order, which text order gets wrong (`layer3.10`)."""
        if position not in self._index:
            raise ValueError(f"position {position!r} does not exist in {self.backbone}; valid positions: {self.describe()}")
        return self._index[position]

    def position(self, name: str) -> Position:
        """The declaration of position `name`."""
        self.key(name)  # unknown: the error listing the valid positions
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, Position]:
        return {p.name: p for p in self.declared}

    def stage_of(self, position: str) -> Stage:
        return self.stages[self.key(position)[0]]

    def channels_at(self, position: str) -> int:
        return self.position(position).channels

    def describe(self) -> str:
        """Positions in short form, a stage at a time, named where the positions do not name it:
        `layer1.0-2, layer2.0-3, ...`, `stride2: features.1, stride4: features.2-3, ...`."""
        spans = {stage.name: _span([p.name for p in self._run(stage.name)]) for stage in self.stages}
        return ", ".join(span if span.startswith(f"{stage}.") else f"{stage}: {span}" for stage, span in spans.items())


def _span(names: list[str]) -> str:
    """`layer1.0-2` for names that count up after a common prefix, else `first .. last`."""
    prefix = names[0].rpartition(".")[0]
    tails = [name.rpartition(".")[2] for name in names]
    counting = all(n.rpartition(".")[0] == prefix for n in names) and all(t.isdigit() for t in tails) and \
        [int(t) for t in tails] == list(range(int(tails[0]), int(tails[0]) + len(tails)))
    if len(names) == 1:
        return names[0]
    return f"{prefix}.{tails[0]}-{tails[-1]}" if counting else f"{names[0]} .. {names[-1]}"


class BackboneFamily:
    """Base of the family adapters. A family sets `names` and `classifier_prefixes` and writes
    the six methods marked below."""

    #: the torchvision model names this family builds, e.g. ("resnet18", "resnet50", ...)
    names: tuple[str, ...] = ()
    #: checkpoint key prefixes of the ImageNet classifier, which the re-ID head replaces
    classifier_prefixes: tuple[str, ...] = ()

    # -- to override -------------------------------------------------------------------------
    def positions(self, name: str) -> tuple[Position, ...]:
        """Every position of model `name`, in network order."""
        raise NotImplementedError

    def out_channels(self, name: str) -> int:
        """Channels of the feature map `features` returns for model `name`."""
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
    if name not in family.names:
        raise ValueError(f"{type(family).__name__} does not build {name!r}; it builds {', '.join(family.names)}")
    return BackboneLayout(name, type(family).__name__, tuple(family.positions(name)), family.out_channels(name))
