"""Samplers over the landscape families of `bench/families.py`: HV@50 per family, the worst family,
tuning and held-out landscape seeds apart (`python -m bench.search_efficiency --families`).

One run per landscape seed: a study over the 2-block ResNet-50 space (4,417 specs) that starts,
as attnas-search does, with the references of conf/space/resnet50.yaml enqueued and trained under
3 seeds (`reference_repeats`), every other trial under seed 0 (`repeats`), each trial recording
`spec` and `per_seed` as a search does, a spec seen again copied from its first runs. A run is
credited with the TRUE values of the specs it evaluated: `hv50`, the hypervolume of their true
(mAP, latency) as a share of the exhaustive front's (reference point: the worst value of each
objective over the space, pushed 10% outward; `attnas.search.pareto.hypervolume`).

The landscape seeds were fixed before any tuning: `TUNING_SEEDS` for developing the samplers,
`HELDOUT_SEEDS` only reported. A line per (family, noise, seed set, sampler): the mean hv50 over
the seeds, its SD and minimum, and the mean of the paired difference to random with its 95%
interval (t over the seeds). Then, per sampler and seed set, the worst family by that difference
and its mean over the families, and how far the held-out seeds' gains are from the tuning seeds'.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import optuna
import yaml
from scipy import stats

from attnas.space import SearchSpace, SpaceConfig, references
from bench.families import FAMILIES, NOISES, Encoded, Landscape, Observer, latency_table, make_landscape
from bench.search_efficiency import SPACE_CONF, hypervolume_2d, sampler_for

TUNING_SEEDS = (0, 1, 2, 3, 4)
HELDOUT_SEEDS = (100, 101, 102, 103, 104)
OUT = Path(__file__).resolve().parent / "out"


def run(landscape: Landscape, name: str, seed: int, space: SearchSpace, latency, trials: int) -> list[int]:
    """Rows of the landscape a study evaluated, in order (a re-proposal repeats a row)."""
    observer = Observer(landscape, np.random.default_rng([seed, 7]))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler_for(name, seed, trials, space, latency))
    for spec in references(SpaceConfig(references=yaml.safe_load(SPACE_CONF.read_text())["references"]), space):
        study.enqueue_trial(space.params_for(spec), user_attrs={"reference": True})
    seen: list[int] = []
    seeds_of: dict[int, list[int]] = {}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.sample(trial)
        row = landscape.index[str(spec)]
        seen.append(row)
        seeds = seeds_of.setdefault(row, [0, 1, 2] if trial.user_attrs.get("reference") else [0])
        runs = [observer.run(row, s) for s in seeds]
        trial.set_user_attr("spec", str(spec))
        trial.set_user_attr("per_seed", {"seeds": seeds, "mAP": runs})
        return float(np.mean(runs)), float(landscape.truth[row, 1])

    study.optimize(objective, n_trials=trials)
    return seen


def hv_share(landscape: Landscape, rows: list[int]) -> float:
    truth = landscape.truth
    reference = np.array([truth[:, 0].min() - 0.1 * np.ptp(truth[:, 0]), truth[:, 1].max() + 0.1 * np.ptp(truth[:, 1])])
    return hypervolume_2d(truth[sorted(set(rows))], reference) / hypervolume_2d(truth, reference)


def interval(values: np.ndarray) -> float:
    """Half-width of the 95% t interval of the mean."""
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def compare(args: argparse.Namespace) -> None:
    space = SearchSpace("resnet50", "all", max_blocks=2)
    latency, described = latency_table(space, args.latency, Path(args.profile or "profiles/resnet50-cpu-2t-b1-256x128.json"),
                                       OUT / "flops-latency-resnet50.json")
    enc = Encoded(space)
    samplers = args.samplers.split(",")
    if "random" not in samplers:
        samplers = ["random", *samplers]  # every figure is also stated against random
    sets = {"tuning": TUNING_SEEDS, "heldout": HELDOUT_SEEDS}
    chosen = {k: v for k, v in sets.items() if k in args.seed_sets.split(",")}
    print(f"# space: {space.describe()}; latency: {described}; {args.trials} trials, references enqueued; "
          f"seed sets: " + ", ".join(f"{k} {','.join(map(str, v))}" for k, v in chosen.items()), flush=True)
    gains: dict[tuple[str, str], dict[str, float]] = {}  # (sampler, seed set) -> family -> mean hv50 minus random
    for family in args.family_list.split(","):
        for noise in args.noises.split(","):
            for set_name, seeds in chosen.items():
                landscapes = [make_landscape(enc, family, seed, noise, latency) for seed in seeds]
                shares: dict[str, np.ndarray] = {}
                for name in samplers:
                    started = time.perf_counter()
                    shares[name] = np.array([hv_share(land, run(land, name, seed, space, latency, args.trials))
                                             for land, seed in zip(landscapes, seeds)])
                    gain = shares[name] - shares["random"]
                    print(f"family={family}/{noise} set={set_name} sampler={name:<8} seeds={len(seeds)} "
                          f"hv50={100 * shares[name].mean():5.1f}% (sd {100 * shares[name].std(ddof=1):4.1f}, min {100 * shares[name].min():5.1f}%) "
                          f"vs_random={100 * gain.mean():+5.1f} (95% +-{100 * interval(gain):4.1f}) "
                          f"seconds_per_run={(time.perf_counter() - started) / len(seeds):.1f}", flush=True)
                    gains.setdefault((name, set_name), {})[f"{family}/{noise}"] = float(gain.mean())
                builtin = {k: v.mean() for k, v in shares.items() if not k.startswith("frontier")}
                best = max(builtin, key=builtin.get)
                print(f"family={family}/{noise} set={set_name} best_builtin={best} {100 * builtin[best]:5.1f}% "
                      + " ".join(f"{k}_vs_best_builtin={100 * (v.mean() - builtin[best]):+5.1f}" for k, v in shares.items()
                                 if k.startswith("frontier")), flush=True)
    for name in samplers:
        for set_name in chosen:
            by_family = gains[(name, set_name)]
            where = min(by_family, key=by_family.get)
            print(f"worst_family sampler={name:<8} set={set_name} family={where} vs_random={100 * by_family[where]:+5.1f} "
                  f"mean_over_families={100 * np.mean(list(by_family.values())):+5.1f}", flush=True)
        if len(chosen) == 2:
            tuning, heldout = (np.array(list(gains[(name, k)].values())) for k in chosen)
            print(f"heldout_minus_tuning sampler={name:<8} vs_random: mean {100 * (heldout - tuning).mean():+5.1f}, "
                  f"per family " + " ".join(f"{100 * d:+.1f}" for d in heldout - tuning), flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", action="store_true", help="compare samplers over the landscape families (bench/families.py)")
    parser.add_argument("--family-list", default=",".join(FAMILIES))
    parser.add_argument("--noises", default=",".join(NOISES))
    parser.add_argument("--seed-sets", default="tuning,heldout")
    parser.add_argument("--latency", default="profile", help="profile (the file, else the measured table), measured or flops")
