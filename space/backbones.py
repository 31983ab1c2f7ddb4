"""Residual-block layout of the torchvision ResNets the search space knows.

The space package must not import torch or torchvision (specs are plain data that a
search driver or a report can handle without building a network), so the layout of
each backbone is tabulated here. `tests/test_builder.py` checks the table against
torchvision's real models.
"""

from __future__ import annotations

#: blocks per stage (layer1..layer4), as in torchvision.models.resnet
BACKBONE_STAGES: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}

#: output channels of each stage: BasicBlock (expansion 1) or Bottleneck (expansion 4)
_BASIC = ("resnet18", "resnet34")
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


def check_backbone(backbone: str) -> None:
    if backbone not in BACKBONE_STAGES:
        raise ValueError(
            f"unknown backbone {backbone!r}; valid backbones: {', '.join(BACKBONE_STAGES)}"
        )


def positions(backbone: str) -> tuple[str, ...]:
    """All residual blocks of `backbone` in network order, named as torchvision names them."""
    check_backbone(backbone)
    return tuple(
        f"{stage}.{index}"
        for stage, count in zip(STAGE_NAMES, BACKBONE_STAGES[backbone])
        for index in range(count)
    )


def position_key(position: str) -> tuple[int, int]:
    """Sort key in network order (`layer3.10` after `layer3.9`, which text order gets wrong)."""
    stage, index = position.split(".")
    return STAGE_NAMES.index(stage), int(index)


def stage_channels(backbone: str) -> tuple[int, int, int, int]:
    """Channels that leave each stage: where a block inserted at `layerS.i` operates."""
    check_backbone(backbone)
    width = (64, 128, 256, 512)
    expansion = 1 if backbone in _BASIC else 4
    return tuple(w * expansion for w in width)  # type: ignore[return-value]
