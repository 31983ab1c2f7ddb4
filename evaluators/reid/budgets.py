"""Training budgets: how long, and with what, a candidate, the parent or the supernet trains.

A budget counts optimiser steps, not passes over the data. `finetune` is 4 epochs of 16 steps on
Market-1501 and on a 200-image folder alike: counted in passes, it shrank to 12 steps on PRID- or
GRID-sized sets, where every candidate then stayed within seed noise of the plain network because
none had trained (issue 24). `steps_per_epoch=0` makes an epoch a pass over the data again (the
paper's `full` recipe), capped at `max_batches_per_epoch`. Warm-up, milestones and the cosine decay
are stated in epochs of the budget and follow its steps, so a multi-fidelity rung that trains a
ninth of the steps still runs the whole schedule within them.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields, make_dataclass, replace


@dataclass
class TrainConfig:
    height: int = 256
    width: int = 128
    epochs: int = 120
    # optimiser steps per epoch, whatever the data's size (the budget is epochs x steps_per_epoch
    # steps); 0: an epoch is a pass over the data, at most max_batches_per_epoch batches of it
    steps_per_epoch: int = 0
    p: int = 16  # identities per batch
    k: int = 4  # images per identity
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    schedule: str = "step"  # step | cosine
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    random_erasing: float = 0.5
    max_ids: int | None = None  # train on a subset of identities (proxy)
    max_batches_per_epoch: int | None = None  # with steps_per_epoch=0: cap a pass over the data
    eval_every: int = 0  # validation mAP every N epochs (0: only at the end)
    device: str = "cpu"
    amp: bool = True  # mixed precision, on CUDA only (CPU results stay fp32 and deterministic)
    amp_dtype: str = "auto"  # auto (bf16 where the GPU has it, else fp16) | bf16 | fp16 (with a loss scaler)
    channels_last: bool = False  # NHWC tensors on CUDA (faster convolutions on tensor cores)
    compile: bool = False  # torch.compile the model: for fixed architectures (a supernet recompiles per path)
    cudnn_benchmark: bool = True  # let cuDNN pick its fastest convolutions for the fixed batch shape
    workers: int | None = None  # loader processes; None: from the CPUs this process may use
    cache_mb: int = 2048  # decode a data set once and keep it in memory when it fits (0: read every epoch)
    log_every: int = 50  # steps between reads of the loss (one host sync: the NaN check and the progress line)
    seed: int = 0
    progress: bool = False  # a progress bar over the steps
    log_epochs: bool = False  # log lines with elapsed time and ETA (long trainings: the parent, the supernet, full)


def _overrides_class():
    """`TrainOverrides`: every field of TrainConfig, optional, None meaning "the budget's value".
    It is the type of `evaluator.train`, so `evaluator.train.epochs=8` needs no `+` and a typo is
    refused with the valid names (a plain dict would take anything)."""

    def optional(kind):
        if kind in ("tuple[int, ...]",):
            return typing.Optional[list[int]]
        base = {"int": int, "float": float, "str": str, "bool": bool, "int | None": int}.get(kind, typing.Any)
        return typing.Optional[base]

    return make_dataclass("TrainOverrides", [(f.name, optional(f.type), field(default=None)) for f in fields(TrainConfig)])


#: a budget's settings that a config changes; None leaves the budget's value (so a setting cannot be
#: overridden to None: to train on every identity, give max_ids more than the data has)
TrainOverrides = _overrides_class()


def set_overrides(overrides) -> dict:
    """The fields of a TrainOverrides (or a dict) that are set."""
    items = vars(overrides).items() if not isinstance(overrides, dict) else overrides.items()
    return {k: (tuple(v) if k == "milestones" and v is not None else v) for k, v in items if v is not None}


#: named budgets, in steps where the data set's size must not decide how long a network trains.
#: `proxy` fits about a minute per ResNet-50 candidate on 2 CPU cores: 6 x 16 steps of 32 images at
#: 64x32 (~3,000 images). Measured on the synthetic set (an earlier proxy benchmark, now
#: bench/noise.py): from scratch, ResNet-50 learns nothing measurable from ~1,000 images at 128x64
#: with the fine-tuning learning rate 3.5e-4 (val mAP at the random level), while more, smaller
#: images with lr 1e-3 reach ~3.5x the random level. With ImageNet weights (`pretrained=imagenet`)
#: use the full recipe's 3.5e-4. The step counts are those the epoch budgets gave on sets of 16
#: batches or more (the synthetic set, CUHK01, Market-1501), where bench/noise.py measured them.
BUDGETS: dict[str, TrainConfig] = {
    # the paper's recipe: 120 passes over the data (about 24,000 steps on Market-1501)
    "full": TrainConfig(log_epochs=True),
    "proxy": TrainConfig(height=64, width=32, epochs=6, steps_per_epoch=16, p=8, k=4, lr=1e-3, warmup_epochs=1,
                         schedule="cosine", max_ids=96, random_erasing=0.0),
    # candidates that start from a trained parent fine-tune it: the parent's lower learning rate, 64 steps
    "finetune": TrainConfig(height=64, width=32, epochs=4, steps_per_epoch=16, p=8, k=4, lr=3.5e-4, warmup_epochs=1,
                            schedule="cosine", max_ids=96, random_erasing=0.0),
    # the plain backbone trained once per search, when candidates inherit its weights (evaluator
    # `parent: parent`); its cost is paid once, not per candidate: 480 steps
    "parent": TrainConfig(height=64, width=32, epochs=30, steps_per_epoch=16, p=8, k=4, lr=1e-3, warmup_epochs=2,
                          schedule="cosine", random_erasing=0.0, log_epochs=True),
    # the weight-sharing supernet, fine-tuned from the parent with one sampled path per batch: 640 steps
    "supernet": TrainConfig(height=64, width=32, epochs=40, steps_per_epoch=16, p=8, k=4, lr=3.5e-4, warmup_epochs=1,
                            schedule="cosine", random_erasing=0.0, log_epochs=True),
    "tiny": TrainConfig(height=64, width=32, epochs=1, steps_per_epoch=2, p=4, k=2, warmup_epochs=0, schedule="cosine",
                        max_ids=16, random_erasing=0.0, workers=0),
}


def check_config(cfg: TrainConfig, label: str = "the training") -> None:
    """Refuse settings that cannot train, each in one line naming what is valid."""
    if cfg.epochs < 1 or cfg.steps_per_epoch < 0 or cfg.log_every < 1:
        raise ValueError(f"{label}: epochs and log_every must be >= 1 and steps_per_epoch >= 0 (0: an epoch is a pass "
                         f"over the data); got epochs={cfg.epochs}, log_every={cfg.log_every}, "
                         f"steps_per_epoch={cfg.steps_per_epoch}")
    if cfg.steps_per_epoch and cfg.max_batches_per_epoch is not None:
        raise ValueError(f"{label}: max_batches_per_epoch caps a pass over the data, but this budget counts epochs of "
                         f"steps_per_epoch={cfg.steps_per_epoch} steps; change steps_per_epoch instead (or set "
                         f"steps_per_epoch=0 for passes over the data)")
    if cfg.schedule not in ("step", "cosine"):
        raise ValueError(f"{label}: unknown schedule {cfg.schedule!r}; valid: step, cosine")
    if cfg.amp_dtype not in ("auto", "bf16", "fp16"):
        raise ValueError(f"{label}: unknown amp_dtype {cfg.amp_dtype!r}; valid: auto, bf16, fp16")


def budget(name: str, **overrides) -> TrainConfig:
    """Budget `name` with some of its settings overridden, e.g. `budget("proxy", epochs=8)`."""
    if name not in BUDGETS:
        raise ValueError(f"unknown training budget {name!r}; valid budgets: {', '.join(sorted(BUDGETS))}")
    valid = [f.name for f in fields(TrainConfig)]
    unknown = [key for key in overrides if key not in valid]
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown} for budget {name!r}; valid options: {', '.join(valid)}")
    cfg = replace(BUDGETS[name], **overrides)
    check_config(cfg, f"budget {name!r}")
    return cfg


@dataclass(frozen=True)
class StepPlan:
    """The optimiser steps of one training, split into `epochs` (validation and log points)."""

    steps: int
    epochs: int
    schedule_epochs: int  # the budget's epochs: the unit of its warm-up, milestones and decay

    def bounds(self, epoch: int) -> tuple[int, int]:
        """First and one-past-last step of `epoch` (0-based)."""
        return self.steps * epoch // self.epochs, self.steps * (epoch + 1) // self.epochs

    def schedule_epoch(self, step: float) -> float:
        """Where `step` falls in the budget's schedule, in its epochs."""
        return self.schedule_epochs * step / self.steps


def plan_steps(cfg: TrainConfig, batches_per_pass: int, fidelity: float = 1.0) -> StepPlan:
    """The steps `cfg` trains on data giving `batches_per_pass` P x K batches per pass; a
    multi-fidelity rung trains the fraction `fidelity` of them (at least one)."""
    if not 0 < fidelity <= 1:
        raise ValueError(f"fidelity must be in (0, 1], got {fidelity}")
    per_epoch = cfg.steps_per_epoch or min(batches_per_pass, cfg.max_batches_per_epoch or batches_per_pass)
    steps = max(1, round(cfg.epochs * per_epoch * fidelity))
    return StepPlan(steps, min(cfg.epochs, steps), cfg.epochs)


def lr_factor(epoch: float, cfg: TrainConfig) -> float:
    """The learning rate's factor at `epoch` (fractional) of the budget's schedule. The warm-up
    leaves at least the last epoch (a budget cut to one epoch has none: it would never reach the
    learning rate)."""
    warmup = min(cfg.warmup_epochs, cfg.epochs - 1)
    if warmup > 0 and epoch < warmup:
        return 0.1 + 0.9 * epoch / warmup
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / span))
    if cfg.schedule == "step":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: step, cosine")
