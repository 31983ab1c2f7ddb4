"""The search loop's own config (`attnas-search`'s top level): the study's knobs and the groups it
composes. Each group's schema lives with the package that owns the knob (a space's in
`attnas.space`, an evaluator's, dataset's and device's in `attnas.evaluators.config`, a sampler's
in `attnas.search.samplers`); `attnas.search.apps.config` registers them all with Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from attnas.search.fidelity import MultiFidelityConfig


class ConfigError(ValueError):
    """A config that cannot be run; the message is one line and names what is valid."""


@dataclass
class FinalistsConfig:
    """A stand-alone second stage after a (one-shot) search: `attnas.search.apps.finalists`."""

    count: int = 0  # 0: no second stage
    evaluator: str = "proxy"  # the conf/evaluator option that evaluates them stand-alone
    repeats: int = 3  # seeds per finalist


@dataclass
class ConfirmConfig:
    """Confirmation on fresh seeds at the end of a search (`attnas.search.apps.confirm`)."""

    count: int = 0  # the K candidates with the largest seed-blocked gains are retrained; 0: none (attnas-export confirms its pick)
    seeds: int = 5  # fresh seeds for each pick and the plain backbone: 5 confirm a gain of 2 residual SDs 83% of the time


@dataclass
class SearchConfig:
    """`attnas-search`: the groups, then the study's own knobs."""

    space: Any = MISSING
    dataset: Any = MISSING
    evaluator: Any = MISSING
    sampler: Any = MISSING
    device: Any = MISSING
    # a job of a --multirun sweep gets its overrides appended (`...-proxy-space.max_blocks-2`), so
    # each sweep point is its own study; `worker` is left out, so workers of a sweep share one
    study_name: str = "attnas-${space.backbone}-${dataset.name}-${evaluator.name}${attnas.sweep_suffix:}"
    # None: a SQLite file in the run folder, runs/<study_name>/study.db (stable per study, so the same
    # command resumes); any Optuna storage URL works: postgresql://..., mysql://..., journal:PATH
    storage: Optional[str] = None
    n_trials: int = 8  # COMPLETE trials the study should hold, across runs and workers; a resumed run adds the rest
    max_failures: int = 10  # stop when the study holds this many failed trials
    timeout: Optional[float] = None  # seconds for this process
    seed: int = 0  # training seeds seed, seed+1, ... (repeats) and the sampler's; same seed, same numbers
    worker: Optional[int] = None  # this process's index among workers of one study: their samplers differ
    workers: int = 1  # worker processes on this machine (each with its share of the CPU threads)
    enqueue_references: bool = True  # plain backbone + the paper's configurations first
    constraints: dict[str, float] = field(default_factory=dict)  # {latency_ratio: 1.10}: feasible when within
    heartbeat_interval: Optional[int] = 60  # RDB storage: a dead worker's trial is failed after grace_period ...
    grace_period: Optional[int] = 300
    max_retry: int = 2  # ... and retried up to this many times
    duplicate_wait: float = 7200.0  # seconds to wait for another worker training the same spec
    report: bool = True  # write the dashboard at the end (attnas-report)
    progress: bool = True
    # a spec whose latency (measured or predicted before training) breaks a constraint is recorded
    # infeasible with its latency and not trained; true trains it anyway
    train_infeasible: bool = False
    multifidelity: MultiFidelityConfig = field(default_factory=MultiFidelityConfig)  # MO-ASHA rungs
    finalists: FinalistsConfig = field(default_factory=FinalistsConfig)  # a stand-alone second stage
    plugins: list[str] = field(default_factory=list)  # modules imported first, registering their entries (apps/plugins.py)
    # measure the study's flagged (disturbed) latencies again, in place, and stop: no new trials
    retime: bool = False
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)  # retrain the best candidates under fresh seeds


