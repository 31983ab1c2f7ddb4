"""What a finished study says, as data frames: one row per architecture, its Pareto front, its
hypervolume and how it grew, placement effects and parameter importances. `report` only draws
these (as Optuna's visualization separates computing from plotting).

Samplers re-propose the same architecture often (a third to a half of trials on small categorical
spaces), so everything here counts each architecture once: the first finished trial that
evaluated it stands for it (duplicates carry `duplicate_of` and the same values).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from attnas.search.rules import effects_frame, fit_effects, rules_in_words
from attnas.space import ArchSpec


@dataclass
class StudyView:
    study: optuna.Study
    objectives: list[str]
    directions: list[str]
    architectures: pd.DataFrame  # one row per spec
    front: pd.DataFrame  # Pareto-optimal feasible architectures, sorted by the first objective

    @property
    def backbone(self) -> str:
        return ArchSpec.parse(self.architectures["spec"].iloc[0]).backbone


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
        row = {"number": trial.number, "spec": spec, "num_blocks": ArchSpec.parse(spec).num_blocks,
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


def _hypervolume_figure(study: optuna.Study, reference: np.ndarray):
    with warnings.catch_warnings():  # marked experimental since Optuna 3.3; the public way to get it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.visualization.plot_hypervolume_history(study, reference_point=[float(r) for r in reference])


def hypervolume(points: np.ndarray, directions: list[str], reference: np.ndarray) -> float:
    """Dominated hypervolume w.r.t. `reference` (objective units), by Optuna's public API on an
    in-memory study holding `points`."""
    if len(points) == 0:
        return 0.0
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a scratch study: no "study created" line
    try:
        study = optuna.create_study(directions=directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials([optuna.trial.create_trial(values=[float(v) for v in p]) for p in np.asarray(points, dtype=float)])
    return float(_hypervolume_figure(study, reference).data[0].y[-1])


def default_reference(table: pd.DataFrame, names: list[str], directions: list[str]) -> np.ndarray:
    """Worst observed value of each objective, pushed 10% outward (the usual nadir-based choice)."""
    ref = []
    for name, direction in zip(names, directions):
        worst = table[name].min() if direction == "maximize" else table[name].max()
        span = (table[name].max() - table[name].min()) or abs(worst) or 1.0
        ref.append(worst - 0.1 * span if direction == "maximize" else worst + 0.1 * span)
    return np.array(ref)


def hypervolume_history(study: optuna.Study, reference: np.ndarray) -> pd.DataFrame:
    """(trial number, hypervolume of the feasible trials so far), from Optuna's own history."""
    trace = _hypervolume_figure(study, reference).data[0]
    return pd.DataFrame({"trial": list(trace.x), "hypervolume": list(trace.y)})


def parameter_importances(study: optuna.Study, direction: str) -> pd.DataFrame:
    """Optuna's importances of the sampler parameters for the first objective (empty frame when
    there are too few trials or no parameter common to all of them)."""
    sign = -1.0 if direction == "maximize" else 1.0  # the default evaluator ranks by low target values
    try:
        with warnings.catch_warnings():  # PED-ANOVA's notes on few trials: the frame says it all
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study, target=lambda t: sign * t.values[0])
    except (ValueError, RuntimeError):
        return pd.DataFrame(columns=["parameter", "importance"])
    return pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())})


@dataclass
class Analysis:
    """Everything the report draws."""

    view: StudyView
    reference: np.ndarray
    hypervolume: float
    history: pd.DataFrame
    position_effects: pd.DataFrame  # first objective, per (block, position)
    stage_effects: pd.DataFrame  # every objective, per (block, stage)
    importances: pd.DataFrame
    rules: list[str]

    @property
    def duplicate_trials(self) -> int:
        return int(self.view.architectures["times_proposed"].sum() - len(self.view.architectures))


def analyse(study: optuna.Study) -> Analysis:
    v = view(study)
    reference = default_reference(v.architectures, v.objectives, v.directions)
    feasible = v.architectures[v.architectures["feasible"]]
    return Analysis(
        view=v,
        reference=reference,
        hypervolume=hypervolume(feasible[v.objectives].to_numpy(dtype=float), v.directions, reference),
        history=hypervolume_history(study, reference),
        position_effects=effects_frame(fit_effects(v.architectures, v.objectives[:1], "position")),
        stage_effects=effects_frame(fit_effects(v.architectures, v.objectives, "stage")),
        importances=parameter_importances(study, v.directions[0]),
        rules=rules_in_words(v.architectures, v.front, v.objectives),
    )
