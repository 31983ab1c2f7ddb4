"""Confirmation on fresh seeds, run: retrain the pick(s) of a study and its plain backbone under
seeds the study never used, record every run in the study, decide (`search.analysis.confirmation`).

Used at the end of `attnas-search confirm.count=K confirm.seeds=3` (the K candidates with the
largest seed-blocked gain, whether or not the search alone could call them significant: the
confirmation is the test, the search the screening) and by `attnas-export` for the pick it is
about to export. Fresh seeds start 1000 above the largest seed the study trained under, leaving
room for a resumed search with more repeats; the seeds are chosen once per study, so a later pick
reuses the plain backbone's confirmation runs. A run already recorded (or in the evaluator's
cache, evaluations.jsonl beside the study) is never trained again.

`attnas-export` rebuilds the study's evaluator from what the study recorded
(`evaluator_config`, `dataset_config`) and refuses to train when its fingerprint differs from the
study's (another data folder, budget or device would not confirm anything).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from attnas.evaluators import EVALUATORS, CachedEvaluator, make_evaluator
from attnas.evaluators.config import DeviceConfig
from attnas.evaluators.reid.datasets import DATASETS
from attnas.search.analysis.confirmation import KEY, Confirmation, confirmation_of
from attnas.search.analysis.evidence import accuracy_objective
from attnas.search.analysis.export import CannotConfirm
from attnas.search.analysis.view import objectives_of, view
from attnas.search.config import ConfigError
from attnas.space import ArchSpec

log = logging.getLogger("attnas.confirm")

#: confirmation seeds start this far above the largest seed the study used
SEED_GAP = 1000


def fresh_seeds(study: optuna.Study, count: int) -> list[int]:
    """The study's confirmation seeds: the recorded ones (all of them: more runs, none selected),
    extended to `count` when more are asked."""
    recorded = list((study.user_attrs.get(KEY) or {}).get("seeds", []))
    if len(recorded) >= count:
        return recorded
    used = [s for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            for s in (t.user_attrs.get("per_seed") or {}).get("seeds", [])]
    start = max([*used, *recorded, -1]) + (1 if recorded else SEED_GAP)
    return recorded + list(range(start, start + count - len(recorded)))


def top_candidates(study: optuna.Study, count: int) -> list[str]:
    """The `count` feasible, trained candidates with the largest seed-blocked gain over the plain backbone."""
    table = view(study).architectures
    table = table[(table["num_blocks"] > 0) & table["feasible"] & table["gain"].notna()]
    return list(table.sort_values("gain", ascending=False)["spec"].head(count))


def confirm(study: optuna.Study, evaluator: Any, picks: list[str], seeds: int, alpha: float = 0.05) -> Confirmation:
    """Train each pick and the plain backbone under the study's fresh seeds (what is missing only),
    record the runs in the study after each one, and return the decision."""
    if seeds < 2:
        raise ValueError(f"confirm.seeds must be >= 2 (a gain and its noise need two fresh seeds), got {seeds}")
    objective = accuracy_objective(objectives_of(study))
    if objective is None:
        raise CannotConfirm("no objective of this study depends on the training seed: there is nothing to confirm")
    v = view(study)
    plain = v.architectures.loc[v.architectures["num_blocks"] == 0, "spec"]
    if plain.empty:
        raise CannotConfirm("the plain backbone is not in the study, and a gain needs it as the baseline")
    record = dict(study.user_attrs.get(KEY) or {"objective": objective, "plain": plain.iloc[0], "runs": {}, "picks": []})
    record["seeds"], record["alpha"] = fresh_seeds(study, seeds), alpha
    table = v.architectures.set_index("spec")
    for spec in picks:
        if spec not in {p["spec"] for p in record["picks"]}:
            record["picks"].append({"spec": spec, "search_gain": float(table.loc[spec, "gain"]),
                                    "search_se": float(table.loc[spec, "gain_se"])})
    study.set_user_attr(KEY, record)
    for spec in [record["plain"], *(p["spec"] for p in record["picks"])]:  # every pick: all share the seeds
        runs = record["runs"].setdefault(spec, {"seeds": []})
        for seed in record["seeds"]:
            if seed in runs["seeds"]:
                continue
            log.info("confirmation: training %s under fresh seed %d", spec, seed)
            scores = evaluator.score(ArchSpec.parse(spec), seed)
            runs["seeds"].append(seed)
            for name, value in scores.items():
                runs.setdefault(name, []).append(value)
            study.set_user_attr(KEY, record)  # after every run: an interrupted confirmation resumes here
    decided = confirmation_of(study)
    log.info("%s", decided.sentence())
    return decided


def study_folder(storage: str, study_name: str) -> Path:
    """Where attnas-search kept the study's files (parent weights, evaluations.jsonl): beside a file
    storage, else runs/<study_name>."""
    for prefix in ("sqlite:///", "journal:"):
        if storage.startswith(prefix):
            return Path(storage.removeprefix(prefix)).parent
    return Path("runs") / study_name


def _typed(schema: type, data: dict) -> Any:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))


def evaluator_of(study: optuna.Study, storage: str, device: DeviceConfig) -> CachedEvaluator:
    """The study's evaluator rebuilt from what it recorded, prepared; `CannotConfirm` when it cannot
    be rebuilt or would not be the same (fingerprint)."""
    attrs = study.user_attrs
    evaluator_cfg, dataset_cfg = attrs.get("evaluator_config"), attrs.get("dataset_config")
    if not evaluator_cfg:
        raise CannotConfirm("the study records no evaluator_config (it was not made by attnas-search), so its pick cannot "
                            "be retrained")
    folder = study_folder(storage, study.study_name)
    try:
        evaluator_schema = EVALUATORS.get_entry(evaluator_cfg["type"]).config_class
        dataset = _typed(DATASETS[dataset_cfg["name"]].config_class, dataset_cfg) if dataset_cfg else None
        evaluator = make_evaluator(_typed(evaluator_schema, evaluator_cfg), dataset, device, folder, folder / "evaluations.jsonl")
    except Exception as error:  # noqa: BLE001 - any failure to rebuild means no confirmation here; say which
        raise CannotConfirm(f"the study's evaluator cannot be rebuilt here ({type(error).__name__}: {error})") from None
    if evaluator.fingerprint() != attrs.get("evaluator"):
        raise CannotConfirm(f"the evaluator rebuilt here differs from the study's (fingerprint {evaluator.fingerprint()} vs "
                            f"{attrs.get('evaluator')}): run attnas-export where attnas-search ran, with the same device=")
    backbone = view(study).backbone
    evaluator.prepare(backbone)
    return evaluator


def check_config(count: int, seeds: int) -> None:
    """Refuse, before any work, a confirmation that cannot decide anything."""
    if count < 0 or (count > 0 and seeds < 2):
        raise ConfigError(f"confirm.count must be >= 0 and confirm.seeds >= 2 (a gain and its noise need two fresh seeds); "
                          f"got confirm.count={count}, confirm.seeds={seeds}")


def confirm_best(study: optuna.Study, evaluator: Any, count: int, seeds: int) -> Confirmation | None:
    """`attnas-search confirm.count=K`: the K best candidates of the finished study, confirmed."""
    picks = top_candidates(study, count)
    if not picks:
        log.warning("confirmation: no trained, feasible candidate has a gain over the plain backbone to confirm")
        return None
    try:
        return confirm(study, evaluator, picks, seeds)
    except CannotConfirm as error:
        log.error("confirmation: %s", error)
        return None
