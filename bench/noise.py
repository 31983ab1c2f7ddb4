"""Seed noise at a budget: can the budget tell architectures apart at all?

For K ResNet-50 specs (plain to three blocks, expensive NL placements included) x S seeds under
one or two training budgets, scored on validation ids carved from the training ids:

* `pooled_sd`: the seed noise of one run (pooled within-spec standard deviation of mAP);
* `icc`: the share of one run's variance explained by the architecture (one-way ICC(1));
  `arch_sd` is the spread of the specs' true means, to compare with `pooled_sd`;
* `seed_sd`, `paired_sd`: every spec runs under the same seeds (same batches, same initial
  weights), so part of the spread is a seed effect shared by all specs (`seed_sd`); what is left
  after removing it (`paired_sd`, two-way residual) is the noise of a spec-vs-spec difference
  under one seed;
* `tau_seed_pairs`: Kendall tau between the rankings of two single seeds (mean over seed pairs),
  how reproducible a one-seed ranking is;
* `tau_budgets`: Kendall tau between the seed-mean rankings of the two budgets.

With `--parent parent` every candidate starts from the plain backbone trained once (what
`evaluator.parent=parent` does in a search). Results are appended to a JSON-lines file as they
come, so an interrupted run resumes where it stopped; each printed line is one case.

    python -m bench.noise --dataset synthetic --parent parent --budgets finetune,finetune:epochs=8
    python -m bench.noise --dataset cuhk01 --parent none --budgets proxy,proxy:epochs=12 --specs 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attnas.evaluators import ReIDEvaluator, budget
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from attnas.search.noise import icc, pooled_sd

#: plain, one block of each type (NL where it is expensive), two and three blocks
SPECS = [
    "resnet50",
    "resnet50:layer3.5=se",
    "resnet50:layer3.5=cnl",
    "resnet50:layer1.2=nl",
    "resnet50:layer2.3=cnl,layer3.5=cnl,layer4.2=cnl",
    "resnet50:layer4.0=cbam",
    "resnet50:layer2.3=eca,layer3.5=gc",
    "resnet50:layer3.0=nl,layer4.2=se",
    "resnet50:layer4.2=cnl",
    "resnet50:layer2.3=nl",
    "resnet50:layer1.0=se,layer3.5=cnl",
    "resnet50:layer2.0=se,layer3.5=nl,layer4.2=cnl",
]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str):
    if name == "synthetic":
        return load_dataset("synthetic", generate(Path(tempfile.gettempdir()) / "attnas-bench-synthetic", SynthConfig()))
    if not (SHARED / name).is_dir():
        raise SystemExit(f"{SHARED / name} is missing; the real sets live in ../shared/data (see its README)")
    return load_dataset(name, SHARED / name)


def parse_budget(text: str):
    """`proxy` or `proxy:epochs=12,lr=5e-4`: a named budget with overrides."""
    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        overrides[key] = type(getattr(budget(name), key))(value) if getattr(budget(name), key) is not None else int(value)
    return name, overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", help="synthetic, cuhk01 or viper")
    parser.add_argument("--parent", default="none", help="none, or a budget that trains the plain parent once")
    parser.add_argument("--budgets", default="finetune,finetune:epochs=8", help="one or two budgets, NAME[:KEY=VALUE,...]")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--specs", type=int, default=len(SPECS), help=f"the first N of the {len(SPECS)} specs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default="bench/out/noise.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    specs = SPECS[: args.specs]
    budgets = args.budgets.split(",") if ":" not in args.budgets else _split_budgets(args.budgets)
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["dataset"], entry["parent"], entry["budget"], entry["spec"], entry["seed"])] = entry

    data = load(args.dataset)
    print(f"# {data.summary()}; parent={args.parent}; {len(specs)} specs x {len(seeds)} seeds", flush=True)
    parent = None if args.parent == "none" else budget(args.parent)
    means = {}
    for label in budgets:
        name, overrides = parse_budget(label)
        evaluator = ReIDEvaluator(data, budget(name, **overrides), num_val_ids=50, latency=None, parent=parent,
                                  parent_path=path.parent / "parents")
        evaluator.prepare("resnet50")
        if evaluator.parent_seconds is not None:
            print(f"case=parent dataset={args.dataset} parent={args.parent} seconds={evaluator.parent_seconds:.0f}", flush=True)
        for spec, seed in itertools.product(specs, seeds):
            key = (args.dataset, args.parent, label, spec, seed)
            if key not in done:
                started = time.perf_counter()
                metrics = evaluator.score(spec, seed)
                done[key] = {"dataset": args.dataset, "parent": args.parent, "budget": label, "spec": spec, "seed": seed,
                             "seconds": time.perf_counter() - started, **metrics}
                with path.open("a") as handle:
                    handle.write(json.dumps(done[key]) + "\n")
            entry = done[key]
            print(f"case=run dataset={args.dataset} parent={args.parent} budget={label} spec={spec} seed={seed} "
                  f"mAP={entry['mAP']:.4f} rank1={entry['rank1']:.4f} seconds={entry['seconds']:.0f}", flush=True)
        runs = np.array([[done[(args.dataset, args.parent, label, s, seed)]["mAP"] for seed in seeds] for s in specs])
        seconds = [done[(args.dataset, args.parent, label, s, seed)]["seconds"] for s in specs for seed in seeds]
        floor, split = pooled_sd(runs.tolist()), icc(runs.tolist())
        # two-way view (every spec ran under the same seeds, so a seed's batches and initial weights are
        # shared): how much of the within-spec spread is a seed effect common to all specs, and what
        # is left for the difference of two specs compared under the same seed
        seed_effect = runs.mean(axis=0) - runs.mean()
        residual = runs - runs.mean(axis=1, keepdims=True) - seed_effect[None, :]
        paired_sd = float(np.sqrt((residual ** 2).sum() / ((len(specs) - 1) * (len(seeds) - 1))))
        pair_taus = [kendalltau(runs[:, a], runs[:, b]).statistic for a, b in itertools.combinations(range(len(seeds)), 2)]
        means[label] = runs.mean(axis=1)
        print(f"case=noise dataset={args.dataset} parent={args.parent} budget={label} specs={len(specs)} seeds={len(seeds)} "
              f"pooled_sd={floor.sd:.4f} icc={split.icc:.2f} arch_sd={split.arch_sd:.4f} seed_sd={seed_effect.std(ddof=1):.4f} "
              f"paired_sd={paired_sd:.4f} "
              f"tau_seed_pairs={np.mean(pair_taus):.2f} mAP_range={runs.mean(axis=1).min():.3f}..{runs.mean(axis=1).max():.3f} "
              f"seconds_median={np.median(seconds):.0f}", flush=True)
    if len(budgets) == 2:
        first, second = budgets
        print(f"case=budgets dataset={args.dataset} parent={args.parent} {first} vs {second}: "
              f"tau_seed_means={kendalltau(means[first], means[second]).statistic:.2f}", flush=True)


def _split_budgets(text: str) -> list[str]:
    """`finetune,finetune:epochs=8` -> two labels (commas inside a label's overrides follow a ':')."""
    labels, current = [], ""
    for part in text.split(","):
        if "=" in part and current and ":" in current:
            current += "," + part
        else:
            if current:
                labels.append(current)
            current = part
    labels.append(current)
    return labels


if __name__ == "__main__":
    main()
