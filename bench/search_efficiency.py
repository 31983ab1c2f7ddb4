"""Sampler efficiency on a realistic tabulated problem: how much of the best front 50 trials find.

The table (`bench/landscape.py`): latency from this machine's device profile of ResNet-50,
accuracy from a documented synthetic landscape with the paper's shape, observed with seed noise.
Spaces: ResNet-50 with up to 1, 2 and 3 of the six blocks (97, 4,417 and 125,377 specs), each
enumerated exactly for its true Pareto front. Every run starts, as a real study does, with the
references of conf/space/resnet50.yaml enqueued; a re-proposed spec costs a trial. A run is
credited with the hypervolume of the true values of the specs it evaluated, as a share of the
exhaustive front's (reference point: the worst value of each objective over the space, pushed
10% outward), and `gap_closed50`: of the hypervolume the enqueued references do not already cover,
the share 50 trials add (the references alone cover most of the area on the 1- and 3-block
tables, so the first share saturates there).

    python -m bench.search_efficiency [--tables 1,2,3] [--samplers nsga2,tpe,gp,random,sweep] [--seeds 0,1,2,3,4]
    python -m bench.search_efficiency --multifidelity      # MO-ASHA rungs vs full budget, per CPU hour
    python -m bench.search_efficiency --constraint 1.05    # latency first: proposals not trained
    python -m bench.search_efficiency --families           # landscape families (bench/family_search.py)
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import yaml

from attnas.evaluators.latency.timing import LatencyConfig
from attnas.evaluators.latency.profile import LatencyProfile, measure_profile
from attnas.search.frontier import FrontierContext
from attnas.search.pareto import hypervolume, pareto_mask
from attnas.search.samplers import SAMPLERS, make_sampler
from attnas.space import SearchSpace, SpaceConfig, references
from bench.landscape import latency, observed_map, true_map

SPACE_CONF = Path(__file__).resolve().parents[1] / "conf" / "space" / "resnet50.yaml"


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Dominated area between the front and `reference` (mAP above ref[0], latency below ref[1])."""
    return hypervolume(points, ["maximize", "minimize"], reference)


def table(space: SearchSpace, profile: LatencyProfile) -> tuple[list[str], np.ndarray]:
    specs = list(space.enumerate(limit=200_000))
    return [str(s) for s in specs], np.array([(true_map(s), latency(s, profile)) for s in specs])


def sampler_for(name: str, seed: int, budget: int, space: SearchSpace, profile: LatencyProfile | Callable,
                limit: float | None = None) -> optuna.samplers.BaseSampler:
    """Each sampler sized for the budget (as attnas-search does): NSGA-II's population and the
    model-based samplers' random start at most n/5. `frontier` knows the latency from the device
    profile, as it does in a search with evaluator.latency.source=profile; `frontier_learned`
    learns it from the trials, as with the timer. `profile`: a device profile, or the latency
    ratio of a spec."""
    predict = profile if callable(profile) else (lambda spec: latency(spec, profile))
    known = {} if name == "frontier_learned" else {"latency_ratio": predict}
    context = FrontierContext(space, ["mAP", "latency_ratio"], known, {"latency_ratio": limit} if limit is not None else {})
    schema = SAMPLERS["frontier" if name.startswith("frontier") else name][0]
    return make_sampler(schema(), seed, budget, context)


def run(name: str, seed: int, space: SearchSpace, index: dict[str, int], truth: np.ndarray, profile, trials: int,
        limit: float | None = None) -> list[int]:
    """Rows of `truth` a study evaluated, in order (a re-proposal repeats a row). With `limit`,
    latency_ratio <= limit is a constraint, set as attnas-search sets it."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler_for(name, seed, trials, space, profile, limit))
    refs = yaml.safe_load(SPACE_CONF.read_text())["references"]
    for spec in references(SpaceConfig(references=refs), space):
        study.enqueue_trial(space.params_for(spec))
    seen: list[int] = []

    def objective(trial):
        spec = space.sample(trial)
        seen.append(index[str(spec)])
        ratio = latency(spec, profile)
        if limit is not None:
            trial.set_constraint("latency_ratio", ratio - limit)
        return observed_map(spec, rng), ratio

    study.optimize(objective, n_trials=trials)
    return seen


def load_profile(path: str | None) -> LatencyProfile:
    path = path or "profiles/resnet50-cpu-2t-b1-256x128.json"
    return measure_profile(SearchSpace("resnet50", "all", max_blocks=3), LatencyConfig(threads=2, warmup=5, repeats=30),
                           path, progress=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--tables", default="1,2,3")
    parser.add_argument("--samplers", default=None, help="default: nsga2,tpe,gp,random,frontier,frontier_learned "
                        "(with --families: random,tpe,gp,nsga2,frontier)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--multifidelity", action="store_true")
    parser.add_argument("--constraint", type=float, default=None,
                        help="latency_ratio <= X: count the proposals latency-first keeps from training")
    parser.add_argument("--candidate-seconds", type=float, default=45.0, help="CPU seconds of one full proxy evaluation")
    from bench.family_search import add_arguments  # it imports this module: not at the top

    add_arguments(parser)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.families:  # landscapes of several structures; no latency is timed
        from bench.family_search import compare

        args.samplers = args.samplers or "random,tpe,gp,nsga2,frontier"
        compare(args)
        return
    args.samplers = args.samplers or "nsga2,tpe,gp,random,frontier,frontier_learned"
    profile = load_profile(args.profile)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.multifidelity:
        from bench.multifidelity import compare

        compare(profile, seeds, candidate_seconds=args.candidate_seconds)
        return
    if args.constraint is not None:
        constrained(args, profile, seeds)
        return
    for max_blocks in (int(m) for m in args.tables.split(",")):
        space = SearchSpace("resnet50", "all", max_blocks=max_blocks)
        specs, truth = table(space, profile)
        index = {s: i for i, s in enumerate(specs)}
        reference = np.array([truth[:, 0].min() - 0.1 * np.ptp(truth[:, 0]), truth[:, 1].max() + 0.1 * np.ptp(truth[:, 1])])
        best = hypervolume_2d(truth, reference)
        refs = [index[str(s)] for s in references(SpaceConfig(references=yaml.safe_load(SPACE_CONF.read_text())["references"]), space)]
        given = hypervolume_2d(truth[refs], reference)  # what the enqueued references alone already cover
        print(f"# space: {space.describe()}; exact front {int(pareto_mask(truth, ['maximize', 'minimize']).sum())} specs (enumerated); "
              f"the {len(refs)} references alone: {100 * given / best:.1f}%", flush=True)
        for name in args.samplers.split(","):
            shares, distinct, gaps, started = {25: [], 50: []}, [], [], time.perf_counter()
            for seed in seeds:
                seen = run(name, seed, space, index, truth, profile, args.trials)
                distinct.append(len(set(seen)))
                for k in shares:
                    shares[k].append(hypervolume_2d(truth[sorted(set(seen[:k]))], reference) / best)
                if best - given > 1e-12 * best:  # else the references are the front: nothing left to find
                    gaps.append((shares[50][-1] * best - given) / (best - given))
            print(f"table={max_blocks}_blocks sampler={name:<7} seeds={len(seeds)} hv25={100 * np.mean(shares[25]):5.1f}% "
                  f"hv50={100 * np.mean(shares[50]):5.1f}% (min {100 * np.min(shares[50]):5.1f}%) "
                  + (f"gap_closed50={100 * np.mean(gaps):5.1f}% (min {100 * np.min(gaps):5.1f}%) " if gaps else "gap_closed50=n/a ")
                  + f"distinct50={np.mean(distinct):.1f} seconds_per_run={(time.perf_counter() - started) / len(seeds):.1f}",
                  flush=True)


def constrained(args, profile: LatencyProfile, seeds: list[int]) -> None:
    """Latency first: of the proposals of a study under latency_ratio <= X, how many break it (a
    search records those with their latency and does not train them), and the training seconds
    that saves at `--candidate-seconds` a candidate."""
    for max_blocks in (int(m) for m in args.tables.split(",")):
        space = SearchSpace("resnet50", "all", max_blocks=max_blocks)
        specs, truth = table(space, profile)
        index = {s: i for i, s in enumerate(specs)}
        print(f"# space: {space.describe()}; constraint latency_ratio<={args.constraint}: "
              f"{100 * np.mean(truth[:, 1] > args.constraint):.0f}% of the space breaks it", flush=True)
        for name in args.samplers.split(","):
            broken = [int(np.sum(truth[run(name, seed, space, index, truth, profile, args.trials, args.constraint), 1]
                                 > args.constraint)) for seed in seeds]
            print(f"table={max_blocks}_blocks sampler={name:<7} seeds={len(seeds)} trials={args.trials} "
                  f"infeasible_not_trained={np.mean(broken):.1f} (min {min(broken)}, max {max(broken)}) "
                  f"training_saved={100 * np.mean(broken) / args.trials:.0f}% = "
                  f"{np.mean(broken) * args.candidate_seconds / 60:.0f} CPU minutes at {args.candidate_seconds:.0f} s a candidate",
                  flush=True)


if __name__ == "__main__":
    main()
