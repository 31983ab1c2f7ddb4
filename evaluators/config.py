"""Typed configs of the evaluator side: the evaluators' own (device, latency and data-set schemas
live with their code and are re-exported here).

These dataclasses are the single place where each knob has its default; the Hydra app registers
them as structured configs (`attnas.search.apps.config`), the yaml files in `conf/` only set what a
named option changes, and Python users construct them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from attnas.evaluators.device import DeviceConfig
from attnas.evaluators.latency.sources import LatencySettings, ProfileSettings, TimerSettings  # noqa: F401 - re-exported
from attnas.evaluators.reid.datasets.config import (  # noqa: F401 - the dataset group's schemas, re-exported
    CUHK03Config, DatasetConfig, SplitDatasetConfig, SyntheticDatasetConfig, loader_options)
from attnas.evaluators.reid.training import TrainOverrides


@dataclass
class EvaluatorConfig:
    """What every evaluator has; `type` picks the class from `attnas.evaluators.EVALUATORS`."""

    type: str = "reid"
    name: str = "proxy"  # names the study and its folder
    objectives: list[str] = field(default_factory=lambda: ["mAP", "latency_ratio"])
    latency: LatencySettings = field(default_factory=LatencySettings)
    # training seeds per spec (seed, seed+1, ...): their mean is the objective, their spread the
    # noise floor; the references enqueued first get more, so every study measures its noise
    repeats: int = 1
    reference_repeats: int = 3
    # racing (attnas.search.racing): a candidate whose place on the front is undecided gets another seed before
    # new ones are proposed, up to racing_seeds seeds each and racing_budget runs per distinct candidate
    racing: bool = False
    racing_seeds: int = 3
    racing_budget: float = 1.5


@dataclass
class CostEvaluatorConfig(EvaluatorConfig):
    type: str = "cost"
    name: str = "cost"
    objectives: list[str] = field(default_factory=lambda: ["gflops", "params_m"])


@dataclass
class LatencyEvaluatorConfig(EvaluatorConfig):
    type: str = "latency"
    name: str = "latency"
    objectives: list[str] = field(default_factory=lambda: ["latency_ratio", "gflops"])


@dataclass
class ReIDEvaluatorConfig(EvaluatorConfig):
    # the embedded default: every candidate fine-tunes (budget finetune) the plain backbone trained once
    # (parent); from scratch, the proxy budget cannot tell architectures apart (bench/noise.py)
    budget: str = "finetune"  # a training budget of attnas.evaluators.reid.training.BUDGETS
    train: TrainOverrides = field(default_factory=TrainOverrides)  # the budget's settings changed, e.g. train.epochs=8
    num_val_ids: int = 50  # validation ids carved from the TRAINING ids
    validation: str = "auto"  # auto | market | cross_camera: how their images split into query and gallery
    # more validation ids until the split holds this many queries (at most half the eligible ids): fewer cannot
    # rank architectures (attnas.evaluators.reid.resolution); the tiny smoke-test budget sets 0
    min_val_queries: int = 30
    pretrained: Optional[str] = None  # imagenet (torchvision cache) or a state_dict path
    parent: Optional[str] = "parent"  # a budget: train the plain backbone once with it; candidates start from it
    parent_train: TrainOverrides = field(default_factory=TrainOverrides)  # the parent budget's settings changed
    parent_dir: Optional[str] = None  # where parent weights are kept (default: the run folder)
