"""Proxy fidelity and cost: is the proxy budget's ranking of architectures the long training's?

For 8 ResNet-50 specs (plain to three blocks) on the synthetic set and on real CUHK01 images:
seconds per candidate under the proxy budget (training + validation + latency), validation mAP
under the proxy (several seeds) and under a 5x longer training (CPU), and Kendall's tau between
them (the latency ratio's stability is bench/latency_ratio.py). Results are appended
to bench/out/proxy.jsonl as they come, so an interrupted run resumes where it stopped.

A second seed of the long training (`--long-seeds 0,1`) measures how reproducible the reference
ranking itself is: no proxy can agree with the long training better than the long training
agrees with itself, so `tau_long_seed0_vs_seed1` bounds what `tau_per_seed` can show.

    python -m bench.proxy [--datasets synthetic,cuhk01] [--seeds 0,1] [--long-seeds 0] [--long-factor 5] [--parent parent --lr 3.5e-4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attnas.evaluators import LatencyConfig, ReIDEvaluator, TimedLatency, budget
from attnas.evaluators.datasets import load_dataset
from attnas.evaluators.datasets.synthetic import SynthConfig, generate

SPECS = [
    "resnet50",
    "resnet50:layer3.5=se",
    "resnet50:layer3.5=cnl",
    "resnet50:layer4.0=cbam",
    "resnet50:layer1.2=nl",
    "resnet50:layer2.3=eca,layer3.5=gc",
    "resnet50:layer3.0=nl,layer4.2=se",
    "resnet50:layer2.3=cnl,layer3.5=cnl,layer4.2=cnl",
]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def dataset(name: str):
    if name == "synthetic":
        root = Path(tempfile.gettempdir()) / "attnas-bench-synthetic"
        if not (root / "bounding_box_train").is_dir():
            generate(root, SynthConfig())
        return load_dataset("synthetic", root)
    return load_dataset(name, SHARED / name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="synthetic,cuhk01")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--long-seeds", default="0", help="seeds of the long training; the first is the reference")
    parser.add_argument("--long-factor", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parent", default=None, help="a budget (parent): every candidate starts from the plain backbone "
                        "trained once with it; default: from scratch")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of the candidates' training")
    parser.add_argument("--results", default="bench/out/proxy.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    long_seeds = [int(s) for s in args.long_seeds.split(",")]
    results_path = Path(args.results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["dataset"], entry["spec"], entry["run"])] = entry

    latency = TimedLatency(LatencyConfig(threads=args.threads, input_size=(256, 128), repeats=20, warmup=3))

    for name in args.datasets.split(","):
        data = dataset(name)
        print(f"# {data.summary()}", flush=True)
        lr = {"lr": args.lr} if args.lr is not None else {}
        proxy_cfg = budget("proxy", **lr)
        runs = [(f"proxy_seed{s}", budget("proxy", seed=s, **lr)) for s in seeds]
        # the first long run keeps the name "long" so results of earlier single-seed runs are reused
        long_runs = [("long" if i == 0 else f"long_seed{s}", budget("proxy", epochs=proxy_cfg.epochs * args.long_factor, seed=s, **lr))
                     for i, s in enumerate(long_seeds)]
        runs += long_runs
        parent = budget(args.parent) if args.parent else None
        for run, cfg in runs:
            evaluator = ReIDEvaluator(data, cfg, num_val_ids=50, latency=latency if run.startswith("proxy") else None,
                                      parent=parent, parent_path=results_path.parent / "parents")
            if parent is not None:
                path = evaluator.parent_weights("resnet50")
                if evaluator.parent_seconds is not None:
                    print(f"# parent resnet50 trained in {evaluator.parent_seconds:.0f} s -> {path}", flush=True)
            for spec in SPECS:
                key = (name, spec, run)
                if key not in done:
                    started = time.perf_counter()
                    metrics = evaluator.score(spec, cfg.seed)
                    if evaluator.latency is not None:
                        metrics |= evaluator.measure_cost(spec)
                    done[key] = {"dataset": name, "spec": spec, "run": run, "seconds": time.perf_counter() - started, **metrics}
                    with results_path.open("a") as handle:
                        handle.write(json.dumps(done[key]) + "\n")
                entry = done[key]
                print(f"dataset={name} run={run} spec={spec:<48} mAP={entry['mAP']:.4f} rank1={entry['rank1']:.4f} "
                      f"seconds={entry['seconds']:.0f}", flush=True)
        proxy_runs = [run for run, _ in runs if run.startswith("proxy")]
        maps = {run: np.array([done[(name, s, run)]["mAP"] for s in SPECS]) for run, _ in runs}
        long = maps["long"]
        taus = [kendalltau(maps[run], long).statistic for run in proxy_runs]
        mean_proxy = np.mean([maps[run] for run in proxy_runs], axis=0)
        seconds = [done[(name, s, run)]["seconds"] for s in SPECS for run in proxy_runs]
        seed_tau = kendalltau(maps[proxy_runs[0]], maps[proxy_runs[1]]).statistic if len(proxy_runs) > 1 else float("nan")
        extra = ""
        if len(long_runs) > 1:
            mean_long = np.mean([maps[run] for run, _ in long_runs], axis=0)
            extra = (f" tau_long_seed{long_seeds[0]}_vs_seed{long_seeds[1]}={kendalltau(long, maps[long_runs[1][0]]).statistic:.2f}"
                     f" tau_seed_mean_vs_long_mean={kendalltau(mean_proxy, mean_long).statistic:.2f}")
        print(f"case=summary dataset={name} specs={len(SPECS)} proxy_seconds_median={np.median(seconds):.0f} "
              f"proxy_seconds_max={max(seconds):.0f} tau_per_seed={','.join(f'{t:.2f}' for t in taus)} "
              f"tau_seed_mean={kendalltau(mean_proxy, long).statistic:.2f} tau_seed0_vs_seed1={seed_tau:.2f}{extra} "
              f"proxy_mAP_range={mean_proxy.min():.3f}..{mean_proxy.max():.3f} long_mAP_range={long.min():.3f}..{long.max():.3f}",
              flush=True)


if __name__ == "__main__":
    main()
