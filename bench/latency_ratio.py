"""Stability of the latency ratio: 5 repeated measurements of the same specs, in one process.

The ratio to the plain backbone timed interleaved is what the search optimises; this prints its
spread ((max - min) / mean over the repeats; goal <= 3%) beside the spread of the raw median
milliseconds of the same runs, which a noisy machine moves far more.

    python -m bench.latency_ratio [--repeats 20] [--threads 2] [--specs SPEC ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from attnas.evaluators import LatencyConfig, LatencyEvaluator, TimedLatency

SPECS = ["resnet50:layer3.5=cnl", "resnet50:layer2.3=cnl,layer3.5=cnl,layer4.2=cnl", "resnet50:layer1.2=nl"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed pairs per measurement")
    parser.add_argument("--measurements", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--specs", nargs="+", default=SPECS, help="specs to time, each against its plain backbone")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    evaluator = LatencyEvaluator(TimedLatency(LatencyConfig(threads=args.threads, repeats=args.repeats, warmup=3)))
    for spec in args.specs:
        runs = [evaluator.measure_cost(spec) for _ in range(args.measurements)]
        ratios = np.array([r["latency_ratio"] for r in runs])
        ms = np.array([r["latency_ms"] for r in runs])
        print(f"spec={spec:<48} ratio_mean={ratios.mean():.4f} ratio_spread={np.ptp(ratios) / ratios.mean() * 100:.2f}% "
              f"ms_mean={ms.mean():.1f} ms_spread={np.ptp(ms) / ms.mean() * 100:.2f}% threads={args.threads} "
              f"repeats={args.repeats}", flush=True)


if __name__ == "__main__":
    main()
