"""Evaluators that train nothing: FLOPs and params (`cost`), plus latency (`latency`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attnas.evaluators.config import CostEvaluatorConfig, DatasetConfig, DeviceConfig, LatencyEvaluatorConfig
from attnas.evaluators.cost import model_cost
from attnas.evaluators.latency.sources import TimedLatency, make_latency_source
from attnas.evaluators.base import Evaluator, LatencySource, digest
from attnas.models import build_model
from attnas.space import ArchSpec, SearchSpace, as_spec
from attnas.models import INPUT_SIZE


@dataclass
class CostEvaluator(Evaluator):
    """FLOPs and params only: instant, for studying the space's shape."""

    input_size: tuple[int, int] = INPUT_SIZE
    config_class = CostEvaluatorConfig

    @classmethod
    def from_config(cls, cfg: CostEvaluatorConfig, dataset: DatasetConfig | None, device: DeviceConfig, workdir: str | None) -> "CostEvaluator":
        return cls(tuple(cfg.latency.input_size))

    def produces(self) -> tuple[str, ...]:
        return ("gflops", "params_m")

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        cost = model_cost(build_model(as_spec(spec), num_classes=1), tuple(self.input_size))
        return {"gflops": cost.gflops, "params_m": cost.backbone_params_m}

    def fingerprint(self) -> str:
        return digest(["cost", list(self.input_size)])

    def context(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size)}


@dataclass
class LatencyEvaluator(Evaluator):
    """Latency from a latency source (timed here by default), plus FLOPs and params."""

    latency: LatencySource = field(default_factory=TimedLatency)
    input_size: tuple[int, int] = INPUT_SIZE
    config_class = LatencyEvaluatorConfig

    @classmethod
    def from_config(cls, cfg: LatencyEvaluatorConfig, dataset: DatasetConfig | None, device: DeviceConfig, workdir: str | None) -> "LatencyEvaluator":
        return cls(make_latency_source(cfg.latency, device), tuple(cfg.latency.input_size))

    def produces(self) -> tuple[str, ...]:
        return (*self.latency.produces(), *CostEvaluator(self.input_size).produces())

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        return self.latency.measure(spec) | CostEvaluator(self.input_size).measure_cost(spec)

    def fingerprint(self) -> str:
        return digest(["latency", self.latency.fingerprint(), list(self.input_size)])

    def context(self) -> dict[str, Any]:
        return self.latency.context()

    def predictors(self) -> dict[str, Any]:
        return self.latency.predictors()
