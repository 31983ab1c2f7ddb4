"""Backbone families, looked up by model name from one registry (as timm's `create_model`).

Adding a family = its adapter module (see `base.BackboneFamily`: it declares each model's
positions) + one line in `FAMILIES` + a space config in `conf/space/`. Registration checks every
model's declared layout.
"""

from __future__ import annotations

from attnas.models.backbones.base import BackboneFamily, BackboneLayout, Position, Stage
from attnas.models.backbones.convnext import ConvNeXtFamily
from attnas.models.backbones.mobilenet import MobileNetV3Family
from attnas.models.backbones.resnet import ResNetFamily
from attnas.models.registry import Registry


def _check_family(name: str, family: BackboneFamily) -> None:
    if not isinstance(family, BackboneFamily):
        raise TypeError(f"backbone family {name!r} must be a BackboneFamily adapter instance, got {family!r}")
    taken = [model for model in family.names if any(model in other.names for other in FAMILIES.values())]
    if taken or not family.names:
        raise ValueError(f"backbone family {name!r} names no models or models another family builds: {taken}")
    for model in family.names:
        family.layout(model)  # a declaration that cannot hold is refused here, naming what is wrong


#: family name -> adapter; a family builds the torchvision models in its `names`
FAMILIES: Registry[BackboneFamily] = Registry("backbone family", check=_check_family, valid="backbone families")
FAMILIES.register("resnet", ResNetFamily())
FAMILIES.register("convnext", ConvNeXtFamily())
FAMILIES.register("mobilenet_v3", MobileNetV3Family())


def backbone_names() -> tuple[str, ...]:
    return tuple(name for family in FAMILIES.values() for name in family.names)


def backbone_family(name: str) -> BackboneFamily:
    for family in FAMILIES.values():
        if name in family.names:
            return family
    raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(backbone_names())}")


def layout(name: str) -> BackboneLayout:
    """Stages, positions and channels of backbone `name`."""
    return backbone_family(name).layout(name)


__all__ = ["FAMILIES", "BackboneFamily", "BackboneLayout", "Position", "Stage", "backbone_family", "backbone_names", "layout"]
