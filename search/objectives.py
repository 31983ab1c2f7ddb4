"""Which metrics a study can optimise, and in which direction."""

from __future__ import annotations

#: metric name -> Optuna direction
DIRECTIONS: dict[str, str] = {
    "mAP": "maximize",
    "rank1": "maximize",
    "rank5": "maximize",
    "rank10": "maximize",
    "mINP": "maximize",
    "latency_ratio": "minimize",
    "latency_ms": "minimize",
    "latency_p90_ms": "minimize",
    "gflops": "minimize",
    "params_m": "minimize",
}


def directions(objectives: list[str]) -> list[str]:
    unknown = [name for name in objectives if name not in DIRECTIONS]
    if unknown:
        raise ValueError(f"unknown objective(s) {unknown}; valid objectives: {', '.join(DIRECTIONS)}")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"an objective is listed twice: {objectives}")
    return [DIRECTIONS[name] for name in objectives]
