"""`attnas-search ... retime=true`: the flagged latencies of an existing study measured again, in place.

A timing that stayed disturbed after its retries is kept but flagged (`latency_unreliable`), and
neither profiles nor placement rules use it. Re-timing it later, on a quiet machine, rewrites
every trial that holds that spec when the new timing is undisturbed (one still disturbed is no
better, and the trials are left as they are): its latency metrics, its objective values and
constraints, where it was measured (`measured_on`), and a `retimed` record of what it was; the
study keeps a `retime_log`. Nothing is trained and no trial is added.

Optuna refuses to change a finished trial through its API (`check_trial_is_updatable`; there is
no public way), so this module owns the one workaround: on RDB storages (SQLite, PostgreSQL,
MySQL) it writes the rows of Optuna's own schema in one transaction. A journal file cannot be
rewritten (its replay drops changes to finished trials): re-timing there is refused in one line.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from attnas.evaluators.metric_registry import constraint_violation
from attnas.search.storage import storage_of

if TYPE_CHECKING:
    from attnas.search.study import SearchSetup

log = logging.getLogger("attnas.search")


@dataclass
class Retimed:
    study: optuna.Study  # reloaded: the rewritten values, not this process's cached trials
    specs: list[str] = field(default_factory=list)
    trials: int = 0
    still_flagged: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.specs:
            return f"study {self.study.study_name}: no flagged latency to re-time"
        still = (f"; {len(self.still_flagged)} still disturbed ({', '.join(self.still_flagged[:3])}"
                 f"{', ...' if len(self.still_flagged) > 3 else ''}): run again on a quieter machine") if self.still_flagged else ""
        done = len(self.specs) - len(self.still_flagged)
        return f"study {self.study.study_name}: re-timed {done} of {len(self.specs)} flagged spec(s), {self.trials} trial(s) rewritten{still}"


def flagged(study: optuna.Study) -> dict[str, list[FrozenTrial]]:
    """The finished trials whose latency is flagged, by spec."""
    found: dict[str, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("latency_unreliable") and trial.user_attrs.get("spec"):
            found.setdefault(trial.user_attrs["spec"], []).append(trial)
    return found


def retime(s: "SearchSetup") -> Retimed:
    """Measure every flagged spec of the study once more and rewrite the trials that hold it."""
    study, groups = s.study, flagged(s.study)
    backend = getattr(storage_of(study), "_backend", storage_of(study))
    if groups and not isinstance(backend, optuna.storages.RDBStorage):
        raise ValueError(f"retime=true rewrites finished trials, which Optuna allows only through an RDB storage "
                         f"(sqlite:///, postgresql://); study {study.study_name!r} is in a {type(backend).__name__}")
    result = Retimed(study)
    now = datetime.datetime.now().isoformat(timespec="seconds")
    for spec, trials in groups.items():
        cost = s.evaluator.remeasure_cost(spec)
        result.specs.append(spec)
        if cost.get("latency_unreliable"):  # disturbed again: no better than what the trials hold; left as is
            result.still_flagged.append(spec)
            log.info("re-timing %s still looks disturbed; its trials are left as they are", spec)
            continue
        for trial in trials:
            before = trial.user_attrs.get("metrics") or {}
            metrics = before | cost
            attrs: dict[str, Any] = {"metrics": metrics, **cost, "measured_on": s.evaluator.context(),
                                     "retimed": {"at": now, "was": {k: before.get(k) for k in cost if before.get(k) != cost[k]}}}
            values = [metrics.get(name, old) for name, old in zip(s.objectives, trial.values)]
            constraints = [constraint_violation(name, metrics[name], limit) for name, limit in s.constraints.items()] \
                if s.constraints else None
            _rewrite(backend, trial, attrs, values, constraints)
            result.trials += 1
        log.info("re-timed %s: latency_ratio %.4g -> %.4g", spec, trials[0].user_attrs.get("latency_ratio", float("nan")),
                 cost.get("latency_ratio", float("nan")))
    if result.specs:
        history = list(study.user_attrs.get("retime_log") or [])
        study.set_user_attr("retime_log", history + [{"at": now, "specs": result.specs, "trials": result.trials,
                                                      "still_flagged": result.still_flagged}])
    result.study = optuna.load_study(study_name=study.study_name, storage=backend)
    return result


def _rewrite(backend: optuna.storages.RDBStorage, trial: FrozenTrial, user_attrs: dict[str, Any], values: list[float],
             constraints: list[float] | None) -> None:
    """Set user attributes, objective values and constraints of a finished trial, in one transaction."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    def upsert(model: Any, row: Any, key: str, value: Any, session: Any) -> None:
        stored = model.find_by_trial_and_key(row, key, session)
        if stored is None:
            session.add(model(trial_id=row.trial_id, key=key, value_json=json.dumps(value)))
        else:
            stored.value_json = json.dumps(value)

    with _create_scoped_session(backend.scoped_session, True) as session:
        row = models.TrialModel.find_or_raise_by_id(trial._trial_id, session)
        for key, value in user_attrs.items():
            upsert(models.TrialUserAttributeModel, row, key, value, session)
        if constraints is not None:
            upsert(models.TrialSystemAttributeModel, row, "constraints", constraints, session)  # Optuna's key for them
        for objective, value in enumerate(values):
            stored = models.TrialValueModel.find_by_trial_and_objective(row, objective, session)
            stored.value, stored.value_type = models.TrialValueModel.value_to_stored_repr(value)
