"""The re-ID evaluator: train a candidate with a budget on the training ids minus a validation
carve-out, score it on that carve-out, and time it.

With `parent` (a training budget), the plain backbone is trained once with it and every
candidate starts from its weights, as a network morphism: the blocks are identity at insertion,
so each candidate begins as the trained parent and the short budget only has to show what its
blocks add. The parent's weights are kept in `parent_path` (a folder) under a name derived from
everything that shaped them, so a resumed or parallel search reuses them instead of training
them again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from attnas.evaluators.artefacts import made_once
from attnas.evaluators.metric_registry import retrieval_metrics, retrieval_names
from attnas.evaluators.config import DeviceConfig, ReIDEvaluatorConfig, SyntheticDatasetConfig, DatasetConfig, loader_options
from attnas.evaluators.device import device_type
from attnas.evaluators.cost_evaluators import CostEvaluator
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, stats
from attnas.evaluators.reid.datasets.synthetic import generate
from attnas.evaluators.latency.sources import TimedLatency, make_latency_source
from attnas.evaluators.base import Evaluator, LatencySource, digest
from attnas.evaluators.reid.training import TrainConfig, budget, evaluate_model, set_overrides, subset_ids, train, training_steps
from attnas.evaluators.reid.resolution import Resolution, of_model
from attnas.evaluators.reid.validation import carve_validation
from attnas.models import build_model
from attnas.space import ArchSpec, SearchSpace, as_spec
from attnas.models import INPUT_SIZE

log = logging.getLogger("attnas.evaluators")


def make_dataset(cfg: DatasetConfig) -> ReIDDataset:
    """Load the configured dataset; the synthetic one is generated on first use."""
    root = cfg.folder() if isinstance(cfg, SyntheticDatasetConfig) else cfg.root
    if isinstance(cfg, SyntheticDatasetConfig):
        generate(root, cfg.synth)  # once: kept when complete, made under a lock otherwise
    return load_dataset(cfg.name, root, **loader_options(cfg))


#: training settings that change how fast a run goes or what it prints, never its numbers (the
#: loader's workers and cache are seeded per draw: tested to give identical batches)
NOT_IDENTITY = ("workers", "cache_mb", "log_every", "progress", "log_epochs")


def placement_free(cfg: TrainConfig) -> dict[str, Any]:
    """A training config as the study's identity holds it: `cuda`, not `cuda:1` (workers of one study
    on several GPUs compare their results and share one parent and one supernet), and none of the
    settings that only change speed or output (`NOT_IDENTITY`)."""
    settings = asdict(replace(cfg, device=device_type(cfg.device)))
    return {k: v for k, v in settings.items() if k not in NOT_IDENTITY}


@dataclass
class ReIDEvaluator(Evaluator):
    """`dataset` is a loaded data set, or its config: then it is loaded (generated, for the
    synthetic set) by `prepare`, so that a search refuses a bad config before touching data."""

    dataset: ReIDDataset | DatasetConfig
    train_config: TrainConfig
    num_val_ids: int = 50
    validation: str = "auto"  # auto | market | cross_camera (attnas.evaluators.reid.validation)
    min_val_queries: int = 0  # grow the carve-out to this many queries (attnas.evaluators.reid.validation)
    latency: LatencySource | None = field(default_factory=TimedLatency)
    input_size: tuple[int, int] = INPUT_SIZE  # for FLOPs
    pretrained: str | None = None
    split_seed: int = 0
    parent: TrainConfig | None = None
    parent_path: str | os.PathLike | None = None
    parent_seconds: float | None = field(default=None, init=False)  # set when this process trained the parent
    train_records: list[ImageRecord] = field(default_factory=list, init=False, repr=False)
    val_query: list[ImageRecord] = field(default_factory=list, init=False, repr=False)
    val_gallery: list[ImageRecord] = field(default_factory=list, init=False, repr=False)
    resolution: Resolution | None = field(default=None, init=False, repr=False)  # measured once the backbone is known
    config_class = ReIDEvaluatorConfig

    def __post_init__(self) -> None:
        if self.parent is not None and self.parent_path is None:
            raise ValueError("a parent budget needs parent_path, the folder where its weights are kept")
        if isinstance(self.dataset, ReIDDataset):
            self._identity = [self.dataset.name, self.dataset.root]
        else:
            root = self.dataset.folder() if isinstance(self.dataset, SyntheticDatasetConfig) else self.dataset.root
            self._identity = [self.dataset.name, str(Path(root).resolve()) if root else ""]

    @classmethod
    def from_config(cls, cfg: ReIDEvaluatorConfig, dataset: DatasetConfig, device: DeviceConfig,
                    workdir: str | None) -> "ReIDEvaluator":
        train_cfg = budget(cfg.budget, device=device.type, **set_overrides(cfg.train))
        parent = budget(cfg.parent, device=device.type, **set_overrides(cfg.parent_train)) if cfg.parent is not None else None
        parent_dir = cfg.parent_dir if cfg.parent_dir is not None else workdir
        if parent is not None and parent_dir is None:
            raise ValueError("evaluator.parent needs evaluator.parent_dir, the folder that keeps the parent's weights")
        return cls(dataset, train_cfg, num_val_ids=cfg.num_val_ids, validation=cfg.validation, min_val_queries=cfg.min_val_queries,
                   latency=make_latency_source(cfg.latency, device), input_size=tuple(cfg.latency.input_size),
                   pretrained=cfg.pretrained, parent=parent, parent_path=parent_dir)

    # -- protocol -----------------------------------------------------------------------------
    def prepare(self, space: SearchSpace | str | None = None) -> None:
        """Carve the validation split (checked before any training) and train the parent of the
        space's backbone if it is configured and not on disk yet."""
        backbone = space if isinstance(space, str) or space is None else space.backbone
        if not self.val_query:
            if not isinstance(self.dataset, ReIDDataset):
                self.dataset = make_dataset(self.dataset)
            split = self._split = carve_validation(self.dataset.train, self.num_val_ids, self.split_seed, self.validation,
                                                   self.min_val_queries)
            self._rest, self.val_query, self.val_gallery = split.train, split.query, split.gallery
            self.train_records = subset_ids(self._rest, self.train_config.max_ids, self.split_seed)
            log.info("data: %s", self.dataset.summary())
            log.info("%s; each candidate trains on %s", split.summary(), stats(self.train_records))
        if backbone is not None and self.parent is not None:
            self.parent_weights(backbone)
        if backbone is not None and self.resolution is None:
            self.resolution = self._measure_resolution(backbone)

    def _measure_resolution(self, backbone: str) -> Resolution:
        """The split's resolution, its bootstrap SD measured on the parent (what every candidate starts
        from) or the plain backbone as built; warned about loudly when it cannot rank."""
        start = self.parent_weights(backbone) if self.parent is not None else self.pretrained
        torch.manual_seed(self.split_seed)
        model = build_model(backbone, len({r.pid for r in self.train_records}), pretrained=start)
        what = f"the parent {backbone}" if self.parent is not None else f"the plain {backbone} before training"
        resolution = of_model(model, self.val_query, self.val_gallery, self.train_config, what)
        log.info("validation resolution: %s", resolution.describe())
        if not resolution.can_rank:
            log.warning("THE VALIDATION SPLIT CANNOT RANK ARCHITECTURES: %s; every verdict of this study will say so",
                        resolution.shortfall())
        return resolution

    def produces(self) -> tuple[str, ...]:
        latency = self.latency.produces() if self.latency is not None else ()
        return (*retrieval_names(), "train_seconds", "train_steps", *latency, *CostEvaluator(self.input_size).produces())

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        metrics = CostEvaluator(self.input_size).measure_cost(spec)
        if self.latency is not None:
            metrics = self.latency.measure(spec) | metrics
        return metrics

    def score(self, spec: ArchSpec, seed: int, fidelity: float = 1.0) -> dict[str, float]:
        """Train under `seed` for a fraction `fidelity` of the budget's steps (at least one)."""
        spec = as_spec(spec)
        self.prepare(spec.backbone)
        start = self.parent_weights(spec.backbone) if self.parent is not None else self.pretrained
        cfg = replace(self.train_config, seed=seed)
        torch.manual_seed(seed)  # initial weights: the same for every spec under one seed
        model = build_model(spec, len({r.pid for r in self.train_records}), pretrained=start)
        started = time.perf_counter()
        steps = train(model, self.train_records, cfg, fidelity=fidelity).steps
        train_seconds = time.perf_counter() - started
        ranks = evaluate_model(model, self.val_query, self.val_gallery, cfg)
        return retrieval_metrics(ranks) | {"train_seconds": train_seconds, "train_steps": steps}

    def _data_identity(self) -> list[str]:
        """Name and folder of the data, fixed when the evaluator is made (loading it later must
        not change the fingerprint under which results are stored)."""
        return self._identity

    def fingerprint(self) -> str:
        settings = ["reid", *self._data_identity(), placement_free(replace(self.train_config, seed=0)),
                    self.num_val_ids, *([self.validation] if self.validation != "auto" else []),
                    *([f"min_val_queries={self.min_val_queries}"] if self.min_val_queries else []), self.pretrained, self.split_seed, list(self.input_size),
                    self.latency.fingerprint() if self.latency is not None else None]
        return digest(settings + ([placement_free(self.parent)] if self.parent is not None else []))

    def context(self) -> dict[str, Any]:
        return self.latency.context() if self.latency is not None else {}

    def predictors(self) -> dict[str, Any]:
        return self.latency.predictors() if self.latency is not None else {}

    def provenance(self) -> dict[str, Any]:
        self.prepare()
        return {"data": {"name": self.dataset.name, "root": self.dataset.root, "summary": self.dataset.summary()},
                "validation": {"protocol": self._split.protocol, "split_seed": self.split_seed,
                               "ids": [self.dataset.train_ids[label] for label in self._split.ids],  # as in the file names
                               "queries": len(self.val_query), "gallery": len(self.val_gallery),
                               "resolution": (self.resolution or self._split.resolution).to_dict()},
                "training": {"identities": len({r.pid for r in self.train_records}), "images": len(self.train_records),
                             "steps": training_steps(self.train_records, self.train_config).steps,
                             "parent": asdict(self.parent) if self.parent is not None else None,
                             "pretrained": self.pretrained}}

    # -- the parent -----------------------------------------------------------------------------
    def parent_weights(self, backbone: str) -> Path:
        """Path of the trained plain `backbone`'s weights (a torchvision state_dict), trained if missing."""
        assert self.parent is not None and self.parent_path is not None
        self.prepare()
        name = digest(["parent", backbone, *self._data_identity(), placement_free(self.parent), self.num_val_ids,
                       self.pretrained, self.split_seed])
        path = Path(self.parent_path) / f"parent-{backbone}-{name}.pt"

        def make(partial: Path) -> None:
            records = subset_ids(self._rest, self.parent.max_ids, self.split_seed)
            log.info("training the parent %s once (%d steps on %s); every candidate will start from it", backbone,
                     training_steps(records, self.parent).steps, stats(records))
            torch.manual_seed(self.parent.seed)
            model = build_model(backbone, len({r.pid for r in records}), pretrained=self.pretrained)
            self.parent_seconds = train(model, records, self.parent).seconds
            torch.save(model.backbone.state_dict(), partial)

        # once across workers (a lock), published by an atomic rename: a killed trainer leaves no file here
        return made_once(path, make, what=f"the parent {backbone}")
