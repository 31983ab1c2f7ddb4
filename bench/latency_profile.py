"""Is a device profile a good enough latency model? Predicted vs measured, end to end.

Measures (or reuses) the profile of the paper's ResNet-50 space on this device, then times >= 50
random specs with 1-3 blocks and the references end to end (interleaved with the plain
backbone, as the search's timer does) and compares them with the additive prediction. Prints
one line per spec and the median and 95th-percentile absolute error of the ratio, in
percentage points of the plain backbone's latency (goal on the CPU: median <= 2, p95 <= 5).
Also fits, on the validation specs, whether a correction for two blocks in one stage is needed:
the mean residual of specs with two blocks in one stage against the others.

    python -m bench.latency_profile [--profile profiles/resnet50-cpu-2t-b1-256x128.json] [--specs 50] [--repeats 30]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.latency.timing import LatencyConfig, measure_latency_ratio
from attnas.evaluators.latency.profile import measure_profile
from attnas.models import build_model
from attnas.space import ArchSpec, SearchSpace

REFERENCES = ["resnet50:layer3.5=se", "resnet50:layer3.5=cnl", "resnet50:layer2.3=cnl,layer3.5=cnl,layer4.2=cnl",
              "resnet50:layer1.2=nl", "resnet50:layer2.3=nl,layer3.5=nl"]


def random_specs(space: SearchSpace, count: int, seed: int) -> list[ArchSpec]:
    rng, specs = random.Random(seed), set()
    while len(specs) < count:
        k = rng.randint(1, 3)
        positions = rng.sample(space.allowed_positions, k)
        specs.add(ArchSpec(space.backbone, {p: rng.choice(space.blocks) for p in positions}))
    return sorted(specs, key=lambda s: (s.num_blocks, str(s)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="an existing profile to validate (default: measure one)")
    parser.add_argument("--specs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=30, help="timed pairs per measurement, profile and validation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = LatencyConfig(device=args.device, threads=args.threads, warmup=5, repeats=args.repeats)
    space = SearchSpace("resnet50", "all", max_blocks=3)
    path = args.profile or f"profiles/resnet50-{args.device}-{args.threads}t-b1-256x128.json"
    started = time.perf_counter()
    profile = measure_profile(space, config, path, progress=False)
    if profile.disturbed:  # attnas-profile leaves entries it could not time quietly out of the file
        raise SystemExit(f"{len(profile.disturbed)} profile entries stayed disturbed ({', '.join(sorted(profile.disturbed)[:3])}, ...): "
                         f"run again on a quiet machine; it measures only those")
    print(f"case=profile path={path} entries={len(profile.entries)} plain_ms={profile.plain_ms:.1f} device={profile.describe()} "
          f"seconds={time.perf_counter() - started:.0f}", flush=True)
    plain = build_model("resnet50", num_classes=1)
    rows = []
    for spec in [*map(ArchSpec.parse, REFERENCES), *random_specs(space, args.specs, args.seed)]:
        predicted, predicted_se = profile.predict(spec)
        with DEVICE_LOCK.exclusive(args.device):
            timing = measure_latency_ratio(build_model(spec, num_classes=1), plain, config)
        error = 100 * (predicted - timing.ratio)
        stages = list(spec.stages().values())
        shared = len(stages) != len(set(stages))
        rows.append((spec, predicted, timing.ratio, error, shared))
        print(f"case=spec spec={spec} blocks={spec.num_blocks} predicted={predicted:.4f} measured={timing.ratio:.4f} "
              f"measured_se={timing.ratio_se:.4f} error_points={error:+.2f}", flush=True)
    errors = np.abs([r[3] for r in rows])
    by_blocks = {k: np.median(np.abs([r[3] for r in rows if r[0].num_blocks == k])) for k in (1, 2, 3)}
    shared = [r[3] for r in rows if r[4]]
    apart = [r[3] for r in rows if not r[4] and r[0].num_blocks > 1]
    print(f"case=summary device={args.device} specs={len(rows)} median_abs_error_points={np.median(errors):.2f} "
          f"p95_abs_error_points={np.percentile(errors, 95):.2f} max_abs_error_points={errors.max():.2f} "
          f"median_by_blocks={','.join(f'{k}:{v:.2f}' for k, v in by_blocks.items())} "
          f"mean_signed_error_two_in_one_stage={np.mean(shared) if shared else float('nan'):+.2f} (n={len(shared)}) "
          f"mean_signed_error_apart={np.mean(apart) if apart else float('nan'):+.2f} (n={len(apart)})", flush=True)


if __name__ == "__main__":
    main()
