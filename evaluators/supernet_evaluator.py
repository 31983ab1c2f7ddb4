"""The one-shot evaluator: score a candidate in seconds with the weights of a supernet.

The supernet (`attnas.models.supernet`) holds every block of the search space at every allowed
position. It is trained once per search, starting from the parent (the plain backbone trained
once), with one path drawn per batch: uniform over the number of blocks, then over positions,
then over block variants and placements, so every block learns in the contexts it is scored in.
Its weights are kept under a digest of everything that shaped them and made once across workers
(a lock; an atomic rename, so a killed training leaves no file that is loaded).

A candidate is the supernet with its path fixed, its batch-norm statistics recomputed on a few
training batches (drawn with the seed: shared batch norms have seen every path's features, not
this path's), scored on the validation split carved from the training ids, and timed or
predicted like any candidate. One-shot scores rank candidates roughly; `finalists` re-evaluates
the likely front stand-alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnas.evaluators.artefacts import made_once
from attnas.evaluators.metric_registry import retrieval_metrics
from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.config import DatasetConfig, DeviceConfig, ReIDEvaluatorConfig
from attnas.evaluators.reid.data import train_loader
from attnas.evaluators.base import digest
from attnas.evaluators.reid_evaluator import ReIDEvaluator, placement_free
from attnas.evaluators.reid.training import batch_shape, evaluate_model, train, training_steps
from attnas.models.supernet import Supernet
from attnas.models.weights import read_weights
from attnas.space import ArchSpec, SearchSpace, as_spec

log = logging.getLogger("attnas.evaluators")


@dataclass
class SupernetEvaluatorConfig(ReIDEvaluatorConfig):
    type: str = "supernet"
    name: str = "supernet"
    budget: str = "supernet"  # the supernet's training (one path per batch)
    calibration_batches: int = 8  # training batches that recompute a candidate's batch-norm statistics


def sample_path(space: SearchSpace, rng: np.random.Generator) -> ArchSpec:
    """Uniform over the number of blocks, then positions, then block variants and placements."""
    count = int(rng.integers(0, space.limit + 1))
    positions = rng.choice(space.allowed_positions, size=count, replace=False) if count else []
    choices = space.choices
    return ArchSpec(space.backbone, {str(pos): choices[int(rng.integers(len(choices)))] for pos in positions})


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches) -> None:
    """Running statistics of every batch norm recomputed (cumulative average) on `batches`, in
    training mode; nothing else changes."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    for images in batches:
        model(images)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


@dataclass
class SupernetEvaluator(ReIDEvaluator):
    calibration_batches: int = 8
    supernet_seconds: float | None = field(default=None, init=False)
    config_class = SupernetEvaluatorConfig

    @classmethod
    def from_config(cls, cfg: SupernetEvaluatorConfig, dataset: DatasetConfig, device: DeviceConfig,
                    workdir: str | None) -> "SupernetEvaluator":
        base = ReIDEvaluator.from_config(cfg, dataset, device, workdir)
        return cls(**{f: getattr(base, f) for f in ReIDEvaluator.__dataclass_fields__ if getattr(
            ReIDEvaluator.__dataclass_fields__[f], "init", True)}, calibration_batches=cfg.calibration_batches)

    def prepare(self, space: SearchSpace | str | None = None) -> None:
        super().prepare(space)
        if isinstance(space, SearchSpace):
            self.space = space
            self.supernet()

    def supernet_path(self) -> Path:
        parent = self.parent_weights(self.space.backbone) if self.parent is not None else self.pretrained
        name = digest(["supernet", self.space.identity(), str(parent), *self._data_identity(), placement_free(self.train_config),
                       self.num_val_ids, self.split_seed])
        return Path(self.parent_path or ".") / f"supernet-{self.space.backbone}-{name}.pt"

    def supernet(self) -> Supernet:
        """The trained supernet of the prepared space (trained once, then loaded)."""
        if getattr(self, "_supernet", None) is not None:
            return self._supernet
        path = self.supernet_path()
        classes = len({r.pid for r in self.train_records})
        parent = str(self.parent_weights(self.space.backbone)) if self.parent is not None else self.pretrained

        def build() -> Supernet:
            torch.manual_seed(self.train_config.seed)
            choices = [str(c) for c in self.space.choices]
            return Supernet(self.space.backbone, list(self.space.allowed_positions), choices, classes, pretrained=parent)

        def make(partial: Path) -> None:
            net, rng = build(), np.random.default_rng(self.train_config.seed)
            log.info("training the supernet of %s once (%d steps, one path per batch)", self.space.describe(),
                     training_steps(self.train_records, self.train_config).steps)
            self.supernet_seconds = train(net, self.train_records, self.train_config,
                                          before_batch=lambda: net.set_path(sample_path(self.space, rng))).seconds
            torch.save(net.state_dict(), partial)

        made_once(path, make, what="the supernet")
        net = build()
        net.load_state_dict(read_weights(path, "the trained supernet"))
        self._supernet = net.to(self.train_config.device)
        return self._supernet

    def score(self, spec: ArchSpec, seed: int, fidelity: float = 1.0) -> dict[str, float]:
        """The supernet on `spec`'s path, batch norms recalibrated on batches drawn with `seed`."""
        spec = as_spec(spec)
        net = self.supernet()
        net.set_path(spec)
        cfg = self.train_config
        p, k = batch_shape(self.train_records, cfg.p, cfg.k)
        loader = train_loader(self.train_records, cfg.height, cfg.width, p, k, seed=seed, workers=0,
                              num_batches=self.calibration_batches, cache_mb=cfg.cache_mb, random_erasing=0.0)
        batches = [images.to(cfg.device) for images, _, _ in loader]
        with DEVICE_LOCK.shared(cfg.device):
            recalibrate_batch_norm(net, batches)
        ranks = evaluate_model(net, self.val_query, self.val_gallery, cfg)
        return retrieval_metrics(ranks) | {"train_seconds": 0.0, "train_steps": 0}

    def fingerprint(self) -> str:
        return digest(["supernet", super().fingerprint(), self.calibration_batches])

    def extract(self, spec: ArchSpec | str) -> nn.Module:
        """The candidate as `build_model(spec)` with the supernet's weights, to fine-tune or export."""
        return self.supernet().extract(as_spec(spec))
