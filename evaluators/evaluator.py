"""Multi-objective evaluators: spec -> metrics (mAP, rank-k, mINP, latency, FLOPs, params).

One protocol, `evaluate(spec) -> dict[str, float]`, as Optuna's samplers share one interface:
the search driver does not care whether a number came from training or from a stopwatch.
`CachedEvaluator` keys results by the spec's canonical form (plus the evaluator's settings), so
an architecture that a sampler proposes again is never trained twice, across processes too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from attnas.evaluators.cost import model_cost
from attnas.evaluators.datasets.base import ReIDDataset
from attnas.evaluators.latency import LatencyConfig, device_name, measure_latency_ratio
from attnas.evaluators.training import TrainConfig, evaluate_model, subset_ids, train
from attnas.evaluators.validation import carve_validation
from attnas.models import build_model
from attnas.space import ArchSpec, as_spec


class Evaluator(Protocol):
    def evaluate(self, spec: ArchSpec) -> dict[str, float]: ...

    def fingerprint(self) -> str: ...


def _digest(settings: Any) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class CostEvaluator:
    """FLOPs and params only: instant, for studying the space's shape."""

    input_size: tuple[int, int] = (256, 128)

    def evaluate(self, spec: ArchSpec) -> dict[str, float]:
        cost = model_cost(build_model(as_spec(spec), num_classes=1), tuple(self.input_size))
        return {"gflops": cost.gflops, "params_m": cost.backbone_params_m}

    def fingerprint(self) -> str:
        return _digest(["cost", list(self.input_size)])


@dataclass
class LatencyEvaluator:
    """Latency as a ratio to the plain backbone timed interleaved, plus cost."""

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    _baselines: dict[str, torch.nn.Module] = field(default_factory=dict, init=False, repr=False)

    def evaluate(self, spec: ArchSpec) -> dict[str, float]:
        spec = as_spec(spec)
        if spec.backbone not in self._baselines:
            self._baselines[spec.backbone] = build_model(spec.backbone, num_classes=1)
        model = build_model(spec, num_classes=1)
        timing = measure_latency_ratio(model, self._baselines[spec.backbone], self.latency)
        cost = model_cost(model, tuple(self.latency.input_size))
        return {
            "latency_ratio": timing.ratio,
            "latency_ms": timing.model.median_ms,
            "latency_p90_ms": timing.model.p90_ms,
            "latency_spread": timing.model.spread,
            "baseline_latency_ms": timing.baseline.median_ms,
            "gflops": cost.gflops,
            "params_m": cost.backbone_params_m,
        }

    def fingerprint(self) -> str:
        return _digest(["latency", asdict(self.latency)])

    def context(self) -> dict[str, Any]:
        """What the timings were measured on, stored beside them."""
        device = torch.device(self.latency.device)
        return {"device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
                "torch": torch.__version__, "batch_size": self.latency.batch_size, "input_size": list(self.latency.input_size)}


@dataclass
class ReIDEvaluator:
    """Train with a budget on the training ids minus a validation carve-out; score on that carve-out.

    With `parent` (a training budget), the plain backbone is trained once with it and every
    candidate starts from its weights, as a network morphism: the blocks are identity at
    insertion, so each candidate begins as the trained parent and the short budget only has to
    show what its blocks add. The parent's backbone weights are kept at `parent_path` (a folder)
    under a name derived from everything that shaped them, so a resumed or parallel search reuses
    them instead of training them again.
    """

    dataset: ReIDDataset
    train_config: TrainConfig
    num_val_ids: int = 50
    latency: LatencyEvaluator | None = field(default_factory=LatencyEvaluator)
    pretrained: str | None = None
    split_seed: int = 0
    parent: TrainConfig | None = None
    parent_path: str | os.PathLike | None = None
    parent_seconds: float | None = field(default=None, init=False)  # set when this process trained the parent

    def __post_init__(self) -> None:
        self._rest, self.val_query, self.val_gallery = carve_validation(self.dataset.train, self.num_val_ids, self.split_seed)
        self.train_records = subset_ids(self._rest, self.train_config.max_ids, self.split_seed)
        if self.parent is not None and self.parent_path is None:
            raise ValueError("a parent budget needs parent_path, the folder where its weights are kept")

    def parent_weights(self, backbone: str) -> Path:
        """Path of the trained plain `backbone`'s weights (a torchvision state_dict), trained if missing."""
        assert self.parent is not None and self.parent_path is not None
        name = _digest(["parent", backbone, self.dataset.name, self.dataset.root, asdict(self.parent), self.num_val_ids,
                        self.pretrained, self.split_seed])
        path = Path(self.parent_path) / f"parent-{backbone}-{name}.pt"
        if path.exists():
            return path
        records = subset_ids(self._rest, self.parent.max_ids, self.split_seed)
        torch.manual_seed(self.parent.seed)
        model = build_model(backbone, len({r.pid for r in records}), pretrained=self.pretrained)
        self.parent_seconds = train(model, records, self.parent).seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        torch.save(model.backbone.state_dict(), partial)
        os.replace(partial, path)  # atomic: a worker never reads half a file
        return path

    def evaluate(self, spec: ArchSpec) -> dict[str, float]:
        spec = as_spec(spec)
        start = self.parent_weights(spec.backbone) if self.parent is not None else self.pretrained
        torch.manual_seed(self.train_config.seed)  # same initial weights for the same spec and seed
        model = build_model(spec, len({r.pid for r in self.train_records}), pretrained=start)
        started = time.perf_counter()
        train(model, self.train_records, self.train_config)
        train_seconds = time.perf_counter() - started
        ranks = evaluate_model(model, self.val_query, self.val_gallery, self.train_config)
        metrics = {"mAP": ranks.mAP, "rank1": ranks.rank(1), "rank5": ranks.rank(5), "rank10": ranks.rank(10),
                   "mINP": ranks.mINP, "train_seconds": train_seconds}
        if self.latency is not None:
            metrics |= self.latency.evaluate(spec)
        return metrics

    def context(self) -> dict[str, Any]:
        return self.latency.context() if self.latency is not None else {}

    def fingerprint(self) -> str:
        return _digest(["reid", self.dataset.name, self.dataset.root, asdict(self.train_config), self.num_val_ids,
                        self.pretrained, self.split_seed, self.latency.fingerprint() if self.latency else None]
                       + ([asdict(self.parent)] if self.parent is not None else []))


class CachedEvaluator:
    """Results by canonical spec, in memory and (optionally) in a JSON-lines file that survives restarts."""

    def __init__(self, inner: Evaluator, path: str | os.PathLike | None = None) -> None:
        self.inner = inner
        self.path = Path(path) if path else None
        self.prefix = inner.fingerprint()
        self.hits = self.misses = 0
        self._results: dict[str, dict[str, float]] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a killed writer: skip it, keep the rest
                    continue
                if entry.get("evaluator") == self.prefix:
                    self._results[entry["spec"]] = entry["metrics"]

    def evaluate(self, spec: ArchSpec | str) -> dict[str, float]:
        key = str(as_spec(spec))
        if key in self._results:
            self.hits += 1
            return dict(self._results[key])
        self.misses += 1
        metrics = self.inner.evaluate(as_spec(key))
        self._results[key] = metrics
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(json.dumps({"evaluator": self.prefix, "spec": key, "metrics": metrics}) + "\n")
        return dict(metrics)

    def fingerprint(self) -> str:
        return self.prefix

    def context(self) -> dict[str, Any]:
        """Where the inner evaluator measures (device, threads, torch, batch, input), if it times anything."""
        return self.inner.context() if hasattr(self.inner, "context") else {}
