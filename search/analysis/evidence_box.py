"""The dashboard's evidence, in words and one table: what the study's numbers rest on (seed noise,
the validation split, how long candidates trained), the verdict with how many candidates it
tested, and the confirmation on fresh seeds beside the search's own estimate (so the winner's
curse is visible). `report` places these; everything here is computed by `analyse`.
"""

from __future__ import annotations

import html

import numpy as np
import optuna
from optuna.trial import TrialState

from attnas.evaluators.metric_registry import METRICS
from attnas.search.analysis.view import Analysis


def training_steps(study: optuna.Study) -> tuple[float, float, float, int] | None:
    """(median, min, max, runs) of the optimiser steps per training run, when the evaluator recorded
    them (`train_steps` in each trial's per-seed runs); None otherwise."""
    steps = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "duplicate_of" in trial.user_attrs:
            continue
        steps += [s for s in (trial.user_attrs.get("per_seed") or {}).get("train_steps", []) if s is not None]
    if not steps:
        return None
    return float(np.median(steps)), float(min(steps)), float(max(steps)), len(steps)


def evidence_lines(a: Analysis) -> list[str]:
    """The evidence box, one sentence per line."""
    v, lines = a.view, []
    for name, floor in v.noise_floor.items():
        if name not in v.objectives:
            continue
        m = METRICS[name]
        line = (f"seed noise of {name}: one run moves by {m.format(floor.sd)} (SD) (pooled over {floor.specs} specs, "
                f"{floor.seeds} runs, {floor.dof} degrees of freedom)")
        fit = v.blocked.get(name)
        if fit is not None and fit.floor is not None and fit.floor.dof > 0:
            blocked = fit.floor
            line += (f"; within shared seeds: a seed effect common to every architecture of {m.format(blocked.seed_sd)} (SD over "
                     f"{blocked.seeds} seeds) and a residual of {m.format(blocked.residual_sd)} ({blocked.dof} degrees of freedom), "
                     f"so two architectures compared under one seed differ by noise of {m.format(blocked.residual_sd * np.sqrt(2))}")
        lines.append(line)
    if not v.uncertainty_known:
        lines.append("no noise floor: no spec of this study was trained under two or more seeds, so the uncertainty of "
                     "its accuracy is unknown; set evaluator.reference_repeats >= 2")
    validation = v.study.user_attrs.get("validation") or {}
    if validation:
        shown = v.resolution.describe() if v.resolution is not None else (
            f"{validation.get('queries', '?')} queries against {validation.get('gallery', '?')} gallery images")
        lines.append(f"validation: {validation.get('protocol', '?')} protocol, carved from the training ids: {shown}")
        if v.resolution is not None and not v.resolution.can_rank:
            lines.append(f"WARNING: this validation split cannot rank architectures ({v.resolution.shortfall()})")
    if "latency_unreliable" in v.architectures:
        flagged = v.architectures[v.architectures["latency_unreliable"].fillna(0) > 0]["spec"].tolist()
        if flagged:
            lines.append(f"latency of {len(flagged)} architecture(s) looked disturbed even after re-timing (red rings): "
                         f"{', '.join(flagged[:5])}{' ...' if len(flagged) > 5 else ''}; time them on a quiet machine "
                         f"or use a latency profile")
    steps = training_steps(v.study)
    trained = (f" (each candidate trained {steps[0]:.0f} optimiser steps, {steps[1]:.0f}-{steps[2]:.0f} over {steps[3]} runs)"
               if steps else "")
    lines.append(f"verdict: {a.verdict.sentence()}{trained}")
    if a.confirmation is not None:
        lines.append(a.confirmation.sentence())
    elif a.verdict.objective is not None and a.verdict.plain is not None:
        lines.append("not confirmed on fresh seeds: a search's best estimate is biased upwards by its selection; "
                     "attnas-search confirm.count=K, or attnas-export, retrains the pick(s) under seeds the study never used")
    return lines


def confirmation_table(a: Analysis) -> str:
    """The search estimate beside the confirmation estimate of every pick sent to confirmation."""
    c = a.confirmation
    if c is None or not c.results:
        return ""
    m = METRICS[c.objective]
    rows = "".join(f"<tr><td><code>{html.escape(r.spec)}</code></td><td>{m.format(r.search_gain, r.search_se, signed=True)}</td>"
                   f"<td>{m.format(r.gain, r.se, signed=True)}</td><td>{r.p:.2g}</td>"
                   f"<td>{'confirmed' if r.confirmed else 'not confirmed'}</td></tr>" for r in c.results)
    return (f"<h3>Confirmation on fresh seeds</h3><table id=\"confirmation\"><thead><tr><th>pick</th><th>gain in the search "
            f"(selected: biased up)</th><th>gain on {len(c.seeds)} fresh seeds</th><th>p (one-sided)</th><th>Holm, "
            f"{c.alpha:.0%}</th></tr></thead><tbody>{rows}</tbody></table>")


def evidence_summary(a: Analysis) -> dict:
    """The evidence for summary.json."""
    v = a.view
    return {
        "seed_blocked": {name: fit.floor.to_dict() for name, fit in v.blocked.items() if fit.floor is not None},
        "tested": a.verdict.tested,
        "any_beats_plain": a.verdict.any_beats,
        "any_p": a.verdict.any_p if np.isfinite(a.verdict.any_p) else None,
        "validation_resolution": v.resolution.to_dict() if v.resolution is not None else None,
        "confirmation": None if a.confirmation is None else {
            "sentence": a.confirmation.sentence(), "seeds": a.confirmation.seeds,
            "results": [vars(r) for r in a.confirmation.results], "pending": a.confirmation.pending},
    }
