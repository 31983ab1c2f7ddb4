"""What the frontier sampler reads of a study's trials: one record per spec, its training runs
per seed, and the study's seed noise.

A search trains a spec once per seed and copies the runs into a trial that proposes it again
(`search/trials.py`), so a spec counts once, with its richest record. A seeded metric is read
per run (`per_seed`: `{"seeds": [...], "mAP": [...]}`), so the model sees that the references'
three seeds and the candidates' one seed are different draws of the seed effect; other
objectives (a cost, or a trial without `per_seed`) are one value per spec.

`seed_noise` is the only place the sampler reads the study's noise model (`search/noise.py`):
today the pooled seed noise over the specs trained under several seeds. When that module offers a
seed-blocked split (seed effect and residual, issue 20), fill `SeedNoise.seed_sd` and
`residual_sd` from it here; the model then uses them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial

from attnas.search.frontier.model import SeedNoise
from attnas.search.noise import noise_floors


@dataclass
class Record:
    """One spec the study evaluated: its values (Optuna's, one per objective), feasibility, runs."""

    key: tuple
    values: list[float]
    feasible: bool
    per_seed: dict  # {"seeds": [...], metric: [...]}, {} when the trial has none


def records(trials: list[FrozenTrial], key_of) -> list[Record]:
    """One record per spec: the finished trial with the most seeds (a re-proposal copies its original)."""
    found: dict[tuple, Record] = {}
    for trial in trials:
        key = key_of(trial)
        per_seed = trial.user_attrs.get("per_seed") or {}
        feasible = all(v <= 0 for v in trial.constraints.values()) if trial.constraints else True
        record = Record(key, list(trial.values), feasible, per_seed)
        if key not in found or len(per_seed.get("seeds", [])) > len(found[key].per_seed.get("seeds", [])):
            found[key] = record
    return list(found.values())


def runs(held: list[Record], index: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record of each run, its training seed, its value) of objective `index` named `name`; a
    record without per-seed runs of `name` gives one run under seed -1 (no seed's effect known)."""
    rows, seeds, values = [], [], []
    for i, record in enumerate(held):
        per_seed = record.per_seed
        if name in per_seed and len(per_seed[name]) == len(per_seed.get("seeds", [])) and per_seed[name]:
            rows += [i] * len(per_seed[name])
            seeds += [int(s) for s in per_seed["seeds"]]
            values += [float(v) for v in per_seed[name]]
        else:
            rows.append(i)
            seeds.append(-1)
            values.append(float(record.values[index]))
    return np.array(rows), np.array(seeds), np.array(values)


def seed_noise(trials: list[FrozenTrial], name: str) -> SeedNoise:
    """The study's seed noise of `name` (see the module docstring)."""
    floor = noise_floors(trials, [name]).get(name)
    return SeedNoise() if floor is None else SeedNoise(total_sd=floor.sd, dof=floor.dof)
