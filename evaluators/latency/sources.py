"""Latency sources: where a candidate's latency comes from. `timer` measures it here, beside the
plain backbone (the ratio survives a busy machine far better than milliseconds do)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch

from attnas.evaluators.device import DEVICE_LOCK, DeviceConfig
from attnas.evaluators.latency.timing import LatencyConfig, LatencyRatio, device_name, measure_latency_ratio
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.evaluators.base import LatencySource, digest
from attnas.models.registry import Registry
from attnas.models import build_model
from attnas.space import ArchSpec, as_spec
from attnas.models import INPUT_SIZE

log = logging.getLogger("attnas.latency")


@dataclass
class LatencySettings:
    source: str = "timer"  # timer: timed beside the plain backbone here; profile: predicted from a device profile
    profile: Optional[str] = None  # the profile file (attnas-profile) when source=profile
    batch_size: int = 1
    input_size: list[int] = field(default_factory=lambda: list(INPUT_SIZE))  # H, W
    warmup: int = 3
    repeats: int = 20  # timed (candidate, plain) pairs
    retries: int = 2  # a disturbed timing is taken again up to this many times, then flagged
    max_spread: float = 0.25  # disturbed: (p90 - p10) / median of the samples above this
    max_ratio_se: float = 0.02  # disturbed: the ratio's standard error above this share of it


@dataclass
class TimedLatency(LatencySource):
    """Times each candidate interleaved with the plain backbone of its family (A B A B ...).

    A busy machine makes timings wrong: so the timing holds the machine's `DeviceLock` (training
    steps in this and other attnas processes pause for its few seconds), and a measurement that
    looks disturbed is taken again, up to `retries` times: when the samples' spread exceeds
    `max_spread`, when the ratio's standard error exceeds `max_ratio_se`, or when the plain
    backbone timed against itself is not within `plain_tolerance` of 1. If it still looks
    disturbed it is kept but flagged (`latency_unreliable` = 1, a warning, a marker in the
    dashboard), never silently trusted.
    """

    name = "timer"
    config: LatencyConfig = field(default_factory=LatencyConfig)
    retries: int = 2
    max_spread: float = 0.25
    max_ratio_se: float = 0.02
    plain_tolerance: float = 0.03
    _baselines: dict[str, torch.nn.Module] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_config(cls, settings: LatencySettings, device: DeviceConfig) -> "TimedLatency":
        return cls(LatencyConfig(device=device.type, threads=device.threads, batch_size=settings.batch_size,
                                 input_size=tuple(settings.input_size), warmup=settings.warmup, repeats=settings.repeats),
                   retries=settings.retries, max_spread=settings.max_spread, max_ratio_se=settings.max_ratio_se)

    def produces(self) -> tuple[str, ...]:
        return ("latency_ratio", "latency_ms", "latency_p90_ms", "latency_spread", "baseline_latency_ms",
                "latency_attempts", "latency_unreliable")

    @classmethod
    def describe(cls, context: dict[str, Any]) -> str:
        return (f"timed during the search on {context.get('device_name')} ({context.get('device')}, {context.get('threads')} "
                f"threads, batch {context.get('batch_size')}, input {'x'.join(map(str, context.get('input_size', [])))})")

    def problems(self, spec: ArchSpec, timing: LatencyRatio) -> list[str]:
        """Why a measurement looks disturbed (empty when it does not)."""
        found = []
        spread = max(timing.model.spread, timing.baseline.spread)
        if spread > self.max_spread:
            found.append(f"spread {spread:.2f} > {self.max_spread}")
        if timing.ratio_se > self.max_ratio_se * timing.ratio:
            found.append(f"ratio standard error {timing.ratio_se / timing.ratio:.1%} > {self.max_ratio_se:.0%}")
        if spec.num_blocks == 0 and abs(timing.ratio - 1) > self.plain_tolerance:
            found.append(f"the plain backbone measured {timing.ratio:.3f}x itself")
        return found

    def measure(self, spec: ArchSpec) -> dict[str, float]:
        spec = as_spec(spec)
        if spec.backbone not in self._baselines:
            self._baselines[spec.backbone] = build_model(spec.backbone, num_classes=1)
        model = build_model(spec, num_classes=1)
        for attempt in range(1, self.retries + 2):
            with DEVICE_LOCK.exclusive():
                timing = measure_latency_ratio(model, self._baselines[spec.backbone], self.config)
            problems = self.problems(spec, timing)
            if not problems:
                break
            log.info("timing %s looks disturbed (%s); attempt %d of %d", spec, "; ".join(problems), attempt, self.retries + 1)
        if problems:
            log.warning("latency of %s is unreliable after %d attempts: %s", spec, attempt, "; ".join(problems))
        return {"latency_ratio": timing.ratio, "latency_ratio_se": timing.ratio_se, "latency_ms": timing.model.median_ms,
                "latency_p90_ms": timing.model.p90_ms, "latency_spread": timing.model.spread,
                "baseline_latency_ms": timing.baseline.median_ms, "latency_attempts": float(attempt),
                "latency_unreliable": float(bool(problems))}

    def fingerprint(self) -> str:
        return digest(["timer", asdict(self.config)])  # the retry policy does not change what is measured

    def context(self) -> dict[str, Any]:
        device = torch.device(self.config.device)
        return {"latency_source": "timer", "device": str(device), "device_name": device_name(device),
                "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": self.config.batch_size,
                "input_size": list(self.config.input_size)}


@dataclass
class ProfileLatency(LatencySource):
    """Latency predicted from a device profile (`attnas-profile`): no timing during the search,
    the target device's numbers instead of this machine's."""

    name = "profile"
    profile: LatencyProfile
    path: str = ""

    @classmethod
    def from_config(cls, settings: LatencySettings, device: DeviceConfig) -> "ProfileLatency":
        if not settings.profile:
            raise ValueError("evaluator.latency.source=profile needs evaluator.latency.profile=PATH (made by attnas-profile)")
        profile = LatencyProfile.load(settings.profile)
        profile.check(profile.backbone, settings.batch_size, settings.input_size)
        return cls(profile, str(settings.profile))

    def produces(self) -> tuple[str, ...]:
        return ("latency_ratio", "latency_ms")

    def predictors(self) -> dict[str, Any]:
        return {"latency_ratio": lambda spec: self.profile.predict(spec)[0],
                "latency_ms": lambda spec: self.profile.predict(spec)[0] * self.profile.plain_ms}

    def measure(self, spec: ArchSpec) -> dict[str, float]:
        ratio, se = self.profile.predict(spec)
        return {"latency_ratio": ratio, "latency_ratio_se": se, "latency_ms": ratio * self.profile.plain_ms}

    def fingerprint(self) -> str:
        return digest(["profile", self.profile.digest])

    @classmethod
    def describe(cls, context: dict[str, Any]) -> str:
        return f"predicted from the profile of {context.get('device_name')} ({context.get('device')}, {context.get('threads')} threads)"

    def context(self) -> dict[str, Any]:
        p = self.profile
        return {"latency_source": "profile", "profile": self.path, "profile_digest": p.digest, "device": p.device,
                "device_name": p.device_name, "threads": p.threads, "torch": p.torch, "batch_size": p.batch_size,
                "input_size": list(p.input_size), "profiled": p.created}


def _check_source(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, LatencySource)) or getattr(cls, "__abstractmethods__", None):
        raise TypeError(f"latency source {name!r} must be a LatencySource subclass implementing every abstract method, "
                        f"got {cls!r}")
    if cls.name != name:
        raise ValueError(f"latency source {name!r}: {cls.__name__}.name is {cls.name!r}; set name = {name!r}, the name "
                         f"it is registered under")


#: latency source name (`evaluator.latency.source`) -> class with `from_config(settings, device)`
LATENCY_SOURCES: Registry[type[LatencySource]] = Registry("latency source", {"timer": TimedLatency, "profile": ProfileLatency},
                                                          check=_check_source, valid="sources")


def make_latency_source(settings: LatencySettings, device: DeviceConfig) -> LatencySource:
    return LATENCY_SOURCES.get_entry(settings.source).from_config(settings, device)
