"""Every metric an evaluator can return: its direction, unit and meaning, in one registry.

Objectives, constraints, placement rules, report columns and export all read this table, so a
new metric is declared once. `direction` is None for bookkeeping values that are recorded but
make no sense to optimise (the seconds a training took). Fractions (mAP, rank-k) are shown in
percentage points and the latency ratio as a percentage (`display_scale` 100).

A metric's standard error, when one is known, is stored beside it as `<name>_se`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from attnas.models.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str | None  # "maximize", "minimize", or None (recorded, not optimisable)
    unit: str
    description: str
    seeded: bool = False  # depends on the training seed (retrieval quality), not on the spec alone
    display_scale: float = 1.0  # shown as value * scale
    label: str = ""  # what follows a number in display units: "mAP points", "% latency", "GFLOPs"
    # a retrieval metric: how to read it off a ranking result (`attnas.evaluators.reid.metrics.RankResult`)
    from_ranks: Callable[[Any], float] | None = None

    def format(self, value: float, se: float | None = None, signed: bool = False) -> str:
        """`0.35 GFLOPs`, `+1.2 mAP points (± 0.4)`, `+3.1% latency (± 0.5)`."""
        shown = value * self.display_scale
        number = f"{shown:+.3g}" if signed else f"{shown:.4g}"
        label = self.label or self.name
        text = f"{number}{label}" if label.startswith("%") else f"{number} {label}"
        if se is not None:
            text += " (± n/a)" if not math.isfinite(se) else f" (± {se * self.display_scale:.2g})"
        return text


def _retrieval(name: str, label: str, description: str, from_ranks: Callable[[Any], float]) -> Metric:
    return Metric(name, "maximize", "fraction", description, seeded=True, display_scale=100, label=f"{label} points",
                  from_ranks=from_ranks)


def _check_metric(name: str, entry: Metric) -> None:
    if not isinstance(entry, Metric) or entry.name != name:
        raise ValueError(f"metric {name!r} must be registered as a Metric named {name!r}, got {entry!r}")
    if entry.direction not in ("maximize", "minimize", None):
        raise ValueError(f"metric {name!r}: direction must be maximize, minimize or None, got {entry.direction!r}")


METRICS: Registry[Metric] = Registry("metric", {m.name: m for m in (
    _retrieval("mAP", "mAP", "mean average precision on the validation query/gallery (Market-1501 protocol)",
               lambda ranks: ranks.mAP),
    _retrieval("rank1", "rank-1", "CMC rank-1: share of queries whose nearest gallery image is a true match",
               lambda ranks: ranks.rank(1)),
    _retrieval("rank5", "rank-5", "CMC rank-5", lambda ranks: ranks.rank(5)),
    _retrieval("rank10", "rank-10", "CMC rank-10", lambda ranks: ranks.rank(10)),
    _retrieval("mINP", "mINP", "mean inverse negative penalty: how early the hardest true match is found",
               lambda ranks: ranks.mINP),
    Metric("latency_ratio", "minimize", "x plain", "inference latency as a ratio to the plain backbone timed "
           "interleaved (median of paired ratios)", display_scale=100, label="% latency"),
    Metric("latency_ms", "minimize", "ms", "median inference latency of one batch", label="ms"),
    Metric("latency_p90_ms", "minimize", "ms", "90th percentile of the inference latency", label="ms (p90)"),
    Metric("latency_spread", "minimize", "fraction", "(p90 - p10) / median of the timed samples: how noisy the timing was"),
    Metric("baseline_latency_ms", None, "ms", "median latency of the plain backbone timed beside the candidate", label="ms"),
    Metric("latency_attempts", None, "", "timings taken (a disturbed timing is taken again)", label="attempts"),
    Metric("latency_unreliable", None, "", "1 when the timing still looked disturbed after its retries", label="unreliable"),
    Metric("gflops", "minimize", "GFLOPs", "floating point operations per image (2 per multiply-add)", label="GFLOPs"),
    Metric("params_m", "minimize", "M", "parameters without the classifier, in millions", label="M params"),
    Metric("train_seconds", None, "s", "wall-clock seconds of training", label="s training"),
    Metric("train_steps", None, "", "optimiser steps of the candidate's own training (0: scored with shared weights)",
           label="training steps"),
)}, check=_check_metric)


def retrieval_names() -> tuple[str, ...]:
    """The metrics a ranking result gives (every registered metric with `from_ranks`)."""
    return tuple(m.name for m in METRICS.values() if m.from_ranks is not None)


def retrieval_metrics(ranks: Any) -> dict[str, float]:
    """Every retrieval metric of a ranking result, by name: the one place that reads them off."""
    return {m.name: float(m.from_ranks(ranks)) for m in METRICS.values() if m.from_ranks is not None}


def metric(name: str) -> Metric:
    return METRICS.get_entry(name)


def se_name(name: str) -> str:
    """Where a metric's standard error is stored."""
    return f"{name}_se"


def directions(objectives: list[str]) -> list[str]:
    """Optuna directions of `objectives`, refusing unknown, repeated or non-optimisable names."""
    optimisable = [m.name for m in METRICS.values() if m.direction]
    unknown = [name for name in objectives if name not in optimisable]
    if unknown:
        raise ValueError(f"unknown objective(s) {unknown}; valid objectives: {', '.join(optimisable)}")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"an objective is listed twice: {objectives}")
    return [METRICS[name].direction for name in objectives]  # type: ignore[misc]


def constraint_violation(name: str, value: float, limit: float) -> float:
    """Optuna's constraint value (feasible when <= 0): a bound on the metric's worse side, so
    `latency_ratio: 1.1` means at most 1.1x and `mAP: 0.5` means at least 0.5."""
    direction = metric(name).direction
    if direction is None:
        raise ValueError(f"{name!r} cannot be constrained; constrain one of: "
                         f"{', '.join(m.name for m in METRICS.values() if m.direction)}")
    return limit - value if direction == "maximize" else value - limit
