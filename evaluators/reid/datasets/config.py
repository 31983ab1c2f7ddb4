"""The `dataset` config group's schemas: what a data set's `conf/dataset/<name>.yaml` can set.

A data set registers its schema with its loader (`DATASETS` in this package); the Hydra app stores
it as `dataset/base_<name>`, with `name` already set, so the yaml sets only what differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from attnas.evaluators.reid.datasets.synthetic import SynthConfig


@dataclass
class DatasetConfig:
    """`name` picks the loader from `attnas.evaluators.reid.datasets.DATASETS`; the other fields
    (beyond `root`) are passed to it."""

    name: str = "market1501"
    root: Optional[str] = None


@dataclass
class SplitDatasetConfig(DatasetConfig):
    """Small sets evaluated over random identity splits (VIPeR, CUHK01)."""

    split_index: int = 0
    num_splits: int = 10
    seed: int = 0


@dataclass
class CUHK03Config(DatasetConfig):
    name: str = "cuhk03"
    variant: str = "detected"  # or labeled


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    name: str = "synthetic"
    root: Optional[str] = None  # None: data/synthetic-<ids>ids-seed<seed>, generated on first use
    synth: SynthConfig = field(default_factory=SynthConfig)

    def folder(self) -> str:
        """`root`, or data/synthetic-<ids>ids-seed<seed>, with a digest of the generator's other
        knobs when they are not the defaults: a set generated otherwise is another folder, never
        mistaken for the default one."""
        if self.root:
            return self.root
        knobs = {k: v for k, v in asdict(self.synth).items() if k not in ("ids", "seed") and v != getattr(SynthConfig, k)}
        tag = "-" + hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:6] if knobs else ""
        return f"data/synthetic-{self.synth.ids}ids-seed{self.synth.seed}{tag}"


def loader_options(cfg: DatasetConfig) -> dict[str, Any]:
    """Fields of a dataset config that its loader takes as keyword arguments."""
    return {k: v for k, v in vars(cfg).items() if k not in ("name", "root", "synth")}
