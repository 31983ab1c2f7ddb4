"""Backbone families, looked up by model name from one registry (as timm's `create_model`).

Adding a family = its adapter module (see `base.BackboneFamily`) + one line in `FAMILIES` + a
space config in `conf/space/`.
"""

from __future__ import annotations

from attnas.models.backbones.base import BackboneFamily, BackboneLayout, Stage
from attnas.models.backbones.convnext import ConvNeXtFamily
from attnas.models.backbones.resnet import ResNetFamily

FAMILIES: tuple[BackboneFamily, ...] = (ResNetFamily(), ConvNeXtFamily())


def backbone_names() -> tuple[str, ...]:
    return tuple(name for family in FAMILIES for name in family.names)


def backbone_family(name: str) -> BackboneFamily:
    for family in FAMILIES:
        if name in family.names:
            return family
    raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(backbone_names())}")


def layout(name: str) -> BackboneLayout:
    """Stages, positions and channels of backbone `name`."""
    return backbone_family(name).layout(name)


__all__ = ["FAMILIES", "BackboneFamily", "BackboneLayout", "Stage", "backbone_family", "backbone_names", "layout"]
