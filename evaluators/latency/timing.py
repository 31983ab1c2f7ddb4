"""Inference latency of a built model on the target device.

A latency in milliseconds depends on the machine and on what else runs on it; the ratio to the
plain backbone timed *interleaved* in the same process (A B A B ...) mostly does not, which is
why the search optimises the ratio by default. The model runs on the configured runtime and
precision (`runtimes`); a timing stops after `max_seconds` with the pairs it has, so a disturbed
machine cannot make it hold the device for minutes.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from attnas.evaluators.latency.runtimes import runner
from attnas.models import INPUT_SIZE

#: fewest timed samples (or pairs) a timing stopped by `max_seconds` still keeps
MIN_SAMPLES = 3


@dataclass
class LatencyConfig:
    device: str = "cpu"
    threads: int | None = None  # CPU threads; None keeps torch's current setting
    batch_size: int = 1
    input_size: tuple[int, int] = INPUT_SIZE  # H, W
    warmup: int = 3
    repeats: int = 20
    channels_last: bool = False
    runtime: str = "eager"  # eager | onnxruntime | tensorrt (attnas.evaluators.latency.runtimes)
    precision: str = "fp32"  # fp32 | fp16 | bf16
    cuda_graphs: bool = False  # eager on CUDA: replay one recorded graph instead of launching every kernel
    max_seconds: float | None = None  # stop timing after this long (at least MIN_SAMPLES kept); None: all repeats

    def identity(self) -> dict[str, Any]:
        """What shapes the numbers, for fingerprints: the device's type, not its index (where a worker
        times is placement), and the settings added since the first studies only when they differ
        from their defaults, so those studies keep their fingerprint. `max_seconds` bounds how
        long a timing may hold the device; it is policy, like the retries."""
        from attnas.evaluators.device import device_type

        settings = asdict(self)
        settings["device"] = device_type(self.device)
        settings.pop("max_seconds")
        for name, default in (("runtime", "eager"), ("precision", "fp32"), ("cuda_graphs", False)):
            if settings[name] == default:
                settings.pop(name)
        return settings


@dataclass
class LatencyResult:
    median_ms: float
    p90_ms: float
    spread: float  # (p90 - p10) / median: relative width of the middle 80% of samples
    samples_ms: list[float] = field(repr=False)
    device: str = ""
    device_name: str = ""
    threads: int = 0
    torch_version: str = torch.__version__
    batch_size: int = 1
    input_size: tuple[int, int] = INPUT_SIZE
    runtime: str = "eager"
    precision: str = "fp32"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("samples_ms")
        return out


@dataclass
class LatencyRatio:
    ratio: float  # median over adjacent (model, baseline) pairs of model_ms / baseline_ms
    model: LatencyResult
    baseline: LatencyResult
    ratio_se: float = float("nan")  # standard error of that median (robust: from the pairs' MAD)


def median_se(values: list[float]) -> float:
    """Standard error of a sample median, from the median absolute deviation: 1.2533 * sigma /
    sqrt(n) with sigma = 1.4826 * MAD (normal data), so one slow outlier does not inflate it."""
    if len(values) < 3:
        return float("nan")
    centre = statistics.median(values)
    mad = statistics.median(abs(v - centre) for v in values)
    return 1.2533 * 1.4826 * mad / len(values) ** 0.5


def device_name(device: torch.device) -> str:
    """The model of the device (`NVIDIA H200`, the CPU's model name), as its owner would recognise it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _summarise(samples: list[float], cfg: LatencyConfig, device: torch.device) -> LatencyResult:
    median = statistics.median(samples)
    return LatencyResult(
        median_ms=median,
        p90_ms=_quantile(samples, 0.9),
        spread=(_quantile(samples, 0.9) - _quantile(samples, 0.1)) / median,
        samples_ms=samples,
        device=str(device),
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        batch_size=cfg.batch_size,
        input_size=tuple(cfg.input_size),
        runtime=cfg.runtime,
        precision=cfg.precision,
    )


def _in_time(started: float, done: int, cfg: LatencyConfig) -> bool:
    """Whether to take another sample: all `repeats`, unless `max_seconds` is over (and MIN_SAMPLES are in)."""
    if done >= cfg.repeats:
        return False
    return cfg.max_seconds is None or done < MIN_SAMPLES or time.perf_counter() - started < cfg.max_seconds


@torch.inference_mode()
def measure_latency(model: nn.Module, cfg: LatencyConfig | None = None) -> LatencyResult:
    cfg = cfg or LatencyConfig()
    run = runner(model, cfg)
    for _ in range(cfg.warmup):
        run()
    samples: list[float] = []
    started = time.perf_counter()
    while _in_time(started, len(samples), cfg):
        samples.append(run())
    return _summarise(samples, cfg, torch.device(cfg.device))


@torch.inference_mode()
def measure_latency_ratio(model: nn.Module, baseline: nn.Module, cfg: LatencyConfig | None = None) -> LatencyRatio:
    """Time `model` and `baseline` alternately, so drifts of the machine hit both alike."""
    cfg = cfg or LatencyConfig()
    run_model, run_base = runner(model, cfg), runner(baseline, cfg)
    for _ in range(cfg.warmup):
        run_model()
        run_base()
    model_ms: list[float] = []
    base_ms: list[float] = []
    started = time.perf_counter()
    while _in_time(started, len(model_ms), cfg):
        # alternate who goes first, so neither always profits from a warm cache
        if len(model_ms) % 2:
            model_ms.append(run_model())
            base_ms.append(run_base())
        else:
            base_ms.append(run_base())
            model_ms.append(run_model())
    device = torch.device(cfg.device)
    m, b = _summarise(model_ms, cfg, device), _summarise(base_ms, cfg, device)
    # each pair ran back to back, so a slow phase of the machine hits both terms of its ratio
    pair_ratios = [mm / bb for mm, bb in zip(model_ms, base_ms)]
    return LatencyRatio(ratio=statistics.median(pair_ratios), model=m, baseline=b, ratio_se=median_se(pair_ratios))
