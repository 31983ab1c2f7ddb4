"""How fast does each sampler find the front? Hypervolume after 25 and 50 trials, as a fraction of
the exhaustive front's, on a space small enough to tabulate exactly.

The table is the cost evaluator's real figures for every spec of ResNet-50 with up to 2 of the 6
blocks at any of the 16 positions (4,417 specs; objectives: inserted parameters, maximised, as the
capacity a block adds, against FLOPs at 256x128, minimised). FLOPs and parameters of inserted
blocks add up exactly (a block's cost depends only on where it sits), so the table is built from
the 96 single-block models and checked against direct counts of sampled two-block models.
Samplers propose from the real `SearchSpace` encoding; a re-proposed spec costs a trial, as in a
real study.

    python -m bench.search_efficiency [--seeds 0,1,2] [--samplers nsga2,tpe,gp,random]
"""

from __future__ import annotations

import argparse
import random
import warnings

import numpy as np
import optuna
import torch

from evaluators import model_cost
from models import build_model
from search.analysis import hypervolume, pareto_mask
from search.factory import make_sampler
from space import BLOCK_TYPES, ArchSpec, SearchSpace

DIRECTIONS = ["maximize", "minimize"]  # added params (M), GFLOPs


def cost_table(space: SearchSpace) -> dict[str, tuple[float, float]]:
    base = model_cost(build_model(space.backbone, 1))
    single = {}
    for pos in space.allowed_positions:
        for block in space.blocks:
            cost = model_cost(build_model(ArchSpec(space.backbone, {pos: block}), 1))
            single[(pos, block)] = (cost.backbone_params_m - base.backbone_params_m, cost.gflops - base.gflops)
    table = {}
    for spec in space.enumerate():
        parts = [single[(pos, c.block)] for pos, c in spec.blocks.items()]
        table[str(spec)] = (sum(p for p, _ in parts), base.gflops + sum(f for _, f in parts))
    for text in random.Random(0).sample([s for s in table if s.count("=") == 2], 3):  # additivity check
        direct = model_cost(build_model(text, 1))
        assert abs(direct.gflops - table[text][1]) < 1e-6 and abs(direct.backbone_params_m - base.backbone_params_m - table[text][0]) < 1e-6, text
    return table


def run(sampler_name: str, seed: int, space: SearchSpace, table, n_trials: int) -> list[np.ndarray]:
    sampler_cfg = {"name": sampler_name, "population_size": 10, "n_startup_trials": 10}
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(sampler_cfg, seed))
    points = []

    def objective(trial):
        values = table[str(space.sample(trial))]
        points.append(values)
        return values

    study.optimize(objective, n_trials=n_trials)
    return [np.array(points[:k]) for k in (25, 50)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--samplers", default="nsga2,tpe,gp,random")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # GP's fallback notice for conditional slots, once per trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(2)
    space = SearchSpace("resnet50", "all", BLOCK_TYPES, ("post",), max_blocks=2)
    table = cost_table(space)
    values = np.array(list(table.values()))
    reference = np.array([values[:, 0].min() - 0.1 * np.ptp(values[:, 0]), values[:, 1].max() + 0.1 * np.ptp(values[:, 1])])
    best = hypervolume(values[pareto_mask(values, DIRECTIONS)], DIRECTIONS, reference)
    print(f"# space: {space.describe()}; exhaustive front {int(pareto_mask(values, DIRECTIONS).sum())} specs")
    for name in args.samplers.split(","):
        fractions = {25: [], 50: []}
        for seed in (int(s) for s in args.seeds.split(",")):
            for k, pts in zip((25, 50), run(name, seed, space, table, 50)):
                fractions[k].append(hypervolume(pts, DIRECTIONS, reference) / best)
        print(f"sampler={name:<7} seeds={len(fractions[50])} hv25={np.mean(fractions[25]) * 100:5.1f}% "
              f"(min {np.min(fractions[25]) * 100:5.1f}%) hv50={np.mean(fractions[50]) * 100:5.1f}% "
              f"(min {np.min(fractions[50]) * 100:5.1f}%)", flush=True)


if __name__ == "__main__":
    main()
