"""Evaluators: what a spec costs (latency, FLOPs, params) and how well it re-identifies.

The search talks to them through one protocol (`protocol.Evaluator`); they are looked up by
config type in `registry.EVALUATORS`, and every metric they return is declared in
`metric_registry.METRICS`.
"""

from attnas.evaluators.cache import CachedEvaluator
from attnas.evaluators.config import (
    CostEvaluatorConfig,
    DatasetConfig,
    DeviceConfig,
    EvaluatorConfig,
    LatencyEvaluatorConfig,
    LatencySettings,
    ReIDEvaluatorConfig,
)
from attnas.evaluators.cost import ModelCost, count_flops, count_params, model_cost
from attnas.evaluators.cost_evaluators import CostEvaluator, LatencyEvaluator
from attnas.evaluators.latency.timing import LatencyConfig, LatencyResult, measure_latency, measure_latency_ratio
from attnas.evaluators.latency.sources import LATENCY_SOURCES, ProfileSettings, TimedLatency, TimerSettings
from attnas.evaluators.metric_registry import METRICS, Metric, metric
from attnas.evaluators.base import Evaluator, LatencySource
from attnas.evaluators.registry import EVALUATORS, make_evaluator
from attnas.evaluators.reid_evaluator import ReIDEvaluator, make_dataset
from attnas.evaluators.reid.training import BUDGETS, TrainConfig, budget, train

__all__ = [
    "BUDGETS", "CachedEvaluator", "CostEvaluator", "CostEvaluatorConfig", "DatasetConfig", "DeviceConfig", "EVALUATORS",
    "Evaluator", "EvaluatorConfig", "LATENCY_SOURCES", "LatencyConfig", "LatencyEvaluator", "LatencyEvaluatorConfig",
    "LatencyResult", "LatencySettings", "LatencySource", "METRICS", "Metric", "ModelCost", "ProfileSettings", "ReIDEvaluator",
    "ReIDEvaluatorConfig", "TimedLatency", "TimerSettings", "TrainConfig", "budget", "count_flops", "count_params", "make_dataset",
    "make_evaluator", "measure_latency", "measure_latency_ratio", "metric", "model_cost", "train",
]
