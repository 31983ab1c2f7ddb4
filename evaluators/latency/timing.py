"""Inference latency of a built model on the target device.

A latency in milliseconds depends on the machine and on what else runs on it; the ratio to the
plain backbone timed *interleaved* in the same process (A B A B ...) mostly does not, which is
why the search optimises the ratio by default.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from attnas.models import INPUT_SIZE


@dataclass
class LatencyConfig:
    device: str = "cpu"
    threads: int | None = None  # CPU threads; None keeps torch's current setting
    batch_size: int = 1
    input_size: tuple[int, int] = INPUT_SIZE  # H, W
    warmup: int = 3
    repeats: int = 20
    channels_last: bool = False


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
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
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
    )


def _timer(model: nn.Module, x: torch.Tensor, device: torch.device) -> Callable[[], float]:
    """One forward pass, returned in ms; CUDA is timed with events after a synchronise."""
    if device.type == "cuda":

        def run_cuda() -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end)

        return run_cuda

    def run_cpu() -> float:
        t0 = time.perf_counter()
        model(x)
        return (time.perf_counter() - t0) * 1000.0

    return run_cpu


def _prepare(model: nn.Module, cfg: LatencyConfig) -> tuple[nn.Module, torch.Tensor, torch.device]:
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"latency device {cfg.device!r} asked for, but CUDA is not available; use device=cpu")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model = model.eval().to(device)
    x = torch.randn(cfg.batch_size, 3, *cfg.input_size, device=device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, device


@torch.inference_mode()
def measure_latency(model: nn.Module, cfg: LatencyConfig | None = None) -> LatencyResult:
    cfg = cfg or LatencyConfig()
    model, x, device = _prepare(model, cfg)
    run = _timer(model, x, device)
    for _ in range(cfg.warmup):
        run()
    return _summarise([run() for _ in range(cfg.repeats)], cfg, device)


@torch.inference_mode()
def measure_latency_ratio(model: nn.Module, baseline: nn.Module, cfg: LatencyConfig | None = None) -> LatencyRatio:
    """Time `model` and `baseline` alternately, so drifts of the machine hit both alike."""
    cfg = cfg or LatencyConfig()
    model, x, device = _prepare(model, cfg)
    baseline, _, _ = _prepare(baseline, cfg)
    run_model, run_base = _timer(model, x, device), _timer(baseline, x, device)
    for _ in range(cfg.warmup):
        run_model()
        run_base()
    model_ms, base_ms = [], []
    for i in range(cfg.repeats):
        # alternate who goes first, so neither always profits from a warm cache
        if i % 2:
            model_ms.append(run_model())
            base_ms.append(run_base())
        else:
            base_ms.append(run_base())
            model_ms.append(run_model())
    m, b = _summarise(model_ms, cfg, device), _summarise(base_ms, cfg, device)
    # each pair ran back to back, so a slow phase of the machine hits both terms of its ratio
    pair_ratios = [mm / bb for mm, bb in zip(model_ms, base_ms)]
    return LatencyRatio(ratio=statistics.median(pair_ratios), model=m, baseline=b, ratio_se=median_se(pair_ratios))
