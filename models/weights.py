"""Pretrained weights for a backbone: torchvision's ImageNet checkpoint, or a file the user gives.

Nothing is downloaded implicitly: "imagenet" reads torchvision's hub cache, and says where to put
the file when it is missing (this project runs on machines without internet). Keys are mapped
by the family's adapter (DataParallel prefixes, attnas re-ID checkpoints, the classifier).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnas.models.backbones import backbone_family


def load_state_dict(backbone: str, pretrained: str | os.PathLike) -> dict[str, torch.Tensor]:
    family = backbone_family(backbone)
    if str(pretrained) == "imagenet":
        path = family.cached_weights_path(backbone)
        if not path.exists():
            url = family.imagenet_weights(backbone).url
            raise FileNotFoundError(
                f"ImageNet weights for {backbone} are not cached at {path} and will not be downloaded; "
                f"copy {os.path.basename(url)} there (from {url}) or pass pretrained=<path to a state_dict>"
            )
        # read here, not through torchvision's `get_state_dict`, which unpickles with weights_only=False:
        # a crafted file in the hub cache would run code
        return read_weights(path, f"the cached ImageNet weights of {backbone}")
    path = Path(pretrained)
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {str(path)!r}; pass a torchvision state_dict path or 'imagenet'")
    state = read_weights(path, "the weights file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def read_weights(path: str | os.PathLike, what: str = "the weights file") -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain containers, never code. A file
    that needs more (a pickle that would call a function when loaded: a crafted or foreign file)
    or that is damaged is refused in one line."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line),
                      "it holds objects other than tensors")
        raise ValueError(f"{what} {str(path)!r} is refused: loading it would run code or build objects other than tensors "
                         f"({reason.rstrip('.')}); attnas loads weights with weights_only=True, so save a plain state_dict "
                         f"(torch.save(model.state_dict(), path)) or delete the file") from None
    except (RuntimeError, EOFError) as error:
        reason = " ".join(str(error).split(".")[0].split())
        raise ValueError(f"{what} {str(path)!r} is not a readable torch file ({reason}); is it damaged or truncated? "
                         f"delete it and copy it again") from None


def load_backbone_weights(net: nn.Module, backbone: str, pretrained: str | os.PathLike) -> None:
    """Load into the plain torchvision model (before attention is attached); strict for every
    weight but the ImageNet classifier, which the re-ID head replaces."""
    family = backbone_family(backbone)
    state = family.map_keys(load_state_dict(backbone, pretrained))
    hint = f"is it a torchvision {backbone} state_dict?"
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches: another backbone's checkpoint
        first = str(error).split("\n\t")[1] if "\n\t" in str(error) else str(error)
        raise ValueError(f"weights {str(pretrained)!r} do not fit {backbone}: {first.strip()}; {hint}") from None
    missing = [k for k in missing if k not in family.classifier_keys(missing)]
    if missing or unexpected:
        raise ValueError(
            f"weights {str(pretrained)!r} do not fit {backbone}: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}; {hint}"
        )
