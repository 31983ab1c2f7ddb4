"""Which runtime ranks the paper's placements as their FLOPs do: eager PyTorch against ONNX Runtime
(and TensorRT on a GPU), side by side in one run.

The specs: the references of `conf/space/resnet50.yaml` (plain, SE and C-NL at layer3.5, three
C-NL blocks) and single blocks where the paper's claims live (NL early and late, C-NL at
layer4, SE and ECA early). Each is timed against the plain ResNet-50 interleaved (the search's
latency ratio), `--rounds` times, on every runtime in the same process; the order of runtimes is
rotated per round so a slow phase of the machine does not hit one runtime only. FLOPs are exact
(counted, not timed). For each runtime: Kendall's tau between its latency ranking and the FLOP
ranking, per round (mean and range over rounds), and the placements whose order disagrees.

    python -m bench.runtime_ranking                                   # this CPU: eager vs onnxruntime, fp32
    python -m bench.runtime_ranking --device cuda --runtimes eager,onnxruntime,tensorrt --precision fp16

It times: run it alone on the machine (a loaded machine moves the ratios of small blocks by more
than their cost).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.stats import kendalltau

from attnas.evaluators.cost import model_cost
from attnas.evaluators.device import check_device
from attnas.evaluators.latency.disturbance import Disturbance
from attnas.evaluators.latency.runtimes import check_runtime
from attnas.evaluators.latency.timing import LatencyConfig, measure_latency_ratio
from attnas.models import build_model

REFERENCES = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/space/resnet50.yaml").read_text())["references"]
SINGLE_BLOCKS = ["resnet50:layer1.2=nl", "resnet50:layer3.5=nl", "resnet50:layer4.2=cnl", "resnet50:layer1.0=se",
                 "resnet50:layer2.3=eca", "resnet50:layer4.2=se"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="eager,onnxruntime")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="timed pairs per ratio")
    parser.add_argument("--rounds", type=int, default=3, help="every ratio measured this many times")
    parser.add_argument("--specs", type=int, default=None, help="only the first N specs (a brief check)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtimes = args.runtimes.split(",")
    try:
        check_device(args.device, "--device")
        for runtime in runtimes:
            check_runtime(runtime, args.precision, args.device)
    except ValueError as error:
        parser.error(str(error))
    specs = [s for s in [*REFERENCES, *SINGLE_BLOCKS] if s != "resnet50"][: args.specs]
    torch.manual_seed(args.seed)
    plain = build_model("resnet50", num_classes=1)
    base = model_cost(plain, (256, 128)).gflops
    added = {spec: model_cost(build_model(spec, num_classes=1), (256, 128)).gflops - base for spec in specs}
    models = {spec: build_model(spec, num_classes=1) for spec in specs}
    print(f"# {len(specs)} specs vs plain resnet50 ({base:.2f} GFLOPs), {args.device}, {args.precision}, threads={args.threads}, "
          f"batch 1, 256x128, {args.repeats} pairs x {args.rounds} rounds, seed {args.seed}", flush=True)
    ratios = {(runtime, spec): [] for runtime in runtimes for spec in specs}
    disturbed = {runtime: 0 for runtime in runtimes}  # timings the search would flag (busy machine, impossible ratio)
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = runtimes[round_ % len(runtimes):] + runtimes[: round_ % len(runtimes)]
        for spec, runtime in itertools.product(specs, order):
            config = LatencyConfig(device=args.device, threads=args.threads, warmup=3, repeats=args.repeats, runtime=runtime,
                                   precision=args.precision)
            timing = measure_latency_ratio(models[spec], plain, config)
            ratios[(runtime, spec)].append(timing.ratio)
            disturbed[runtime] += bool(Disturbance().problems(models[spec].spec.num_blocks, timing))
    for spec in specs:
        cells = " ".join(f"{runtime}={np.mean(ratios[(runtime, spec)]):.3f}"
                         f"[{min(ratios[(runtime, spec)]):.3f},{max(ratios[(runtime, spec)]):.3f}]" for runtime in runtimes)
        print(f"case=spec spec={spec:<48} added_mflops={added[spec] * 1e3:8.1f} {cells}")
    flops = [added[spec] for spec in specs]
    taus = {}
    for runtime in runtimes:
        per_round = [kendalltau(flops, [ratios[(runtime, spec)][r] for spec in specs]).statistic for r in range(args.rounds)]
        means = [np.mean(ratios[(runtime, spec)]) for spec in specs]
        swapped = [f"{a.split(':')[1]}<{b.split(':')[1]}" for a, b in itertools.combinations(specs, 2)
                   if (added[a] - added[b]) * (means[specs.index(a)] - means[specs.index(b)]) < 0]
        taus[runtime] = float(np.mean(per_round))
        print(f"case=ranking runtime={runtime:<12} kendall_tau_vs_flops={taus[runtime]:+.3f} (rounds {min(per_round):+.3f}.."
              f"{max(per_round):+.3f}) disturbed_timings={disturbed[runtime]}/{len(specs) * args.rounds} "
              f"pairs_against_flops={len(swapped)}/{len(specs) * (len(specs) - 1) // 2} "
              f"{' '.join(swapped[:6])}{' ...' if len(swapped) > 6 else ''}")
    best = [r for r, t in taus.items() if t == max(taus.values())]
    print(f"case=verdict closest_to_flop_order={'/'.join(best)}{' (tie)' if len(best) > 1 else ''} taus={' '.join(f'{r}={t:+.3f}' for r, t in taus.items())} "
          f"seconds={time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
