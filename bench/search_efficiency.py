"""How fast does each sampler find the front? Hypervolume after 25 and 50 trials, as a fraction of
the exhaustive front's, on a space small enough to tabulate exactly.

The table is the cost evaluator's real figures for every spec of ResNet-50 with up to 1 (97 specs)
and up to 2 (4,417 specs) of the 6 blocks at any of the 16 positions (objectives: inserted
parameters, maximised, as the capacity a block adds, against FLOPs at 256x128, minimised). FLOPs and parameters of inserted
blocks add up exactly (a block's cost depends only on where it sits), so the table is built from
the 96 single-block models and checked against direct counts of sampled two-block models.
Samplers propose from the real `SearchSpace` encoding after the references of conf/space/resnet50.yaml
that lie in the space are enqueued, and a re-proposed spec costs a trial, as in a real study.

    python -m bench.search_efficiency [--seeds 0,1,2] [--samplers nsga2,tpe,gp,random] [--max-blocks 1,2]
"""

from __future__ import annotations

import argparse
import random
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from omegaconf import OmegaConf

from attnas.evaluators import model_cost
from attnas.models import BLOCKS, build_model
from attnas.search.analysis import hypervolume, pareto_mask
from attnas.search.samplers import SAMPLERS, make_sampler
from attnas.space import ArchSpec, SearchSpace, SpaceConfig, references

BLOCK_TYPES = tuple(BLOCKS)

DIRECTIONS = ["maximize", "minimize"]  # added params (M), GFLOPs
SPACE_CONF = Path(__file__).resolve().parents[1] / "conf" / "space" / "resnet50.yaml"


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


def run(sampler_name: str, seed: int, space: SearchSpace, table, n_trials: int) -> tuple[list[np.ndarray], int]:
    schema = SAMPLERS[sampler_name][0]
    options = {k: v for k, v in {"population_size": 10, "n_startup_trials": 10}.items() if k in schema.__dataclass_fields__}
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(schema(**options), seed))
    refs = OmegaConf.load(SPACE_CONF)["references"]
    for spec in references(SpaceConfig(references=list(refs)), space):
        study.enqueue_trial(space.params_for(spec))
    points, specs = [], set()

    def objective(trial):
        spec = str(space.sample(trial))
        specs.add(spec)
        points.append(table[spec])
        return points[-1]

    study.optimize(objective, n_trials=n_trials)
    return [np.array(points[:k]) for k in (25, 50)], len(specs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--samplers", default="nsga2,tpe,gp,random")
    parser.add_argument("--max-blocks", default="1,2")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(2)
    widest = max(int(m) for m in args.max_blocks.split(","))
    full = cost_table(SearchSpace("resnet50", "all", BLOCK_TYPES, ("post",), max_blocks=widest))
    for max_blocks in (int(m) for m in args.max_blocks.split(",")):
        space = SearchSpace("resnet50", "all", BLOCK_TYPES, ("post",), max_blocks=max_blocks)
        table = {spec: full[spec] for spec in map(str, space.enumerate())}
        values = np.array(list(table.values()))
        reference = np.array([values[:, 0].min() - 0.1 * np.ptp(values[:, 0]), values[:, 1].max() + 0.1 * np.ptp(values[:, 1])])
        front = pareto_mask(values, DIRECTIONS)
        best = hypervolume(values[front], DIRECTIONS, reference)
        print(f"# space: {space.describe()}; exhaustive front {int(front.sum())} specs")
        for name in args.samplers.split(","):
            fractions, distinct = {25: [], 50: []}, []
            for seed in (int(s) for s in args.seeds.split(",")):
                points, evaluated = run(name, seed, space, table, 50)
                distinct.append(evaluated)
                for k, pts in zip((25, 50), points):
                    fractions[k].append(hypervolume(pts, DIRECTIONS, reference) / best)
            print(f"max_blocks={max_blocks} sampler={name:<7} seeds={len(distinct)} hv25={np.mean(fractions[25]) * 100:5.1f}% "
                  f"(min {np.min(fractions[25]) * 100:5.1f}%) hv50={np.mean(fractions[50]) * 100:5.1f}% "
                  f"(min {np.min(fractions[50]) * 100:5.1f}%) distinct_specs50={np.mean(distinct):.1f}", flush=True)


if __name__ == "__main__":
    main()
