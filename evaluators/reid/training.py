"""Re-ID training that every spec goes through: the bag-of-tricks recipe (Luo et al., 2019).

ID loss with label smoothing on the classifier + batch-hard triplet loss on the feature before
the BNNeck, Adam with linear warm-up then step or cosine decay, P x K batches, for the optimiser
steps of a budget (`attnas.evaluators.reid.budgets`). Seeded and deterministic on CPU.

On CUDA the loop keeps the device fed: pinned batches copied without blocking, one loader pass
(its workers started once) over exactly the batches used, images decoded once when the set fits
in memory, bf16 (or fp16) autocast, fused Adam (its loss scaling needs no host round trip),
cuDNN's benchmark mode, optionally channels_last and torch.compile. The host waits for the device
once per logging interval (`log_every` steps or 30 s), to read the running loss: that read is the
NaN check and the progress line. `bench/train_throughput.py` measures what the loop costs over
the bare forward and backward step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.reid.budgets import (  # noqa: F401 - the budgets' names, re-exported where callers found them
    BUDGETS, StepPlan, TrainConfig, TrainOverrides, budget, check_config, lr_factor, plan_steps, set_overrides)
from attnas.evaluators.reid.data import IdentitySampler, eval_loader, train_loader
from attnas.evaluators.reid.datasets.base import ImageRecord, relabel
from attnas.evaluators.reid.distance import compute_distance_matrix
from attnas.evaluators.reid.losses import batch_hard_triplet_loss, id_loss
from attnas.evaluators.reid.metrics import RankResult, rank_metrics
from attnas.evaluators.reid.progress import TrainingProgress

log = logging.getLogger("attnas.training")

#: at most this long between two reads of the loss (a host sync), however slow the steps
READ_SECONDS = 30.0


@dataclass
class TrainResult:
    epoch_losses: list[float] = field(default_factory=list)
    val_mAP: list[tuple[int, float]] = field(default_factory=list)  # (epoch, mAP) pairs
    seconds: float = 0.0
    images_seen: int = 0
    batch: tuple[int, int] = (0, 0)  # the P x K used (K capped for identities with few images)
    steps: int = 0  # optimiser steps taken


def batch_shape(records: Sequence[ImageRecord], p: int, k: int, warn: bool = True) -> tuple[int, int]:
    """P x K for these records: when the median identity has fewer than K images, a P x K batch
    would be half repeats (sampling with replacement), so K drops to that median (at least 2)
    and P rises to keep the batch size, within the number of identities (said once per training)."""
    counts = sorted(Counter(r.pid for r in records).values())
    median = counts[len(counts) // 2]
    if k <= median:
        return p, k
    capped = max(median, 2)
    wider = min(max(p * k // capped, 2), len(counts))
    if warn:
        log.warning("P x K = %d x %d, but the median identity has %d image(s): using %d x %d (same batch size where the ids "
                    "allow) instead of filling batches with repeated images", p, k, median, wider, capped)
    return wider, capped


def subset_ids(records: Sequence[ImageRecord], max_ids: int | None, seed: int) -> list[ImageRecord]:
    """Keep `max_ids` identities (drawn with `seed`), relabelled 0..max_ids-1."""
    pids = sorted({r.pid for r in records})
    if max_ids is None or max_ids >= len(pids):
        return relabel(records)
    keep = set(np.random.default_rng(seed).choice(pids, size=max_ids, replace=False).tolist())
    return relabel([r for r in records if r.pid in keep])


def training_device(name: str) -> torch.device:
    """The device `name` names, refused in one line when it is no device or not on this machine."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown training device {name!r}; valid: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown training device {name!r}; valid: cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"training device {name!r} asked for, but CUDA is not available on this machine; use device=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"training device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The mixed-precision type of a training on `device`, or None for fp32 (always on CPU)."""
    if not cfg.amp or device.type != "cuda":
        return None
    if cfg.amp_dtype == "fp16":
        return torch.float16
    with torch.cuda.device(device):
        bf16 = torch.cuda.is_bf16_supported()
    if cfg.amp_dtype == "bf16" and not bf16:
        raise ValueError(f"amp_dtype=bf16 asked for, but {torch.cuda.get_device_name(device)} has no bfloat16; "
                         f"use amp_dtype=fp16 or auto")
    return torch.bfloat16 if bf16 else torch.float16


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN's benchmark mode for one training, restored after (a latency timing in the same
    process must not inherit it)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def training_steps(records: Sequence[ImageRecord], cfg: TrainConfig, fidelity: float = 1.0,
                   shape: tuple[int, int] | None = None) -> StepPlan:
    """The steps `cfg` trains on `records` (without training) in P x K batches of `shape`
    (default: `batch_shape`'s)."""
    p, k = shape or batch_shape(records, cfg.p, cfg.k, warn=False)
    return plan_steps(cfg, IdentitySampler([r.pid for r in records], p, k).batches_per_pass, fidelity)


@torch.inference_mode()
def extract_features(model: nn.Module, records: Sequence[ImageRecord], cfg: TrainConfig) -> np.ndarray:
    model.eval()
    device = torch.device(cfg.device)
    memory = memory_format(cfg, device)
    feats = []
    for images, _, _ in eval_loader(records, cfg.height, cfg.width, workers=cfg.workers, pin_memory=device.type == "cuda",
                                    cache_mb=cfg.cache_mb):
        with DEVICE_LOCK.shared(device):
            feats.append(model(images.to(device, non_blocking=True, memory_format=memory)).float().cpu())
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
    fidelity: float = 1.0,
) -> TrainResult:
    """Train in place for the budget's steps (a fraction `fidelity` of them for a multi-fidelity
    rung). `on_epoch(epoch, val_mAP or None)` lets a caller prune or log; `before_batch()` runs
    before every step (a supernet picks its path there)."""
    started = time.perf_counter()
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    device = training_device(cfg.device)
    num_classes = model.head.classifier.out_features
    train_pids = {r.pid for r in records}
    if max(train_pids) >= num_classes:
        raise ValueError(f"the model has {num_classes} classes but the training set has ids up to {max(train_pids)}; "
                         f"build it with num_classes={len(train_pids)}")
    p, k = batch_shape(records, cfg.p, cfg.k)
    plan = training_steps(records, cfg, fidelity, shape=(p, k))
    loader = train_loader(records, cfg.height, cfg.width, p, k, seed=cfg.seed, workers=cfg.workers, num_batches=plan.steps,
                          pin_memory=device.type == "cuda", cache_mb=cfg.cache_mb, random_erasing=cfg.random_erasing)
    memory = memory_format(cfg, device)
    model.to(device, memory_format=memory).train()
    forward = torch.compile(model) if cfg.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True if device.type == "cuda" else None)
    dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    what = str(getattr(model, "spec", "model"))
    result = TrainResult(batch=(p, k), steps=plan.steps)
    if cfg.log_epochs:
        log.info("training %s: %d steps (%d epochs) of %d x %d images at %dx%d on %s%s", what, plan.steps, plan.epochs, p, k,
                 cfg.height, cfg.width, device, f", {str(dtype).removeprefix('torch.')} autocast" if dtype else "")
    progress = TrainingProgress(what, plan.steps, plan.epochs, log, cfg.log_epochs, cfg.progress)
    batches = iter(loader)  # one pass for the whole training: the workers start once
    hold = DEVICE_LOCK.hold(device)  # this device, shared across steps; handed (synchronised) to a timing that waits
    try:
        with cudnn_benchmark(cfg.cudnn_benchmark and device.type == "cuda"):
            for epoch in range(plan.epochs):
                model.train()
                first, last = plan.bounds(epoch)
                # the epoch's loss summed on the device: read whenever, it adds up the same (a seed's numbers
                # must not depend on how slow the machine was)
                running = torch.zeros((), device=device)
                read_from, read_at = first, time.perf_counter()
                for step in range(first, last):
                    images, targets, _ = next(batches)
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.lr * lr_factor(plan.schedule_epoch(step), cfg)
                    images = images.to(device, non_blocking=True, memory_format=memory)
                    targets = targets.to(device, non_blocking=True)
                    if before_batch is not None:
                        before_batch()
                    with hold:  # a latency timing on this device waits for this step, not for the whole training
                        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                            logits, features = forward(images)
                            loss = id_loss(logits, targets, cfg.label_smoothing) + batch_hard_triplet_loss(
                                features.float(), targets, cfg.triplet_margin)
                        optimizer.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    running += loss.detach()
                    result.images_seen += len(images)
                    progress.step()
                    done = step + 1
                    if done == last or done - read_from >= cfg.log_every or time.perf_counter() - read_at >= READ_SECONDS:
                        total = running.item()  # the interval's one host sync
                        if not math.isfinite(total):
                            raise FloatingPointError(
                                f"loss became {total} in epoch {epoch + 1}, steps {read_from + 1}-{done} ({what}); "
                                f"lower the learning rate (lr={cfg.lr}) or check the input images")
                        progress.loss_read(done, epoch, total / (done - first), done == last)  # the epoch's mean so far
                        read_from, read_at = done, time.perf_counter()
                result.epoch_losses.append(total / (last - first))
                val = None
                if validation is not None and (epoch == plan.epochs - 1 or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
                    val = evaluate_model(model, *validation, cfg).mAP
                    result.val_mAP.append((epoch + 1, val))
                if on_epoch is not None:
                    on_epoch(epoch + 1, val)
    finally:
        hold.release()
        progress.close()
        del batches  # its loader workers end here
    result.seconds = time.perf_counter() - started
    return result
