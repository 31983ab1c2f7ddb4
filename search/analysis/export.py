"""Export the chosen architecture: its spec with metrics, their uncertainty, the verdict against
seed noise and the provenance (`attnas.search.analysis.deploy` writes the model itself)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
from attnas.search.storage import make_storage
from attnas.search.analysis.evidence import Verdict, verdict
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


def pick(v: StudyView, rule: str, min_gain_se: float = 2.0, allow_insignificant: bool = False) -> tuple[pd.Series, Verdict]:
    """`knee`, `max_map` (best first objective), or a bound such as `latency<=1.05` (best first
    objective among feasible architectures meeting it; `latency` means `latency_ratio`).

    Only architectures whose gain over the plain backbone on the accuracy objective exceeds
    `min_gain_se` standard errors of the difference are considered (studies whose objectives
    do not depend on the seed have nothing to test). When none does, `InsignificantError` says
    so, unless `allow_insignificant`: then every feasible architecture is considered and the
    verdict goes with the export."""
    judged = verdict(v, min_gain_se)
    first, ascending = v.objectives[0], v.directions[0] == "minimize"
    table = v.architectures[v.architectures["feasible"]]
    if table.empty:
        raise ValueError(f"study {v.study.study_name!r} has no feasible architecture; relax the constraints")
    if judged.objective is not None:
        pool = table[table["spec"].isin(judged.significant)]
        if pool.empty:
            if not allow_insignificant:
                raise InsignificantError(judged.sentence() + "; allow_insignificant=true exports anyway, with this verdict")
            pool = table
    else:
        pool = table
    if rule == "knee":
        front = pool[pareto_mask(pool[v.objectives].to_numpy(dtype=float), v.directions)]
        front = front.sort_values(first, ascending=ascending)
        return front.loc[knee(front, v.objectives, v.directions)], judged
    if rule in ("max_map", f"best_{first}"):
        return pool.sort_values(first, ascending=ascending).iloc[0], judged
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
    return chosen.sort_values(first, ascending=ascending).iloc[0], judged


_BOOKKEEPING = ("spec", "number", "num_blocks", "seeds", "feasible", "on_front", "p_front", "reference", "times_proposed",
                "gain", "gain_se", "gain_z")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def export_record(study: optuna.Study, rule: str, storage: str = "", min_gain_se: float = 2.0,
                  allow_insignificant: bool = False, profile: LatencyProfile | None = None) -> tuple[ArchSpec, dict]:
    """The picked spec and everything an exported architecture file says about it (with
    `profile`, picked by that device's predicted latency)."""
    v = view(study, profile)
    row, judged = pick(v, rule, min_gain_se, allow_insignificant)
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
                        "noise_floor": {k: f.to_dict() for k, f in v.noise_floor.items()}},
        "verdict": {"significant": bool(significant) if judged.objective else None, "objective": judged.objective,
                    "versus": judged.plain, "gain": _plain(row["gain"]), "gain_se": _plain(row["gain_se"]),
                    "min_gain_se": min_gain_se, "study": judged.sentence()},
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


def export_spec(study: optuna.Study, rule: str, out_dir: str | Path, storage: str = "", min_gain_se: float = 2.0,
                allow_insignificant: bool = False, overwrite: bool = False) -> tuple[ArchSpec, dict]:
    spec, record = export_record(study, rule, storage, min_gain_se, allow_insignificant)
    write_export(record, out_dir, overwrite)
    return spec, record
