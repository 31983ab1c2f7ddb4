"""Latency sources: where a candidate's latency comes from. `timer` measures it here, beside the
plain backbone (the ratio survives a busy machine far better than milliseconds do); `profile`
predicts it from a device profile measured once on the target (`attnas-profile`).

Settings: `evaluator.latency` holds what every source's latency is *of* (`LatencySettings`:
the source, batch, input size, runtime, precision), and each source its own knobs in a sub-node
named after it, with its own schema (`settings_class`): `evaluator.latency.timer.repeats=50`,
`evaluator.latency.profile.path=profiles/robot.json`. An evaluator option can tune the timer and
still be run with a profile: the sub-node of the source not chosen is not read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from attnas.evaluators.base import LatencySource, digest
from attnas.evaluators.device import DeviceConfig, device_type
from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.latency.disturbance import Disturbance
from attnas.evaluators.latency.environment import software, timing_device
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.evaluators.latency.runtimes import check_runtime
from attnas.evaluators.latency.timing import LatencyConfig, LatencyRatio, device_name, measure_latency_ratio
from attnas.models import INPUT_SIZE, build_model
from attnas.models.registry import Registry
from attnas.space import ArchSpec, as_spec

log = logging.getLogger("attnas.latency")


@dataclass
class TimerSettings:
    """`evaluator.latency.timer.*`: how the timer measures (source=timer)."""

    warmup: int = 3
    repeats: int = 20  # timed (candidate, plain) pairs
    # a disturbed timing is taken again this many times at once (the device handed back in between),
    # then kept, flagged for `attnas-search ... retime=true`: never retried for minutes under the lock
    retries: int = 1
    max_spread: float = 0.25  # disturbed: (p90 - p10) / median of the samples above this
    max_ratio_se: float = 0.02  # disturbed: the ratio's standard error above this share of it
    max_seconds: float = 30.0  # a timing holds the device at most this long, then keeps the pairs it has
    max_wait_s: float = 60.0  # waits at most this long for the device, then times anyway (and flags a disturbed result)
    channels_last: bool = False  # eager: NHWC memory layout
    cuda_graphs: bool = False  # eager on CUDA: replay a recorded graph (no launch overhead, as deployed engines)


@dataclass
class ProfileSettings:
    """`evaluator.latency.profile.*` (source=profile)."""

    path: Optional[str] = None  # the profile file attnas-profile wrote


@dataclass
class LatencySettings:
    """`evaluator.latency`: which source, and the conditions every source's latency is of; each
    source's own settings are in its sub-node."""

    source: str = "timer"  # timer: timed beside the plain backbone here; profile: predicted from a device profile
    batch_size: int = 1
    input_size: list[int] = field(default_factory=lambda: list(INPUT_SIZE))  # H, W
    runtime: str = "eager"  # eager | onnxruntime | tensorrt: the runtime the model is deployed on
    precision: str = "fp32"  # fp32 | fp16 | bf16
    timer: TimerSettings = field(default_factory=TimerSettings)
    profile: ProfileSettings = field(default_factory=ProfileSettings)


def own_settings(settings: Any, name: str, cls: type[LatencySource]) -> Any:
    """A source's own settings: its sub-node of `evaluator.latency`, else its schema's defaults."""
    own = getattr(settings, name, None)
    if own is None and cls.settings_class is not None:
        own = cls.settings_class()
    return own


@dataclass
class TimedLatency(LatencySource):
    """Times each candidate interleaved with the plain backbone of its family (A B A B ...).

    The timing holds its device's lock (training steps on that device, in this and other attnas
    processes, pause for its few seconds), bounded both ways: it waits at most `max_wait_s` for
    the device and holds it at most `max_seconds` (config). A measurement that looks disturbed
    (`Disturbance`: wide samples, a loose ratio, the plain network not 1x itself, a spec that
    only adds blocks measured faster than the plain network) is taken again `retries` times, the
    device handed back in between, then kept but flagged (`latency_unreliable` = 1, a warning, a
    marker in the dashboard; `attnas-search ... retime=true` measures it again later).
    """

    name = "timer"
    config: LatencyConfig = field(default_factory=LatencyConfig)
    retries: int = 1
    max_spread: float = 0.25
    max_ratio_se: float = 0.02
    plain_tolerance: float = 0.03
    max_wait_s: float | None = 60.0
    _baselines: dict[str, torch.nn.Module] = field(default_factory=dict, init=False, repr=False)
    settings_class = TimerSettings

    @classmethod
    def from_config(cls, settings: LatencySettings, device: DeviceConfig) -> "TimedLatency":
        own = own_settings(settings, "timer", cls)
        check_runtime(settings.runtime, settings.precision, device.type, own.cuda_graphs, own.channels_last)
        config = LatencyConfig(device=device.type, threads=device.threads, batch_size=settings.batch_size,
                               input_size=tuple(settings.input_size), warmup=own.warmup, repeats=own.repeats,
                               channels_last=own.channels_last, runtime=settings.runtime, precision=settings.precision,
                               cuda_graphs=own.cuda_graphs, max_seconds=own.max_seconds)
        return cls(config, retries=own.retries, max_spread=own.max_spread, max_ratio_se=own.max_ratio_se,
                   max_wait_s=own.max_wait_s)

    def produces(self) -> tuple[str, ...]:
        return ("latency_ratio", "latency_ms", "latency_p90_ms", "latency_spread", "baseline_latency_ms",
                "latency_attempts", "latency_unreliable")

    @classmethod
    def describe(cls, context: dict[str, Any]) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in (context.get("software") or {"torch": context.get("torch")}).items())
        return (f"timed during the search on {context.get('device_name')} ({str(context.get('device', 'cpu')).split(':')[0]}, "
                f"{context.get('threads')} threads, batch {context.get('batch_size')}, input "
                f"{'x'.join(map(str, context.get('input_size', [])))}, {context.get('runtime', 'eager')} "
                f"{context.get('precision', 'fp32')}; {versions})")

    def problems(self, spec: ArchSpec, timing: LatencyRatio) -> list[str]:
        """Why a measurement looks disturbed (empty when it does not)."""
        return Disturbance(self.max_spread, self.max_ratio_se, self.plain_tolerance).problems(spec.num_blocks, timing)

    def measure(self, spec: ArchSpec) -> dict[str, float]:
        spec = as_spec(spec)
        if spec.backbone not in self._baselines:
            self._baselines[spec.backbone] = build_model(spec.backbone, num_classes=1)
        model = build_model(spec, num_classes=1)
        for attempt in range(1, self.retries + 2):
            with DEVICE_LOCK.exclusive(self.config.device, self.max_wait_s) as alone:
                timing = measure_latency_ratio(model, self._baselines[spec.backbone], self.config)
            problems = self.problems(spec, timing)
            if not alone:
                problems.append(f"the device stayed busy for {self.max_wait_s:g} s, timed beside other work")
            if not problems:
                break
            log.info("timing %s looks disturbed (%s); attempt %d of %d", spec, "; ".join(problems), attempt, self.retries + 1)
        if problems:
            log.warning("latency of %s is unreliable after %d attempts: %s; flagged (attnas-search ... retime=true measures "
                        "it again)", spec, attempt, "; ".join(problems))
        return {"latency_ratio": timing.ratio, "latency_ratio_se": timing.ratio_se, "latency_ms": timing.model.median_ms,
                "latency_p90_ms": timing.model.p90_ms, "latency_spread": timing.model.spread,
                "baseline_latency_ms": timing.baseline.median_ms, "latency_attempts": float(attempt),
                "latency_unreliable": float(bool(problems))}

    def fingerprint(self) -> str:
        return digest(["timer", self.config.identity()])  # the retry policy does not change what is measured

    def context(self) -> dict[str, Any]:
        device = torch.device(self.config.device)
        threads = torch.get_num_threads()
        return {"latency_source": "timer", "device": str(device), "device_name": device_name(device), "threads": threads,
                "torch": torch.__version__, "batch_size": self.config.batch_size, "input_size": list(self.config.input_size),
                "runtime": self.config.runtime, "precision": self.config.precision,
                "software": software(self.config.device, self.config.runtime),
                "timing_device": timing_device(self.config.device, threads)}


@dataclass
class ProfileLatency(LatencySource):
    """Latency predicted from a device profile (`attnas-profile`): no timing during the search,
    the target device's numbers instead of this machine's."""

    name = "profile"
    profile: LatencyProfile
    path: str = ""
    settings_class = ProfileSettings

    @classmethod
    def from_config(cls, settings: LatencySettings, device: DeviceConfig) -> "ProfileLatency":
        path = own_settings(settings, "profile", cls).path
        if not path:
            raise ValueError("evaluator.latency.source=profile needs evaluator.latency.profile.path=PATH (made by attnas-profile)")
        profile = LatencyProfile.load(path)
        profile.check(profile.backbone, settings.batch_size, settings.input_size, runtime=settings.runtime,
                      precision=settings.precision)
        profile.warn_about_versions()
        return cls(profile, str(path))

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
        versions = ", ".join(f"{k} {v}" for k, v in (context.get("software") or {"torch": context.get("torch")}).items())
        return (f"predicted from the profile of {context.get('device_name')} ({context.get('device')}, {context.get('threads')} "
                f"threads, {context.get('runtime', 'eager')} {context.get('precision', 'fp32')}; measured under {versions})")

    def context(self) -> dict[str, Any]:
        p = self.profile
        return {"latency_source": "profile", "profile": self.path, "profile_digest": p.digest, "device": p.device,
                "device_name": p.device_name, "threads": p.threads, "torch": p.torch, "batch_size": p.batch_size,
                "input_size": list(p.input_size), "profiled": p.created, "runtime": p.runtime, "precision": p.precision,
                "software": {"torch": p.torch, **p.software}}


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
