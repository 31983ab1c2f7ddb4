"""What a finished study says, as data frames: one row per architecture, its Pareto front, its
hypervolume and how it grew, placement effects and parameter importances. `report` only draws
these (as Optuna's visualization separates computing from plotting).

Samplers re-propose the same architecture often (a third to a half of trials on small categorical
spaces), so everything here counts each architecture once: the first finished trial that
evaluated it stands for it (duplicates carry `duplicate_of` and the same values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from attnas.evaluators.metric_registry import METRICS, constraint_violation
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.evaluators.latency.sources import LATENCY_SOURCES
from attnas.search.pareto import hypervolume, pareto_mask
from attnas.search.pareto import hypervolume_history as hypervolume_history_of
from attnas.evaluators.reid.resolution import Resolution
from attnas.search.analysis.confirmation import Confirmation, confirmation_of
from attnas.search.analysis.evidence import Verdict, gains_over_plain, resolution_of, standard_errors, t_factor, verdict
from attnas.search.analysis.importance import position_importances
from attnas.search.front_probability import probability_non_dominated
from attnas.search.noise import NoiseFloor, noise_floors, richest_records
from attnas.search.analysis.rules import Rules, discoveries, effects_frame, fit_effects, parse_spec, rules_in_words
from attnas.search.seed_blocks import SeedBlockedFit, blocked_floors
from attnas.space import ArchSpec


@dataclass
class StudyView:
    study: optuna.Study
    objectives: list[str]
    directions: list[str]
    architectures: pd.DataFrame  # one row per spec, with `<objective>_se`, `_lo`, `_hi` and `p_front`
    front: pd.DataFrame  # Pareto-optimal feasible architectures (point estimates), by the first objective
    noise_floor: dict[str, NoiseFloor]  # pooled seed noise of each seeded metric, over the whole study
    latency_source: str = ""  # where the latencies come from: the search's own timer, or a device profile
    blocked: dict[str, SeedBlockedFit] = field(default_factory=dict)  # seed-blocked fit of each seeded objective
    resolution: Resolution | None = None  # what the validation split can tell apart, when the evaluator recorded it

    @property
    def backbone(self) -> str:
        return ArchSpec.parse(self.architectures["spec"].iloc[0]).backbone

    @property
    def uncertainty_known(self) -> bool:
        """Whether every objective has a standard error (a seeded one needs the noise floor)."""
        return bool(np.isfinite(self.architectures[[f"{o}_se" for o in self.objectives]].to_numpy(dtype=float)).all())


def objectives_of(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives")
    return list(names) if names else [f"objective{i}" for i in range(len(study.directions))]


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def _seeds(trial: FrozenTrial) -> int:
    return len((trial.user_attrs.get("per_seed") or {}).get("seeds", [])) or 1


def _number(value) -> float:
    """A stored metric as a number; anything else (a foreign or damaged study) is unknown, NaN."""
    return float(value) if isinstance(value, (int, float, np.number)) else np.nan


def architectures(study: optuna.Study) -> pd.DataFrame:
    """One row per spec: the trial that knows it best (most seeds) gives its values; `number` is
    the trial that first evaluated it, `times_proposed` how often the sampler proposed it."""
    names = objectives_of(study)
    groups: dict[str, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("spec") is not None:
            groups.setdefault(trial.user_attrs["spec"], []).append(trial)
    rows = []
    for spec, trials in groups.items():
        best = max(trials, key=lambda t: (_seeds(t), -t.number))
        row = {"number": min(t.number for t in trials), "spec": spec, "num_blocks": parse_spec(spec).num_blocks,
               "seeds": _seeds(best), "feasible": _feasible(best),
               "reference": any(t.user_attrs.get("reference", False) for t in trials),
               "times_proposed": len(trials), **{f"c_{k}": v for k, v in best.constraints.items()}}
        row.update({name: value for name, value in zip(names, best.values)})
        row.update({k: _number(v) for k, v in best.user_attrs.get("metrics", {}).items() if k not in row})
        row["trained"] = best.user_attrs.get("trained", True)
        if not row["trained"]:  # skipped for its latency: its accuracy is unknown, not the placeholder
            row.update({name: np.nan for name in names if name in METRICS and METRICS[name].seeded})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("number").reset_index(drop=True) if rows else pd.DataFrame()


def latency_source(study: optuna.Study) -> str:
    """Where the study's latencies were measured, from the context its trials recorded."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        where = trial.user_attrs.get("measured_on") or {}
        source = LATENCY_SOURCES.get(where.get("latency_source", ""))
        if source is not None:  # each source says in words where its numbers come from
            return source.describe(where)
    return ""


def reproject(study: optuna.Study, table: pd.DataFrame, profile: LatencyProfile) -> pd.DataFrame:
    """The latencies of another device, predicted from its profile, in place of the measured ones;
    feasibility follows the study's constraints on the new values. No retraining."""
    predicted = [profile.predict(spec) for spec in table["spec"]]
    table["latency_ratio"] = [ratio for ratio, _ in predicted]
    table["latency_ratio_se"] = [se for _, se in predicted]
    table["latency_ms"] = table["latency_ratio"] * profile.plain_ms
    table["latency_unreliable"] = 0.0  # predicted, not timed: a flag of the search's own timing no longer applies
    constraints = study.user_attrs.get("constraints") or {}
    if constraints:
        table["feasible"] = [all(constraint_violation(name, row[name], limit) <= 0 for name, limit in constraints.items())
                             for _, row in table.iterrows()]
    return table


def view(study: optuna.Study, profile: LatencyProfile | None = None) -> StudyView:
    """The study's architectures with their uncertainty and front; with `profile`, re-projected
    onto that device's latencies."""
    names = objectives_of(study)
    dirs = [d.name.lower() for d in study.directions]
    table = architectures(study)
    if table.empty:
        states = {s.name: n for s in TrialState if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
        raise ValueError(f"study {study.study_name!r} has no completed trial with a spec (trials by state: {states or 'none'}); "
                         f"run attnas-search first")
    source = latency_source(study)
    if profile is not None:
        profile.check(ArchSpec.parse(table["spec"].iloc[0]).backbone, torch_version=None)
        table = reproject(study, table, profile)
        source = f"predicted from the profile of {profile.describe()}, instead of: {source or 'the search timings'}"
    seeded = [m.name for m in METRICS.values() if m.seeded]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    floors = noise_floors(complete, seeded)
    table = standard_errors(table, names, floors)
    plain = table.loc[table["num_blocks"] == 0, "spec"]
    fits = blocked_floors(richest_records(complete), [n for n in names if n in seeded], plain.iloc[0] if len(plain) else None)
    feasible = table["feasible"].to_numpy(dtype=bool)
    values = table[names].to_numpy(dtype=float)
    table["on_front"] = False
    table.loc[feasible, "on_front"] = pareto_mask(values[feasible], dirs)
    # draws as wide as the intervals: SEs widened for a noise floor from few degrees of freedom
    widen = [t_factor(floors[o].dof) if o in floors else 1.0 for o in names]
    ses = np.nan_to_num(table[[f"{o}_se" for o in names]].to_numpy(dtype=float)) * np.array(widen)
    table["p_front"] = 0.0
    table.loc[feasible, "p_front"] = probability_non_dominated(values[feasible], ses[feasible], dirs)
    table = gains_over_plain(table, names, dirs, fits)
    front = table[table["on_front"]].sort_values(names[0], ascending=dirs[0] == "minimize")
    return StudyView(study, names, dirs, table, front.reset_index(drop=True), floors, source, fits, resolution_of(study))


def default_reference(table: pd.DataFrame, names: list[str], directions: list[str]) -> np.ndarray:
    """Worst observed value of each objective, pushed 10% outward (the usual nadir-based choice)."""
    ref = []
    for name, direction in zip(names, directions):
        worst = table[name].min() if direction == "maximize" else table[name].max()
        span = (table[name].max() - table[name].min()) or abs(worst) or 1.0
        ref.append(worst - 0.1 * span if direction == "maximize" else worst + 0.1 * span)
    return np.array(ref)


def hypervolume_history(study: optuna.Study, reference: np.ndarray) -> pd.DataFrame:
    """(trial number, hypervolume of the feasible trials so far), in the order they finished."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)]
    directions = [d.name.lower() for d in study.directions]
    values = np.array([t.values for t in trials], dtype=float).reshape(-1, len(directions))
    return pd.DataFrame({"trial": [t.number for t in trials],
                         "hypervolume": hypervolume_history_of(values, directions, reference)})


def rule_table(v: StudyView) -> tuple[pd.DataFrame, dict[str, float]]:
    """The architectures as the placement model reads them: a seeded objective's seed-adjusted
    mean and its residual-based standard error where the two-way fit has a residual, and the
    degrees of freedom of each objective's noise."""
    table, dof = v.architectures.copy(), {}
    for name, fit in v.blocked.items():
        if fit.floor is None or fit.floor.dof < 1:
            continue
        index = {spec: i for i, spec in enumerate(fit.specs)}
        rows = [index.get(spec) for spec in table["spec"]]
        table[name] = [fit.adjusted[i] if i is not None else np.nan for i in rows]
        table[f"{name}_se"] = [fit.floor.residual_sd * np.sqrt(fit.adjusted_var[i]) if i is not None else np.nan for i in rows]
        dof[name] = float(fit.floor.dof)
    for name, floor in v.noise_floor.items():
        dof.setdefault(name, float(floor.dof))
    return table, dof


@dataclass
class Analysis:
    """Everything the report draws."""

    view: StudyView
    reference: np.ndarray
    hypervolume: float
    history: pd.DataFrame
    position_effects: pd.DataFrame  # every objective, per (block, position), with 95% intervals
    stage_effects: pd.DataFrame  # every objective, per (block, stage), with 95% intervals
    importances: pd.DataFrame  # per position: eta^2 of the first objective, its 90% bootstrap interval, chance level
    rules: Rules
    verdict: Verdict
    confirmation: Confirmation | None = None  # the picks retrained under fresh seeds, when that ran

    @property
    def duplicate_trials(self) -> int:
        return int(self.view.architectures["times_proposed"].sum() - len(self.view.architectures))


def analyse(study: optuna.Study, alpha: float = 0.05, profile: LatencyProfile | None = None) -> Analysis:
    """Everything the report draws; `alpha` is the error level of the verdict and the rules."""
    v = view(study, profile)
    reference = default_reference(v.architectures, v.objectives, v.directions)
    feasible = v.architectures[v.architectures["feasible"]]
    table, dof = rule_table(v)
    stage = fit_effects(table, v.objectives, "stage", dof=dof)
    effects = discoveries(stage + fit_effects(table, v.objectives, "position", dof=dof), alpha)  # one family per objective
    stage, position = effects[:len(stage)], effects[len(stage):]
    return Analysis(
        view=v,
        reference=reference,
        hypervolume=hypervolume(feasible[v.objectives].to_numpy(dtype=float), v.directions, reference),
        history=hypervolume_history(study, reference),
        position_effects=effects_frame(position),
        stage_effects=effects_frame(stage),
        importances=position_importances(v.architectures, v.objectives[0], v.backbone),
        rules=rules_in_words(v.architectures, v.front, v.objectives, stage, position),
        verdict=verdict(v, alpha),
        confirmation=confirmation_of(study),
    )
