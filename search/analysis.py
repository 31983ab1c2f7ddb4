"""What a finished study says: one row per architecture, its Pareto front, its hypervolume.

Samplers re-propose the same architecture often (a third to a half of trials on small categorical
spaces), so everything here counts each architecture once: the first finished trial that
evaluated it stands for it (duplicates carry `duplicate_of` and the same values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from optuna._hypervolume import compute_hypervolume  # Optuna's WFG; no public equivalent yet
from optuna.trial import FrozenTrial, TrialState


@dataclass
class StudyView:
    study: optuna.Study
    objectives: list[str]
    directions: list[str]
    architectures: pd.DataFrame  # one row per spec
    front: pd.DataFrame  # Pareto-optimal feasible architectures, sorted by the first objective


def objectives_of(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives")
    return list(names) if names else [f"objective{i}" for i in range(len(study.directions))]


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def architectures(study: optuna.Study) -> pd.DataFrame:
    """First complete trial per spec, with every metric, feasibility and reference label."""
    names = objectives_of(study)
    rows, seen = [], {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        spec = trial.user_attrs.get("spec")
        if spec is None:
            continue
        if spec in seen:
            rows[seen[spec]]["times_proposed"] += 1
            continue
        seen[spec] = len(rows)
        metrics = trial.user_attrs.get("metrics", {})
        row = {"number": trial.number, "spec": spec, "num_blocks": spec.count("=") if ":" in spec else 0,
               "feasible": _feasible(trial), "reference": bool(trial.user_attrs.get("reference", False)),
               "times_proposed": 1, **{f"c_{k}": v for k, v in trial.constraints.items()}}
        row.update({name: value for name, value in zip(names, trial.values)})
        row.update({k: v for k, v in metrics.items() if k not in row})
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Non-dominated rows (ties: identical points are all kept, as Optuna's best_trials does)."""
    loss = np.where(np.array(directions) == "maximize", -values, values)
    dominated = np.zeros(len(loss), dtype=bool)
    for i in range(len(loss)):
        better_eq = np.all(loss <= loss[i], axis=1) & np.any(loss < loss[i], axis=1)
        dominated[i] = better_eq.any()
    return ~dominated


def view(study: optuna.Study) -> StudyView:
    names = objectives_of(study)
    dirs = [d.name.lower() for d in study.directions]
    table = architectures(study)
    if table.empty:
        states = {s.name: n for s in TrialState if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
        raise ValueError(f"study {study.study_name!r} has no completed trial with a spec (trials by state: {states or 'none'}); "
                         f"run attnas-search first")
    # Optuna's own front (feasible only), then one row per architecture
    best = {t.user_attrs.get("spec") for t in study.best_trials}
    front = table[table["spec"].isin(best)].sort_values(names[0], ascending=dirs[0] == "minimize")
    table["on_front"] = table["spec"].isin(best)
    return StudyView(study, names, dirs, table, front.reset_index(drop=True))


def hypervolume(points: np.ndarray, directions: list[str], reference: np.ndarray) -> float:
    """Dominated hypervolume w.r.t. `reference` (in objective units; maximised objectives flipped)."""
    if len(points) == 0:
        return 0.0
    sign = np.where(np.array(directions) == "maximize", -1.0, 1.0)
    loss, ref = points * sign, reference * sign
    inside = np.all(loss < ref, axis=1)
    if not inside.any():
        return 0.0
    return float(compute_hypervolume(loss[inside], ref, assume_pareto=False))


def default_reference(table: pd.DataFrame, names: list[str], directions: list[str]) -> np.ndarray:
    """Worst observed value of each objective, pushed 10% outward (the usual nadir-based choice)."""
    ref = []
    for name, direction in zip(names, directions):
        worst = table[name].min() if direction == "maximize" else table[name].max()
        span = (table[name].max() - table[name].min()) or abs(worst) or 1.0
        ref.append(worst - 0.1 * span if direction == "maximize" else worst + 0.1 * span)
    return np.array(ref)


def hypervolume_history(study: optuna.Study, reference: np.ndarray) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials so far), for the dashboard."""
    dirs = [d.name.lower() for d in study.directions]
    history, points = [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if _feasible(trial):
            points.append(trial.values)
        history.append((trial.number, hypervolume(np.array(points, dtype=float).reshape(-1, len(dirs)), dirs, reference)))
    return history
