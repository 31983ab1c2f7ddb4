"""ImageNet weights for the backbone: the torchvision weights API, or a file the user gives.

Nothing is downloaded implicitly: "imagenet" reads torchvision's hub cache, and says where to put
the file when it is missing (this project runs on machines without internet).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

#: backbone -> torchvision weights enum member used for "imagenet"
IMAGENET_WEIGHTS = {
    "resnet18": tv_models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": tv_models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": tv_models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": tv_models.ResNet101_Weights.IMAGENET1K_V1,
    "resnet152": tv_models.ResNet152_Weights.IMAGENET1K_V1,
}


def cached_weights_path(backbone: str) -> Path:
    """Where torchvision's weights API keeps the checkpoint for `backbone`."""
    weights = IMAGENET_WEIGHTS[backbone]
    filename = os.path.basename(weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_state_dict(backbone: str, pretrained: str | os.PathLike) -> dict[str, torch.Tensor]:
    if str(pretrained) == "imagenet":
        path = cached_weights_path(backbone)
        if not path.exists():
            raise FileNotFoundError(
                f"ImageNet weights for {backbone} are not cached at {path} and will not be downloaded; "
                f"copy {os.path.basename(IMAGENET_WEIGHTS[backbone].url)} there (from "
                f"{IMAGENET_WEIGHTS[backbone].url}) or pass pretrained=<path to a state_dict>"
            )
        return IMAGENET_WEIGHTS[backbone].get_state_dict(progress=False, check_hash=False)
    path = Path(pretrained)
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {str(path)!r}; pass a torchvision state_dict path or 'imagenet'")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_backbone_weights(resnet: nn.Module, backbone: str, pretrained: str | os.PathLike) -> None:
    """Load into a plain torchvision ResNet (before attention is attached); fc is not needed."""
    state = {k: v for k, v in load_state_dict(backbone, pretrained).items() if not k.startswith("fc.")}
    try:
        missing, unexpected = resnet.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches: another backbone's checkpoint
        first = str(error).split("\n\t")[1] if "\n\t" in str(error) else str(error)
        raise ValueError(
            f"weights {str(pretrained)!r} do not fit {backbone}: {first.strip()}; is it a torchvision {backbone} state_dict?"
        ) from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"weights {str(pretrained)!r} do not fit {backbone}: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}; is it a torchvision {backbone} state_dict?"
        )
