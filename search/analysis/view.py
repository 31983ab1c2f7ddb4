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

from attnas.evaluators.metric_registry import METRICS, constraint_violation
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.evaluators.latency.sources import LATENCY_SOURCES
from attnas.search.pareto import hypervolume, pareto_mask
from attnas.search.pareto import hypervolume_history as hypervolume_history_of
from attnas.search.analysis.evidence import Verdict, gains_over_plain, probability_non_dominated, standard_errors, t_factor, verdict
from attnas.search.noise import NoiseFloor, noise_floors
from attnas.models.backbones import layout
from attnas.search.analysis.rules import Rules, effects_frame, fit_effects, rules_in_words
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
        row = {"number": min(t.number for t in trials), "spec": spec, "num_blocks": ArchSpec.parse(spec).num_blocks,
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
    floors = noise_floors(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), seeded)
    table = standard_errors(table, names, floors)
    feasible = table["feasible"].to_numpy(dtype=bool)
    values = table[names].to_numpy(dtype=float)
    table["on_front"] = False
    table.loc[feasible, "on_front"] = pareto_mask(values[feasible], dirs)
    # draws as wide as the intervals: SEs widened for a noise floor from few degrees of freedom
    widen = [t_factor(floors[o].dof) if o in floors else 1.0 for o in names]
    ses = np.nan_to_num(table[[f"{o}_se" for o in names]].to_numpy(dtype=float)) * np.array(widen)
    table["p_front"] = 0.0
    table.loc[feasible, "p_front"] = probability_non_dominated(values[feasible], ses[feasible], dirs)
    table = gains_over_plain(table, names, dirs)
    front = table[table["on_front"]].sort_values(names[0], ascending=dirs[0] == "minimize")
    return StudyView(study, names, dirs, table, front.reset_index(drop=True), floors, source)


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


def position_importances(v: StudyView, cap: int = 1000) -> pd.DataFrame:
    """How much each position matters for the first objective, by what sits there (`none` or a
    block variant): Optuna's default importance evaluator (PED-ANOVA) on features that say what
    they are, not on the sampler's slots. Empty when fewer than four architectures or no position
    varies. A study of more than `cap` architectures is read through a seeded random `cap` of
    them (Optuna copies every trial it is given: 10,000 took a minute)."""
    table = v.architectures[np.isfinite(v.architectures[v.objectives[0]].to_numpy(dtype=float))]
    if len(table) > cap:
        table = table.sample(cap, random_state=0)
    specs = [ArchSpec.parse(s) for s in table["spec"]]
    used = sorted({pos for spec in specs for pos in spec.blocks}, key=layout(v.backbone).key)
    if len(specs) < 4 or not used:
        return pd.DataFrame(columns=["parameter", "importance"])
    values = {pos: [str(spec.blocks[pos]) if pos in spec.blocks else "none" for spec in specs] for pos in used}
    distributions = {pos: optuna.distributions.CategoricalDistribution(sorted(set(vals))) for pos, vals in values.items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        scratch = optuna.create_study(direction=v.directions[0])
        scratch.add_trials([optuna.trial.create_trial(params={pos: values[pos][i] for pos in used}, distributions=distributions,
                                                      value=float(value))
                            for i, value in enumerate(table[v.objectives[0]])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(scratch)
    except (ValueError, RuntimeError):
        return pd.DataFrame(columns=["parameter", "importance"])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())})


@dataclass
class Analysis:
    """Everything the report draws."""

    view: StudyView
    reference: np.ndarray
    hypervolume: float
    history: pd.DataFrame
    position_effects: pd.DataFrame  # every objective, per (block, position), with 95% intervals
    stage_effects: pd.DataFrame  # every objective, per (block, stage), with 95% intervals
    importances: pd.DataFrame
    rules: Rules
    verdict: Verdict

    @property
    def duplicate_trials(self) -> int:
        return int(self.view.architectures["times_proposed"].sum() - len(self.view.architectures))


def analyse(study: optuna.Study, min_gain_se: float = 2.0, profile: LatencyProfile | None = None) -> Analysis:
    v = view(study, profile)
    reference = default_reference(v.architectures, v.objectives, v.directions)
    feasible = v.architectures[v.architectures["feasible"]]
    widen = {name: t_factor(floor.dof) for name, floor in v.noise_floor.items()}
    stage = fit_effects(v.architectures, v.objectives, "stage", widen=widen)
    position = fit_effects(v.architectures, v.objectives, "position", widen=widen)
    return Analysis(
        view=v,
        reference=reference,
        hypervolume=hypervolume(feasible[v.objectives].to_numpy(dtype=float), v.directions, reference),
        history=hypervolume_history(study, reference),
        position_effects=effects_frame(position),
        stage_effects=effects_frame(stage),
        importances=position_importances(v),
        rules=rules_in_words(v.architectures, v.front, v.objectives, stage, position),
        verdict=verdict(v, min_gain_se),
    )
