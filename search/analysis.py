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
from scipy import stats
from optuna.trial import FrozenTrial, TrialState

from attnas.evaluators.metric_registry import METRICS
from attnas.search.noise import NoiseFloor, noise_floors
from attnas.models.backbones import layout
from attnas.search.rules import Rules, effects_frame, fit_effects, rules_in_words
from attnas.space import ArchSpec


@dataclass
class StudyView:
    study: optuna.Study
    objectives: list[str]
    directions: list[str]
    architectures: pd.DataFrame  # one row per spec, with `<objective>_se`, `_lo`, `_hi` and `p_front`
    front: pd.DataFrame  # Pareto-optimal feasible architectures (point estimates), by the first objective
    noise_floor: dict[str, NoiseFloor]  # pooled seed noise of each seeded metric, over the whole study

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
        row.update({k: v for k, v in best.user_attrs.get("metrics", {}).items() if k not in row})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("number").reset_index(drop=True) if rows else pd.DataFrame()


def pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Non-dominated rows (ties: identical points are all kept, as Optuna's best_trials does)."""
    loss = np.where(np.array(directions) == "maximize", -values, values)
    dominated = np.zeros(len(loss), dtype=bool)
    for i in range(len(loss)):
        better_eq = np.all(loss <= loss[i], axis=1) & np.any(loss < loss[i], axis=1)
        dominated[i] = better_eq.any()
    return ~dominated


def probability_non_dominated(means: np.ndarray, ses: np.ndarray, directions: list[str], draws: int = 2000,
                              seed: int = 0, chunk: int = 50) -> np.ndarray:
    """Per row, the share of Monte Carlo draws (each objective ~ Normal(mean, se), independent)
    in which the row is non-dominated. Seeded: the same study gives the same numbers."""
    n, d = means.shape
    if n == 0:
        return np.zeros(0)
    sign = np.where(np.array(directions) == "maximize", -1.0, 1.0)
    rng = np.random.default_rng(seed)
    hits = np.zeros(n)
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        loss = (means[None] + rng.standard_normal((size, n, d)) * ses[None]) * sign  # (draws, n, d)
        le = (loss[:, :, None, :] <= loss[:, None, :, :]).all(-1)  # [k, j, i]: j at least as good as i everywhere
        lt = (loss[:, :, None, :] < loss[:, None, :, :]).any(-1)
        dominated = (le & lt).any(axis=1)  # some j dominates i
        hits += (~dominated).sum(axis=0)
    return hits / draws


def t_factor(dof: float) -> float:
    """How much wider a 95% interval is when the SD behind it comes from `dof` degrees of freedom
    (Student's t over the normal quantile): 2.2 for 2, 1.18 for 8, 1 for exact SDs."""
    return 1.0 if not np.isfinite(dof) else float(stats.t.ppf(0.975, dof) / stats.norm.ppf(0.975))


def standard_errors(table: pd.DataFrame, objectives: list[str], floors: dict[str, NoiseFloor]) -> pd.DataFrame:
    """`<objective>_se`: seeded metrics from the study's final noise floor over sqrt(seeds) (NaN
    without one); measured costs from their own standard error (`latency_ratio_se`); FLOPs and
    params are exact (0). The 95% intervals `_lo`/`_hi` use Student's t for a noise floor
    estimated from few degrees of freedom."""
    for name in objectives:
        widen = 1.0
        if name in METRICS and METRICS[name].seeded:
            floor = floors.get(name)
            se = table["seeds"].map(floor.se) if floor is not None else pd.Series(np.nan, index=table.index)
            widen = t_factor(floor.dof) if floor is not None else 1.0
        elif f"{name}_se" in table:
            se = table[f"{name}_se"].astype(float)
        else:
            se = pd.Series(0.0, index=table.index)
        table[f"{name}_se"] = se.astype(float)
        table[f"{name}_lo"] = table[name] - 1.96 * widen * table[f"{name}_se"]
        table[f"{name}_hi"] = table[name] + 1.96 * widen * table[f"{name}_se"]
    return table


def view(study: optuna.Study) -> StudyView:
    names = objectives_of(study)
    dirs = [d.name.lower() for d in study.directions]
    table = architectures(study)
    if table.empty:
        states = {s.name: n for s in TrialState if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
        raise ValueError(f"study {study.study_name!r} has no completed trial with a spec (trials by state: {states or 'none'}); "
                         f"run attnas-search first")
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
    return StudyView(study, names, dirs, table, front.reset_index(drop=True), floors)


def accuracy_objective(objectives: list[str]) -> str | None:
    """The first objective that training seeds move (mAP, rank-1, ...), if any."""
    return next((o for o in objectives if o in METRICS and METRICS[o].seeded), None)


def gains_over_plain(table: pd.DataFrame, objectives: list[str], directions: list[str]) -> pd.DataFrame:
    """`gain`, `gain_se`, `gain_z`: each architecture's improvement over the plain backbone on the
    accuracy objective, the standard error of that difference (independent runs:
    sqrt(se_a^2 + se_plain^2)) and their ratio. NaN when there is no accuracy objective or no
    plain backbone in the study."""
    name = accuracy_objective(objectives)
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty:
        table["gain"] = table["gain_se"] = table["gain_z"] = np.nan
        return table
    sign = 1.0 if directions[objectives.index(name)] == "maximize" else -1.0
    base = plain.iloc[0]
    table["gain"] = sign * (table[name] - base[name])
    table["gain_se"] = np.sqrt(table[f"{name}_se"] ** 2 + base[f"{name}_se"] ** 2)
    table["gain_z"] = table["gain"] / table["gain_se"]
    table.loc[table["num_blocks"] == 0, ["gain", "gain_z"]] = 0.0
    return table


@dataclass
class Verdict:
    """Does any candidate beat the plain backbone beyond seed noise?"""

    objective: str | None
    plain: str | None
    min_gain_se: float
    significant: list[str]  # specs whose gain exceeds `threshold` standard errors
    threshold: float  # min_gain_se, widened by Student's t for a noise floor from few degrees of freedom
    best_spec: str | None
    best_gain: float
    best_se: float

    def sentence(self) -> str:
        if self.objective is None:
            return "no objective depends on the training seed: nothing to test against seed noise"
        if self.plain is None:
            return (f"the plain backbone was not evaluated, so no gain in {self.objective} can be tested; "
                    f"enqueue it (space.references) and search again")
        m = METRICS[self.objective]
        best = m.format(self.best_gain, self.best_se, signed=True) if self.best_spec else "n/a"
        needed = f"{self.min_gain_se:g}" + (f" (widened to {self.threshold:.2g} for the noise floor's few degrees of "
                                            f"freedom)" if self.threshold > self.min_gain_se * 1.001 else "")
        if not self.significant:
            return (f"no candidate beats {self.plain} beyond seed noise at this budget: best {best} "
                    f"({self.best_spec}); a gain must exceed {needed} standard errors")
        return (f"{len(self.significant)} candidate(s) beat {self.plain} by more than {needed} standard "
                f"errors of {self.objective}; best {best} ({self.best_spec})")


def verdict(v: StudyView, min_gain_se: float = 2.0) -> Verdict:
    name = accuracy_objective(v.objectives)
    table = v.architectures
    plain = table[table["num_blocks"] == 0]
    if name is None or plain.empty:
        return Verdict(name, None if plain.empty else plain.iloc[0]["spec"], min_gain_se, [], min_gain_se, None, np.nan, np.nan)
    threshold = min_gain_se * (t_factor(v.noise_floor[name].dof) if name in v.noise_floor else 1.0)
    candidates = table[(table["num_blocks"] > 0) & table["feasible"]]
    significant = candidates[candidates["gain_z"] > threshold]
    best = candidates.sort_values("gain", ascending=False).iloc[0] if not candidates.empty else None
    return Verdict(name, plain.iloc[0]["spec"], min_gain_se, list(significant["spec"]), threshold,
                   None if best is None else best["spec"], np.nan if best is None else float(best["gain"]),
                   np.nan if best is None else float(best["gain_se"]))


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


def position_importances(v: StudyView) -> pd.DataFrame:
    """How much each position matters for the first objective, by what sits there (`none` or a
    block variant): Optuna's default importance evaluator (PED-ANOVA) on features that say what
    they are, not on the sampler's slots. Empty when fewer than four architectures or no position
    varies."""
    specs = [ArchSpec.parse(s) for s in v.architectures["spec"]]
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
                            for i, value in enumerate(v.architectures[v.objectives[0]])])
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


def analyse(study: optuna.Study, min_gain_se: float = 2.0) -> Analysis:
    v = view(study)
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
