"""One-shot fidelity and cost: how well does the weight-sharing supernet rank what stand-alone
training ranks, and how fast?

Trains (once; reused afterwards) the supernet of the paper's ResNet-50 space (1-3 of six
blocks at 16 positions) from the same parent as `bench/noise.py`, scores the 12 specs of that
benchmark with it (batch norms recalibrated on 8 training batches, validation ids carved from
the training ids), and compares with the stand-alone seed means `bench/noise.py` measured:
Kendall tau over all specs and within the better half (by stand-alone mean), printed beside the
noise ceiling (ICC and seed-to-seed tau of the stand-alone runs). `--search N` also runs a
one-shot study of N candidates end to end (latency from the device profile) and times it.

    python -m bench.supernet --dataset synthetic [--noise bench/out/noise.jsonl] [--search 300]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attnas.evaluators import budget
from attnas.evaluators.supernet_evaluator import SupernetEvaluator
from attnas.search.noise import icc
from attnas.space import SearchSpace
from bench.noise import SPECS, load


def stand_alone(path: Path, dataset: str, label: str) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["dataset"] == dataset and entry["parent"] == "parent" and entry["budget"] == label:
            runs.setdefault(entry["spec"], []).append(entry["mAP"])
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--noise", default="bench/out/noise.jsonl")
    parser.add_argument("--budgets", default="finetune,finetune:epochs=8", help="the stand-alone budgets to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--search", type=int, default=0, help="also run a one-shot study of this many candidates")
    parser.add_argument("--profile", default="profiles/resnet50-cpu-2t-b1-256x128.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load(args.dataset)
    space = SearchSpace("resnet50", "all", max_blocks=3)
    evaluator = SupernetEvaluator(data, budget("supernet"), num_val_ids=50, latency=None, parent=budget("parent"),
                                  parent_path=Path(args.noise).parent / "parents")
    started = time.perf_counter()
    evaluator.prepare(space)
    trained = evaluator.supernet_seconds
    print(f"case=supernet dataset={args.dataset} space={space.cardinality()}_specs train_seconds="
          f"{trained if trained is not None else 'reused'} prepare_seconds={time.perf_counter() - started:.0f}", flush=True)
    scores, seconds = {}, []
    for spec in SPECS:
        began = time.perf_counter()
        scores[spec] = evaluator.score(spec, 0)["mAP"]
        seconds.append(time.perf_counter() - began)
        print(f"case=candidate spec={spec} one_shot_mAP={scores[spec]:.4f} seconds={seconds[-1]:.1f}", flush=True)
    print(f"case=cost candidates={len(SPECS)} seconds_median={np.median(seconds):.1f} seconds_max={max(seconds):.1f}", flush=True)
    for label in args.budgets.split(","):
        runs = stand_alone(Path(args.noise), args.dataset, label)
        shared = [s for s in SPECS if s in runs and len(runs[s]) >= 2]
        if len(shared) < 4:
            print(f"case=fidelity budget={label} skipped: bench/noise.py has {len(shared)} specs for it", flush=True)
            continue
        means = np.array([np.mean(runs[s]) for s in shared])
        one_shot = np.array([scores[s] for s in shared])
        better = means >= np.median(means)
        seeds = min(len(runs[s]) for s in shared)
        matrix = np.array([runs[s][:seeds] for s in shared])
        pairs = [kendalltau(matrix[:, a], matrix[:, b]).statistic for a, b in itertools.combinations(range(seeds), 2)]
        print(f"case=fidelity dataset={args.dataset} budget={label} specs={len(shared)} "
              f"tau_all={kendalltau(one_shot, means).statistic:.2f} tau_better_half={kendalltau(one_shot[better], means[better]).statistic:.2f} "
              f"noise_ceiling: icc={icc(matrix.tolist()).icc:.2f} tau_seed_pairs={np.mean(pairs):.2f}", flush=True)
    if args.search:
        folder = Path(args.noise).parent / f"oneshot-{args.dataset}"
        command = [sys.executable, "-m", "attnas.search.apps.search_app", "evaluator=supernet", f"n_trials={args.search}",
                   "evaluator.latency.source=profile", f"evaluator.latency.profile.path={args.profile}", "sampler=tpe",
                   f"evaluator.parent_dir={Path(args.noise).parent / 'parents'}", f"hydra.run.dir={folder}", "progress=false",
                   *( [f"dataset={args.dataset}"] if args.dataset != "synthetic" else
                      ["dataset.root=" + str(data.root)] )]
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        print(f"case=search dataset={args.dataset} candidates={args.search} wall_minutes={(time.perf_counter() - began) / 60:.1f} "
              f"(supernet training included unless reused)", flush=True)


if __name__ == "__main__":
    main()
