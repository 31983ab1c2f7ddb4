"""Re-ID training that every spec goes through: the bag-of-tricks recipe (Luo et al., 2019).

ID loss with label smoothing on the classifier + batch-hard triplet loss on the feature before
the BNNeck, Adam with linear warm-up then step or cosine decay, P x K batches. Seeded and
deterministic on CPU; mixed precision on CUDA. Budgets are configs: `proxy` is what a search can
afford per candidate on 2 CPU cores, `full` is the paper's setting.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field, fields, make_dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.reid.data import eval_loader, train_loader
from attnas.evaluators.reid.datasets.base import ImageRecord, relabel
from attnas.evaluators.reid.distance import compute_distance_matrix
from attnas.evaluators.reid.losses import batch_hard_triplet_loss, id_loss
from attnas.evaluators.reid.metrics import RankResult, rank_metrics

log = logging.getLogger("attnas.training")


@dataclass
class TrainConfig:
    height: int = 256
    width: int = 128
    epochs: int = 120
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
    max_batches_per_epoch: int | None = None
    eval_every: int = 0  # validation mAP every N epochs (0: only at the end)
    device: str = "cpu"
    amp: bool = True  # used on CUDA only
    workers: int | None = None
    seed: int = 0
    progress: bool = False  # a progress bar per epoch
    log_epochs: bool = False  # a log line per epoch (long trainings: the parent, the full budget)


def _overrides_class():
    """`TrainOverrides`: every field of TrainConfig, optional, None meaning "the budget's value".
    It is the type of `evaluator.train`, so `evaluator.train.epochs=8` needs no `+` and a typo is
    refused with the valid names (a plain dict would take anything)."""
    import typing

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


#: named budgets. `proxy` fits about a minute per ResNet-50 candidate on 2 CPU cores: 6 x 16 batches
#: of 32 images at 64x32 (~3,000 images). Measured on the synthetic set (an earlier proxy benchmark,
#: now bench/noise.py): from scratch, ResNet-50 learns nothing measurable from ~1,000
#: images at 128x64 with the fine-tuning learning rate 3.5e-4 (val mAP at the random level), while
#: more, smaller images with lr 1e-3 reach ~3.5x the random level. With ImageNet weights
#: (`pretrained=imagenet`) use the full recipe's 3.5e-4.
BUDGETS: dict[str, TrainConfig] = {
    "full": TrainConfig(log_epochs=True),
    "proxy": TrainConfig(height=64, width=32, epochs=6, p=8, k=4, lr=1e-3, warmup_epochs=1, schedule="cosine",
                         max_ids=96, max_batches_per_epoch=16, random_erasing=0.0),
    # candidates that start from a trained parent fine-tune it: the parent's lower learning rate
    "finetune": TrainConfig(height=64, width=32, epochs=4, p=8, k=4, lr=3.5e-4, warmup_epochs=1, schedule="cosine",
                            max_ids=96, max_batches_per_epoch=16, random_erasing=0.0),
    # the plain backbone trained once per search, when candidates inherit its weights (evaluator
    # `parent: parent`); its cost is paid once, not per candidate
    "parent": TrainConfig(height=64, width=32, epochs=30, p=8, k=4, lr=1e-3, warmup_epochs=2, schedule="cosine",
                          max_batches_per_epoch=16, random_erasing=0.0, log_epochs=True),
    # the weight-sharing supernet, fine-tuned from the parent with one sampled path per batch
    "supernet": TrainConfig(height=64, width=32, epochs=40, p=8, k=4, lr=3.5e-4, warmup_epochs=1, schedule="cosine",
                            max_batches_per_epoch=16, random_erasing=0.0, log_epochs=True),
    "tiny": TrainConfig(height=64, width=32, epochs=1, p=4, k=2, warmup_epochs=0, schedule="cosine", max_ids=16,
                        max_batches_per_epoch=2, random_erasing=0.0, workers=0),
}


def budget(name: str, **overrides) -> TrainConfig:
    """Budget `name` with some of its settings overridden, e.g. `budget("proxy", epochs=8)`."""
    if name not in BUDGETS:
        raise ValueError(f"unknown training budget {name!r}; valid budgets: {', '.join(sorted(BUDGETS))}")
    valid = [f.name for f in fields(TrainConfig)]
    unknown = [key for key in overrides if key not in valid]
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown} for budget {name!r}; valid options: {', '.join(valid)}")
    return replace(BUDGETS[name], **overrides)


@dataclass
class TrainResult:
    epoch_losses: list[float] = field(default_factory=list)
    val_mAP: list[tuple[int, float]] = field(default_factory=list)  # (epoch, mAP) pairs
    seconds: float = 0.0
    images_seen: int = 0
    batch: tuple[int, int] = (0, 0)  # the P x K used (K capped for identities with few images)


def batch_shape(records: Sequence[ImageRecord], p: int, k: int) -> tuple[int, int]:
    """P x K for these records: when the median identity has fewer than K images, a P x K batch
    would be half repeats (sampling with replacement), so K drops to that median (at least 2)
    and P rises to keep the batch size, within the number of identities."""
    counts = sorted(Counter(r.pid for r in records).values())
    median = counts[len(counts) // 2]
    if k <= median:
        return p, k
    capped = max(median, 2)
    wider = min(max(p * k // capped, 2), len(counts))
    log.warning("P x K = %d x %d, but the median identity has %d image(s): using %d x %d (same batch size where the ids "
                "allow) instead of filling batches with repeated images", p, k, median, wider, capped)
    return wider, capped


def lr_factor(epoch: float, cfg: TrainConfig) -> float:
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return 0.1 + 0.9 * epoch / cfg.warmup_epochs
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))
    if cfg.schedule == "step":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: step, cosine")


def subset_ids(records: Sequence[ImageRecord], max_ids: int | None, seed: int) -> list[ImageRecord]:
    """Keep `max_ids` identities (drawn with `seed`), relabelled 0..max_ids-1."""
    pids = sorted({r.pid for r in records})
    if max_ids is None or max_ids >= len(pids):
        return relabel(records)
    keep = set(np.random.default_rng(seed).choice(pids, size=max_ids, replace=False).tolist())
    return relabel([r for r in records if r.pid in keep])


@torch.inference_mode()
def extract_features(model: nn.Module, records: Sequence[ImageRecord], cfg: TrainConfig) -> np.ndarray:
    model.eval()
    device = torch.device(cfg.device)
    feats = []
    for images, _, _ in eval_loader(records, cfg.height, cfg.width, workers=cfg.workers):
        with DEVICE_LOCK.shared(device):
            feats.append(model(images.to(device)).float().cpu())
    return torch.cat(feats).numpy()


def evaluate_model(model: nn.Module, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], cfg: TrainConfig) -> RankResult:
    qf, gf = extract_features(model, query, cfg), extract_features(model, gallery, cfg)
    dist = compute_distance_matrix(qf, gf, metric="cosine")
    return rank_metrics(dist, [r.pid for r in query], [r.pid for r in gallery], [r.camid for r in query], [r.camid for r in gallery])


def train(
    model: nn.Module,
    records: Sequence[ImageRecord],
    cfg: TrainConfig,
    validation: tuple[Sequence[ImageRecord], Sequence[ImageRecord]] | None = None,
    on_epoch: Callable[[int, float | None], None] | None = None,
    before_batch: Callable[[], None] | None = None,
) -> TrainResult:
    """Train in place. `on_epoch(epoch, val_mAP or None)` lets a caller prune or log;
    `before_batch()` runs before every step (a supernet picks its path there)."""
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"training device {cfg.device!r} asked for, but CUDA is not available; use device=cpu")
    num_classes = model.head.classifier.out_features
    train_pids = {r.pid for r in records}
    if max(train_pids) >= num_classes:
        raise ValueError(f"the model has {num_classes} classes but the training set has ids up to {max(train_pids)}; "
                         f"build it with num_classes={len(train_pids)}")
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    p, k = batch_shape(records, cfg.p, cfg.k)
    loader = train_loader(records, cfg.height, cfg.width, p, k, seed=cfg.seed, workers=cfg.workers,
                          random_erasing=cfg.random_erasing)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    result = TrainResult(batch=(p, k))
    started = time.perf_counter()
    hold = DEVICE_LOCK.hold(device)  # this device, shared across steps; handed (synchronised) to a timing that waits
    for epoch in range(cfg.epochs):
        loader.batch_sampler.set_epoch(epoch)
        batches = len(loader) if cfg.max_batches_per_epoch is None else min(len(loader), cfg.max_batches_per_epoch)
        model.train()
        total = 0.0
        bar = tqdm(total=batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
        for step, (images, targets, _) in enumerate(loader):
            if step >= batches:
                break
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(epoch + step / batches, cfg)
            images, targets = images.to(device), targets.to(device)
            if before_batch is not None:
                before_batch()
            with hold:  # a latency timing on this device waits for this step, not for the whole training
                with torch.autocast(device.type, enabled=use_amp):
                    logits, features = model(images)
                    loss = id_loss(logits, targets, cfg.label_smoothing) + batch_hard_triplet_loss(features.float(), targets, cfg.triplet_margin)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1} ({model.spec if hasattr(model, 'spec') else ''}); "
                        f"lower the learning rate (lr={cfg.lr}) or check the input images"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            total += loss.item()
            result.images_seen += len(images)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        result.epoch_losses.append(total / max(batches, 1))
        if cfg.log_epochs:
            log.info("training %s: epoch %d/%d, loss %.3f, %.0f s", getattr(model, "spec", "model"), epoch + 1, cfg.epochs,
                     result.epoch_losses[-1], time.perf_counter() - started)
        val = None
        last = epoch == cfg.epochs - 1
        if validation is not None and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            val = evaluate_model(model, *validation, cfg).mAP
            result.val_mAP.append((epoch + 1, val))
        if on_epoch is not None:
            on_epoch(epoch + 1, val)
    hold.release()
    result.seconds = time.perf_counter() - started
    return result
