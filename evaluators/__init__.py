"""Evaluators: what a spec costs (latency, FLOPs, params) and how well it re-identifies."""

from attnas.evaluators.cost import ModelCost, count_flops, count_params, model_cost
from attnas.evaluators.latency import LatencyConfig, LatencyResult, measure_latency, measure_latency_ratio

__all__ = [
    "LatencyConfig",
    "LatencyResult",
    "ModelCost",
    "count_flops",
    "count_params",
    "measure_latency",
    "measure_latency_ratio",
    "model_cost",
]

from attnas.evaluators.evaluator import CachedEvaluator, CostEvaluator, Evaluator, LatencyEvaluator, ReIDEvaluator  # noqa: E402
from attnas.evaluators.training import BUDGETS, TrainConfig, budget, train  # noqa: E402

__all__ += ["BUDGETS", "CachedEvaluator", "CostEvaluator", "Evaluator", "LatencyEvaluator", "ReIDEvaluator", "TrainConfig", "budget", "train"]
