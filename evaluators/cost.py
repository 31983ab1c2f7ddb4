"""FLOPs and parameters of a built model.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts at the ATen operator
level: the batched matrix products inside NL / C-NL / GC attention are counted, which module-hook
counters (torchreid's, thop) miss. Convention: 2 FLOPs per multiply-add, per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from attnas.models import INPUT_SIZE


@dataclass(frozen=True)
class ModelCost:
    gflops: float  # per image, 2 FLOPs per multiply-add
    params_m: float  # millions, including the re-ID head's classifier
    backbone_params_m: float  # millions, without the classifier (what inference carries)


@torch.no_grad()
def count_flops(model: nn.Module, input_size: tuple[int, int] = INPUT_SIZE) -> float:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, *input_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())


def count_params(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(exclude))


def model_cost(model: nn.Module, input_size: tuple[int, int] = INPUT_SIZE) -> ModelCost:
    return ModelCost(
        gflops=count_flops(model, input_size) / 1e9,
        params_m=count_params(model) / 1e6,
        backbone_params_m=count_params(model, exclude=("head.classifier",)) / 1e6,
    )
