"""Export the chosen architecture: its spec with metrics, their uncertainty, the verdict against
seed noise, its confirmation on fresh seeds and the provenance (`attnas.search.analysis.deploy`
writes the model itself).

What gets exported, for a study whose accuracy depends on the training seed:

* the pick is made among candidates the search found significant (false discovery rate
  `alpha`) or that a confirmation already confirmed; none: `InsignificantError` (exit 3);
* the pick must then survive confirmation on fresh seeds (`confirmation`). When the study holds
  no confirmation of it, `confirm(spec)` (the app's: it retrains the pick and the plain backbone)
  is asked for one; without that callable (Python API) or when confirming is impossible, the
  pick counts as unconfirmed. Unconfirmed or refuted: `UnconfirmedError` (exit 3).
* `allow_unconfirmed` exports anyway (from every feasible architecture when nothing is
  significant), and the file says what the evidence was.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
import yaml

from attnas.evaluators.artefacts import atomic_write_text
from attnas.evaluators.metric_registry import METRICS
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.search.analysis.deploy import EMBEDDING
from attnas.search.analysis.view import StudyView, view
from attnas.search.pareto import pareto_mask
from attnas.search.analysis.confirmation import Confirmation, Confirmed, confirmation_of
from attnas.search.analysis.evidence import Verdict, difference_se, verdict
from attnas.search.storage import make_storage
from attnas.space import ArchSpec

_BOUND = re.compile(r"^(?P<metric>\w+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+0-9.eE]+)$")


def load_study(storage: str, study_name: str) -> optuna.Study:
    """The study, read through `make_storage` (its checks refuse a damaged or foreign file in one
    line, and a missing file is not created)."""
    opened = make_storage(storage, heartbeat_interval=None, create=False)
    try:
        names = optuna.get_all_study_names(opened)
    except Exception as error:  # noqa: BLE001 - any storage error means the URL is unusable
        raise ValueError(f"cannot open storage {storage!r}: {' '.join(str(error).split())[:300]}") from None
    if study_name not in names:
        raise ValueError(f"no study {study_name!r} in {storage}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=opened)


def knee(front: pd.DataFrame, objectives: list[str], directions: list[str]) -> int:
    """Front member farthest from the line between the two extremes (normalised objectives)."""
    if len(front) <= 2:
        return int(front.index[0])
    values = front[objectives[:2]].to_numpy(dtype=float)
    loss = np.where(np.array(directions[:2]) == "maximize", -values, values)
    span = np.ptp(loss, axis=0)
    loss = (loss - loss.min(axis=0)) / np.where(span > 0, span, 1)
    a, b = loss[np.argmin(loss[:, 0])], loss[np.argmin(loss[:, 1])]
    direction = (b - a) / (np.linalg.norm(b - a) or 1)
    offsets = loss - a
    distance = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    return int(front.index[int(np.argmax(distance))])


class InsignificantError(ValueError):
    """No candidate beats the plain backbone beyond seed noise; the message is the verdict."""


class UnconfirmedError(InsignificantError):
    """The pick was not confirmed on fresh seeds (refuted, or never confirmed); the message says which."""


class CannotConfirm(RuntimeError):
    """Confirming is impossible here (no evaluator config in the study, another fingerprint, ...)."""


def equivalent_cheaper(v: StudyView, pool: pd.DataFrame, chosen: pd.Series) -> pd.Series:
    """The member of `pool`'s front that is best on the second objective among those whose first
    objective the study cannot tell from `chosen`'s (difference within 1.96 standard errors, seed-
    blocked when the study has the fit): a knee never pays latency for a tie within noise."""
    first, second = v.objectives[0], v.objectives[1]
    better = -1.0 if v.directions[1] == "maximize" else 1.0
    best = chosen
    for _, row in pool.iterrows():
        tie = abs(row[first] - chosen[first]) <= 1.96 * difference_se(v, row, chosen) or row[first] == chosen[first]
        if tie and better * row[second] < better * best[second]:
            best = row
    return best


def _select(v: StudyView, pool: pd.DataFrame, rule: str, table: pd.DataFrame) -> pd.Series:
    first, ascending = v.objectives[0], v.directions[0] == "minimize"
    if rule == "knee":
        front = pool[pareto_mask(pool[v.objectives].to_numpy(dtype=float), v.directions)]
        front = front.sort_values(first, ascending=ascending)
        chosen = front.loc[knee(front, v.objectives, v.directions)]
        return equivalent_cheaper(v, front, chosen) if len(v.objectives) > 1 else chosen
    if rule in ("max_map", f"best_{first}"):
        return pool.sort_values(first, ascending=ascending).iloc[0]
    match = _BOUND.match(rule.replace(" ", ""))
    if match is None:
        raise ValueError(f"unknown pick {rule!r}; use knee, max_map, or METRIC<=VALUE such as latency<=1.05")
    name = "latency_ratio" if match["metric"] == "latency" else match["metric"]
    if name not in pool:
        recorded = [m for m in METRICS if m in pool]
        raise ValueError(f"pick {rule!r} names {name!r}, which the study does not record; recorded: {', '.join(recorded)}")
    ops = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}
    chosen = pool[ops[match["op"]](pool[name], float(match["value"]))]
    if chosen.empty:
        raise ValueError(f"no {'feasible' if pool is table else 'significant'} architecture has {name} {match['op']} "
                         f"{match['value']}; the range seen is {pool[name].min():.4g}..{pool[name].max():.4g}")
    return chosen.sort_values(first, ascending=ascending).iloc[0]


def pick(v: StudyView, rule: str, alpha: float = 0.05, allow_unconfirmed: bool = False,
         confirmation: Confirmation | None = None) -> tuple[pd.Series, Verdict]:
    """`knee`, `max_map` (best first objective), or a bound such as `latency<=1.05` (best first
    objective among feasible architectures meeting it; `latency` means `latency_ratio`), among
    the candidates the search found significant or a confirmation confirmed. When there are none,
    `InsignificantError` says so, unless `allow_unconfirmed`: then every feasible architecture is
    considered and the verdict goes with the export."""
    judged = verdict(v, alpha)
    table = v.architectures[v.architectures["feasible"]]
    if table.empty:
        raise ValueError(f"study {v.study.study_name!r} has no feasible architecture; relax the constraints")
    pool = table
    if judged.objective is not None:
        pool = table[table["spec"].isin([*judged.significant, *(confirmation.confirmed if confirmation else [])])]
        if pool.empty:
            if not allow_unconfirmed:
                raise InsignificantError(judged.sentence() + "; allow_unconfirmed=true exports anyway, with this verdict")
            pool = table
    return _select(v, pool, rule, table), judged


def confirmed_pick(study: optuna.Study, v: StudyView, row: pd.Series, judged: Verdict, allow_unconfirmed: bool,
                   confirm: Callable[[str], Confirmation] | None) -> tuple[Confirmed | None, str]:
    """The pick's confirmation (asking `confirm` for one when the study holds none) and, when it
    is missing or refuted, why; raises `UnconfirmedError` then unless `allow_unconfirmed`."""
    if judged.objective is None or row["num_blocks"] == 0:
        return None, ""
    confirmation = confirmation_of(study)
    found = confirmation.result(row["spec"]) if confirmation else None
    why = ""
    if found is None and confirm is not None:
        try:
            found = confirm(row["spec"]).result(row["spec"])
        except CannotConfirm as error:
            why = str(error)
    if found is None:
        why = why or "no confirmation ran (confirm.seeds=0, or the Python API without a confirm callable)"
        reason = f"{row['spec']} was not confirmed on fresh seeds: {why}"
    elif not found.confirmed:
        reason = f"{row['spec']} did not survive confirmation: {confirmation_of(study).describe(found, named=False)}"
    else:
        return found, ""
    if not allow_unconfirmed:
        raise UnconfirmedError(reason + "; allow_unconfirmed=true exports anyway, with this verdict")
    return found, reason


_BOOKKEEPING = ("spec", "number", "num_blocks", "seeds", "feasible", "on_front", "p_front", "reference", "times_proposed",
                "gain", "gain_se", "gain_z")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def export_record(study: optuna.Study, rule: str, storage: str = "", alpha: float = 0.05, allow_unconfirmed: bool = False,
                  profile: LatencyProfile | None = None,
                  confirm: Callable[[str], Confirmation] | None = None) -> tuple[ArchSpec, dict]:
    """The picked spec and everything an exported architecture file says about it (with
    `profile`, picked by that device's predicted latency; `confirm(spec)` retrains a pick the
    study holds no confirmation of)."""
    v = view(study, profile)
    row, judged = pick(v, rule, alpha, allow_unconfirmed, confirmation_of(study))
    confirmed, unconfirmed = confirmed_pick(study, v, row, judged, allow_unconfirmed, confirm)
    spec = ArchSpec.parse(row["spec"])
    significant = row["spec"] in judged.significant
    attrs = study.user_attrs
    trial = study.get_trials(deepcopy=False)[int(row["number"])]
    record = {
        "spec": str(spec),
        **spec.to_dict(),
        "metrics": {k: _plain(row[k]) for k in row.index
                    if k not in _BOOKKEEPING and not k.endswith(("_lo", "_hi")) and not pd.isna(row[k])},
        "uncertainty": {"seeds": int(row["seeds"]), "p_front": _plain(row["p_front"]),
                        "intervals_95": {o: [_plain(row[f"{o}_lo"]), _plain(row[f"{o}_hi"])] for o in v.objectives},
                        "noise_floor": {k: f.to_dict() for k, f in v.noise_floor.items()},
                        "seed_blocked": {k: fit.floor.to_dict() for k, fit in v.blocked.items() if fit.floor is not None}},
        "verdict": {"significant": bool(significant) if judged.objective else None, "objective": judged.objective,
                    "versus": judged.plain, "gain": _plain(row["gain"]), "gain_se": _plain(row["gain_se"]),
                    "alpha": alpha, "tested": judged.tested, "study": judged.sentence(),
                    "confirmed": (None if judged.objective is None or row["num_blocks"] == 0
                                  else bool(confirmed and confirmed.confirmed)),
                    "confirmation": None if confirmed is None else {k: _plain(x) for k, x in vars(confirmed).items()},
                    "unconfirmed": unconfirmed or None,
                    "train_steps": (trial.user_attrs.get("per_seed") or {}).get("train_steps")},  # how long each run trained
        "status": {k: _plain(row[k]) for k in ("feasible", "on_front", "reference", "times_proposed") if k in row.index},
        "embedding": EMBEDDING,
        "provenance": {
            "study": study.study_name, "storage": storage, "trial": int(row["number"]), "pick": rule,
            "objectives": dict(zip(v.objectives, v.directions)),
            "evaluator": attrs.get("evaluator_config"), "dataset": attrs.get("dataset_config"), "data": attrs.get("data"),
            "validation": attrs.get("validation"), "seeds": (trial.user_attrs.get("per_seed") or {}).get("seeds"),
            "measured_on": trial.user_attrs.get("measured_on") or _measured_on(study, row["spec"]),
            "software": attrs.get("software"), "fingerprint": attrs.get("evaluator"), "latency": v.latency_source,
        },
    }
    return spec, json.loads(json.dumps(record, default=str))


def _measured_on(study: optuna.Study, spec: str) -> dict | None:
    """Where the first trial that measured `spec` timed it (re-proposals carry no context)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("spec") == spec and trial.user_attrs.get("measured_on"):
            return trial.user_attrs["measured_on"]
    return None


#: files an export writes; `model*` ones come and go with `model=true`
EXPORT_FILES = ("architecture.yaml", "architecture.json")


def write_export(record: dict, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the architecture files atomically. A folder holding another spec's export is refused
    (its model files would sit beside the new spec) unless `overwrite`, which clears them."""
    out = Path(out_dir)
    previous = out / "architecture.yaml"
    if previous.exists():
        old = ArchSpec.load(previous)
        if str(old) != record["spec"]:
            if not overwrite:
                raise ValueError(f"{str(out)!r} holds the export of {old}; choose another out= or overwrite=true")
            for stale in out.glob("model*"):
                stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("architecture.json", json.dumps(record, indent=2) + "\n"),
                       ("architecture.yaml", yaml.safe_dump(record, sort_keys=False))):
        atomic_write_text(out / name, text)
    return out


def export_spec(study: optuna.Study, rule: str, out_dir: str | Path, storage: str = "", alpha: float = 0.05,
                allow_unconfirmed: bool = False, overwrite: bool = False,
                confirm: Callable[[str], Confirmation] | None = None) -> tuple[ArchSpec, dict]:
    spec, record = export_record(study, rule, storage, alpha, allow_unconfirmed, confirm=confirm)
    write_export(record, out_dir, overwrite)
    return spec, record
