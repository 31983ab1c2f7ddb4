"""Evaluators by config type, as timm maps model names to constructors.

Adding an evaluator = its class (with `config_class` and `from_config`) + one line here; the
Hydra app registers its `config_class` as the schema of `evaluator` configs of that type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnas.evaluators.base import Evaluator, check_evaluator_class
from attnas.evaluators.cache import CachedEvaluator
from attnas.evaluators.config import DatasetConfig, DeviceConfig, EvaluatorConfig
from attnas.evaluators.device import check_device
from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.cost_evaluators import CostEvaluator, LatencyEvaluator
from attnas.evaluators.reid_evaluator import ReIDEvaluator
from attnas.evaluators.supernet_evaluator import SupernetEvaluator
from attnas.models.registry import Registry

#: evaluator type (`evaluator.type`) -> class; registration checks the class (`base.check_evaluator_class`)
EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator type", {
    "reid": ReIDEvaluator,
    "supernet": SupernetEvaluator,
    "latency": LatencyEvaluator,
    "cost": CostEvaluator,
}, check=check_evaluator_class, valid="types")


def make_evaluator(cfg: EvaluatorConfig, dataset: DatasetConfig | None, device: DeviceConfig,
                   workdir: str | Path | None = None, cache_path: str | Path | None = None) -> CachedEvaluator:
    """The configured evaluator, cached by spec and seed (in `cache_path` when given)."""
    cls = EVALUATORS.get_entry(cfg.type)
    check_device(device.type)  # `gpu`, `cuda:7` on a 2-GPU machine, CUDA on a CPU machine: one line, before any work
    DEVICE_LOCK.configure(device.lock_dir)
    inner = cls.from_config(cfg, dataset, device, None if workdir is None else str(workdir))
    return CachedEvaluator(inner, cache_path)
