"""The gate shared by the multiplicative blocks (SE, CBAM, ECA).

A plain `sigmoid` gate starts near 0.5 and halves every feature it touches, which wrecks the
ImageNet features a block is inserted into. `identity_init=True` uses `2 * sigmoid(s)` with the
last layer zero-initialised: the gate is exactly 1 at insertion, keeps a full-size gradient
(a saturated `sigmoid(+5)` start would not), and can still scale a channel anywhere in (0, 2).
`identity_init=False` is the original papers' gate, for training from scratch.
"""

from __future__ import annotations

import torch
from torch import nn


def gate(logits: torch.Tensor, identity_init: bool) -> torch.Tensor:
    return 2.0 * torch.sigmoid(logits) if identity_init else torch.sigmoid(logits)


def zero_init_(module: nn.Module) -> None:
    nn.init.zeros_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
