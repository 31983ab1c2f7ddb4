"""Latency sources: where a candidate's latency comes from. `timer` measures it here, beside the
plain backbone (the ratio survives a busy machine far better than milliseconds do)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from attnas.evaluators.config import DeviceConfig, LatencySettings
from attnas.evaluators.latency import LatencyConfig, device_name, measure_latency_ratio
from attnas.evaluators.protocol import digest
from attnas.models import build_model
from attnas.space import ArchSpec, as_spec


@dataclass
class TimedLatency:
    """Times each candidate interleaved with the plain backbone of its family (A B A B ...)."""

    config: LatencyConfig = field(default_factory=LatencyConfig)
    _baselines: dict[str, torch.nn.Module] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_config(cls, settings: LatencySettings, device: DeviceConfig) -> "TimedLatency":
        return cls(LatencyConfig(device=device.type, threads=device.threads, batch_size=settings.batch_size,
                                 input_size=tuple(settings.input_size), warmup=settings.warmup, repeats=settings.repeats))

    def produces(self) -> tuple[str, ...]:
        return ("latency_ratio", "latency_ms", "latency_p90_ms", "latency_spread", "baseline_latency_ms")

    def measure(self, spec: ArchSpec) -> dict[str, float]:
        spec = as_spec(spec)
        if spec.backbone not in self._baselines:
            self._baselines[spec.backbone] = build_model(spec.backbone, num_classes=1)
        timing = measure_latency_ratio(build_model(spec, num_classes=1), self._baselines[spec.backbone], self.config)
        return {"latency_ratio": timing.ratio, "latency_ratio_se": timing.ratio_se, "latency_ms": timing.model.median_ms,
                "latency_p90_ms": timing.model.p90_ms, "latency_spread": timing.model.spread,
                "baseline_latency_ms": timing.baseline.median_ms}

    def fingerprint(self) -> str:
        return digest(["timer", asdict(self.config)])

    def context(self) -> dict[str, Any]:
        device = torch.device(self.config.device)
        return {"latency_source": "timer", "device": str(device), "device_name": device_name(device),
                "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": self.config.batch_size,
                "input_size": list(self.config.input_size)}


#: latency source name (`evaluator.latency.source`) -> class with `from_config(settings, device)`
LATENCY_SOURCES: dict[str, Any] = {"timer": TimedLatency}


def make_latency_source(settings: LatencySettings, device: DeviceConfig):
    if settings.source not in LATENCY_SOURCES:
        raise ValueError(f"unknown latency source {settings.source!r}; valid sources: {', '.join(LATENCY_SOURCES)}")
    return LATENCY_SOURCES[settings.source].from_config(settings, device)
