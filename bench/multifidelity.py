"""Multi-fidelity (MO-ASHA rungs) against full-budget search, per CPU hour, on the tabulated
problem of `bench/landscape.py` (with its seed noise and its weaker view at lower fidelity).

Both searches use TPE on the 2-block ResNet-50 space with the references enqueued. A full
evaluation costs one proxy candidate (`--candidate-seconds`, measured by `bench/noise.py`); a
rung at a fraction f of the budget costs f of it. MO-ASHA's rule is the search's own
(`attnas.search.fidelity.promoted`: rungs 1/9, 1/3, 1, the best third promoted). A run is
credited with the true values of the specs it evaluated at the full budget (what it reports).
"""

from __future__ import annotations

import numpy as np
import optuna
import yaml

from attnas.search.fidelity import promoted, rung_key
from attnas.search.samplers import TPEConfig, make_sampler
from attnas.space import SearchSpace, SpaceConfig, references
from bench.landscape import latency as landscape_latency
from bench.landscape import observed_map
from bench.search_efficiency import SPACE_CONF, hypervolume_2d, table

RUNGS = (1 / 9, 1 / 3, 1.0)


def simulate(space, index, profile, seed: int, hours: float, candidate_seconds: float, multifidelity: bool):
    """(CPU hours spent, rows evaluated at the full budget) after each trial, until `hours`."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(TPEConfig(n_startup_trials=10), seed))
    for spec in references(SpaceConfig(references=yaml.safe_load(SPACE_CONF.read_text())["references"]), space):
        study.enqueue_trial(space.params_for(spec), user_attrs={"reference": True})
    spent, done, history = 0.0, [], []

    def objective(trial):
        nonlocal spent
        spec = space.sample(trial)
        latency = landscape_latency(spec, profile)
        if multifidelity and not trial.user_attrs.get("reference"):
            for rung, fraction in enumerate(RUNGS[:-1]):
                spent += fraction * candidate_seconds / 3600
                values = [observed_map(spec, rng, fraction), latency]
                trial.set_user_attr(rung_key(rung), {"values": values})
                if not promoted(trial.study, trial.number, rung, values, 3)[0]:
                    history.append((spent, list(done)))
                    raise optuna.TrialPruned()
        spent += candidate_seconds / 3600
        done.append(index[str(spec)])
        history.append((spent, list(done)))
        return observed_map(spec, rng), latency

    while spent < hours:
        study.optimize(objective, n_trials=1)
    return history


def compare(profile, seeds, hours=(1.0, 2.0, 4.0), candidate_seconds: float = 45.0) -> None:
    space = SearchSpace("resnet50", "all", max_blocks=2)
    specs, truth = table(space, profile)
    index = {s: i for i, s in enumerate(specs)}
    reference = np.array([truth[:, 0].min() - 0.1 * np.ptp(truth[:, 0]), truth[:, 1].max() + 0.1 * np.ptp(truth[:, 1])])
    best = hypervolume_2d(truth, reference)
    print(f"# 2-block space, {len(specs)} specs; a full evaluation = {candidate_seconds:.0f} CPU s; rungs 1/9, 1/3, 1 (eta 3)")
    for name, multifidelity in (("full_budget", False), ("mo_asha", True)):
        shares = {h: [] for h in hours}
        for seed in seeds:
            history = simulate(space, index, profile, seed, max(hours), candidate_seconds, multifidelity)
            for h in hours:
                rows = next((done for spent, done in reversed(history) if spent <= h), [])
                shares[h].append(hypervolume_2d(truth[sorted(set(rows))], reference) / best if rows else 0.0)
        print(f"case=multifidelity search={name:<11} seeds={len(seeds)} "
              + " ".join(f"hv_{h:g}h={100 * np.mean(shares[h]):5.1f}%" for h in hours), flush=True)
