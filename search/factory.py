"""Config -> objects: the search space, the sampler, the storage and the evaluator.

Plain dicts map config names to constructors (as timm's registry maps model names), and every
bad value is reported with the valid choices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna
import torch

from attnas.evaluators import (
    CachedEvaluator,
    CostEvaluator,
    LatencyConfig,
    LatencyEvaluator,
    ReIDEvaluator,
    budget,
)
from attnas.evaluators.datasets import load_dataset
from attnas.evaluators.datasets.synthetic import SynthConfig, generate
from attnas.space import ArchSpec, SearchSpace

SPACE_KEYS = ("backbone", "positions", "blocks", "placements", "max_blocks", "encoding")


def make_space(cfg: Mapping[str, Any]) -> SearchSpace:
    extra = set(cfg) - set(SPACE_KEYS) - {"references"}
    if extra:
        raise ValueError(f"unknown space option(s) {sorted(extra)}; valid: {', '.join(SPACE_KEYS)}, references")
    return SearchSpace(**{k: v for k, v in cfg.items() if k in SPACE_KEYS})


def references(cfg: Mapping[str, Any], space: SearchSpace) -> list[ArchSpec]:
    """The configured reference specs that lie inside the space, in config order."""
    specs = [ArchSpec.parse(text) for text in cfg.get("references") or []]
    return [spec for spec in specs if spec in space]


def _nsga2(cfg, seed):
    return optuna.samplers.NSGAIISampler(population_size=cfg.get("population_size", 20), mutation_prob=cfg.get("mutation_prob"),
                                         crossover_prob=cfg.get("crossover_prob", 0.9), seed=seed)


def _tpe(cfg, seed):
    return optuna.samplers.TPESampler(multivariate=cfg.get("multivariate", True), group=cfg.get("group", True),
                                      n_startup_trials=cfg.get("n_startup_trials", 10),
                                      constant_liar=cfg.get("constant_liar", True), seed=seed)


def _gp(cfg, seed):
    return optuna.samplers.GPSampler(n_startup_trials=cfg.get("n_startup_trials", 10), seed=seed)


SAMPLERS: dict[str, Callable[[Mapping[str, Any], int | None], optuna.samplers.BaseSampler]] = {
    "nsga2": _nsga2,
    "tpe": _tpe,
    "gp": _gp,
    "random": lambda cfg, seed: optuna.samplers.RandomSampler(seed=seed),
    "bruteforce": lambda cfg, seed: optuna.samplers.BruteForceSampler(seed=seed),
}


def make_sampler(cfg: Mapping[str, Any], seed: int | None) -> optuna.samplers.BaseSampler:
    name = cfg.get("name")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](cfg, seed)


def make_storage(url: str, heartbeat_interval: int | None = 60, grace_period: int | None = 300, max_retry: int = 2):
    """An Optuna storage from a URL; RDB storages get heartbeats so a killed worker's trial is
    failed and retried instead of staying RUNNING forever."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in url:
        raise ValueError(f"storage {url!r} is not a URL; use sqlite:///PATH.db, postgresql://..., or journal:PATH")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several workers on one SQLite file wait for each other's writes (the default 5 s gives
        # 'database is locked' as soon as a few heartbeats and trial writes collide)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    if heartbeat_interval:
        kwargs |= dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    return _create_rdb_storage(url, kwargs)


def _create_rdb_storage(url: str, kwargs: dict[str, Any], attempts: int = 10) -> optuna.storages.RDBStorage:
    """Workers started together on a new database race to create Optuna's tables; the loser sees
    'table ... already exists' (or a duplicate version row) and simply connects once they exist."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + 0.3 * attempt)
    raise AssertionError("unreachable")


def make_dataset(cfg: Mapping[str, Any]):
    name, root = cfg.get("name"), cfg.get("root")
    options = {k: v for k, v in cfg.items() if k not in ("name", "root", "synth")}
    if name == "synthetic" and not Path(root, "bounding_box_train").is_dir():
        synth = dict(cfg.get("synth") or {})
        generate(root, SynthConfig(**synth))
    return load_dataset(name, root, **options)


def make_latency_config(cfg: Mapping[str, Any], device: Mapping[str, Any]) -> LatencyConfig:
    lat = dict(cfg.get("latency") or {})
    return LatencyConfig(device=device.get("type", "cpu"), threads=device.get("threads"), batch_size=lat.get("batch_size", 1),
                         input_size=tuple(lat.get("input_size", (256, 128))), warmup=lat.get("warmup", 3),
                         repeats=lat.get("repeats", 20))


def make_evaluator(evaluator: Mapping[str, Any], dataset: Mapping[str, Any], device: Mapping[str, Any],
                   cache_path: str | Path | None = None) -> CachedEvaluator:
    kind = evaluator.get("type")
    if device.get("type") == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda asked for, but CUDA is not available on this machine; use device=cpu")
    latency = LatencyEvaluator(make_latency_config(evaluator, device))
    if kind == "latency":
        inner = latency
    elif kind == "cost":
        inner = CostEvaluator(tuple(evaluator.get("latency", {}).get("input_size", (256, 128))))
    elif kind == "reid":
        cfg = budget(evaluator.get("budget", "proxy"), device=device.get("type", "cpu"), **dict(evaluator.get("train") or {}))
        parent, parent_dir = evaluator.get("parent"), evaluator.get("parent_dir")
        if parent is not None:
            parent = budget(parent, device=device.get("type", "cpu"), **dict(evaluator.get("parent_train") or {}))
            if parent_dir is None:
                if cache_path is None:
                    raise ValueError("evaluator.parent needs evaluator.parent_dir, the folder that keeps the parent's weights")
                parent_dir = Path(cache_path).parent
        inner = ReIDEvaluator(make_dataset(dataset), cfg, num_val_ids=evaluator.get("num_val_ids", 50), latency=latency,
                              pretrained=evaluator.get("pretrained"), parent=parent, parent_path=parent_dir)
    else:
        raise ValueError(f"unknown evaluator type {kind!r}; valid types: reid, latency, cost")
    return CachedEvaluator(inner, cache_path)
