"""Cost of every attention block at every ResNet-50 position: our version of the paper's cost table.

For each block type at each of the 16 positions (`post` placement) and for ResNet-101: batch-1
latency at 256x128 as a ratio to plain ResNet-50 timed interleaved in the same process, plus
the FLOPs and parameters the block adds. One line per case.

    python -m bench.block_cost [--repeats 12] [--threads 2] [--blocks se,nl] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from attnas.evaluators import LatencyConfig, measure_latency_ratio, model_cost
from attnas.models import build_model
from attnas.models import BLOCKS, layout
from attnas.space import ArchSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12, help="timed forward passes per model (and baseline)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", default=",".join(BLOCKS))
    parser.add_argument("--num-classes", type=int, default=751, help="Market-1501 training ids")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    cfg = LatencyConfig(device=args.device, threads=args.threads, batch_size=1, input_size=(256, 128),
                        warmup=args.warmup, repeats=args.repeats)
    baseline = build_model("resnet50", args.num_classes)
    base_cost = model_cost(baseline)
    print(f"# device={args.device} threads={args.threads} torch={torch.__version__} input=256x128 batch=1 "
          f"repeats={args.repeats}; baseline resnet50 {base_cost.gflops:.2f} GFLOPs "
          f"{base_cost.backbone_params_m:.2f} M params (without classifier)")
    started = time.perf_counter()
    specs = [ArchSpec.parse("resnet101")] + [
        ArchSpec("resnet50", {pos: block}) for block in args.blocks.split(",") for pos in layout("resnet50").positions
    ]
    for spec in specs:
        model = build_model(spec, args.num_classes)
        timing = measure_latency_ratio(model, baseline, cfg)
        cost = model_cost(model)
        print(
            f"spec={str(spec):<26} ratio={timing.ratio:6.3f} model_ms={timing.model.median_ms:7.1f} "
            f"base_ms={timing.baseline.median_ms:6.1f} added_mflops={(cost.gflops - base_cost.gflops) * 1e3:+8.1f} "
            f"added_params_m={cost.backbone_params_m - base_cost.backbone_params_m:+7.3f}",
            flush=True,
        )
    print(f"# {len(specs)} cases in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
