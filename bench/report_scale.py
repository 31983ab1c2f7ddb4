"""How the report scales with the size of a study: `attnas-report`'s work (analysis, figures,
files) on synthetic studies of 1,000 to 10,000 trials, written straight into SQLite as
`attnas-search` writes them (spec, per-seed runs, metrics, measured_on, constraints, the
references with three seeds, re-proposals with `duplicate_of`), without training anything.

The truth behind the numbers is additive: planted stage effects on mAP plus seed noise (SD
0.01), a latency cost per block plus timing noise; specs are drawn uniformly from the 1-3 block
ResNet-50 space, so small studies hold few re-proposals and large ones many.

One line per size: trials, distinct architectures, seconds of CPU (this process), wall seconds,
peak resident memory (MB, this process: Python, torch and torchvision, which spec parsing needs
for the backbones' layouts, and the study held by Optuna), and the peak after the imports alone.
CPU seconds are of our own process only, but still slower when other processes share the cores'
caches: the final figure needs a quiet machine.

    python -m bench.report_scale [--sizes 1000,10000] [--seed 0] [--profile]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from attnas.search.analysis.report import write_report
from attnas.space import ArchSpec, SearchSpace

PLANTED = {("cnl", "layer3"): 0.03, ("se", "layer4"): 0.01, ("nl", "layer1"): -0.02}
LATENCY = {"se": 0.01, "eca": 0.005, "cbam": 0.02, "gc": 0.015, "cnl": 0.02, "nl": 0.15}


def _random_spec(space: SearchSpace, rng: np.random.Generator) -> ArchSpec:
    count = int(rng.integers(1, space.limit + 1))
    where = rng.choice(len(space.allowed_positions), count, replace=False)
    blocks = {space.allowed_positions[i]: str(rng.choice(space.blocks)) for i in sorted(where)}
    return ArchSpec(space.backbone, blocks)


def _fast_sqlite_writes() -> None:
    """This process only writes a throw-away file: no fsync per trial (10,000 trials took 25
    minutes on a busy disk). The report, timed in a child process, reads with the defaults."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def no_sync(connection, _record):
        connection.execute("PRAGMA synchronous=OFF")


def synthetic_study(storage: str, trials: int, seed: int = 0, name: str = "scale") -> optuna.Study:
    """A finished study of `trials` COMPLETE trials, as attnas-search stores them."""
    rng = np.random.default_rng(seed)
    space = SearchSpace("resnet50", "all", ("se", "eca", "cbam", "gc", "cnl", "nl"), max_blocks=3)
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["mAP", "latency_ratio"])
    study.set_user_attr("constraints", {"latency_ratio": 1.2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["mAP", "latency_ratio"])
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    first: dict[str, int] = {}
    batch = []
    context = {"latency_source": "timer", "device": "cpu", "threads": 2, "batch_size": 1, "input_size": [256, 128]}
    for number in range(trials):
        reference = number < 2
        spec = ArchSpec.parse("resnet50") if number == 0 else ArchSpec.parse("resnet50:layer3.5=cnl") if reference \
            else _random_spec(space, rng)
        stages = spec.stages()
        truth = 0.60 + sum(PLANTED.get((c.block, stages[p]), 0.0) for p, c in spec.blocks.items())
        seeds = [0, 1, 2] if reference else [0]
        runs = [float(truth + rng.normal(0, 0.01)) for _ in seeds]
        latency = 1.0 + sum(LATENCY[c.block] for c in spec.blocks.values()) + float(rng.normal(0, 0.003))
        per_seed = {"seeds": seeds, "mAP": runs, "rank1": [r + 0.2 for r in runs]}
        metrics = {"latency_ratio": latency, "latency_ratio_se": 0.003, "latency_ms": 20 * latency, "gflops": 4.1,
                   "params_m": 25.6, "mAP": float(np.mean(runs)), "mAP_se": 0.01, "rank1": float(np.mean(runs)) + 0.2}
        attrs = {"spec": str(spec), "num_blocks": spec.num_blocks, "claimed": float(number), "per_seed": per_seed,
                 "metrics": metrics, "worker": {"host": "bench", "pid": 1, "index": 0}, **metrics}
        if reference:
            attrs |= {"reference": True, "reference_spec": str(spec)}
        if str(spec) in first:
            attrs["duplicate_of"] = first[str(spec)]
        else:
            first[str(spec)] = number
            attrs["measured_on"] = context
        batch.append(optuna.trial.create_trial(
            params={"x": float(rng.random())}, distributions=distributions, values=[metrics["mAP"], latency],
            user_attrs=attrs, system_attrs={"constraints": [latency - 1.2]}))
        if len(batch) == 500:
            study.add_trials(batch)
            batch = []
    study.add_trials(batch)
    return study


def report(url: str, out: str, profile: bool = False) -> str:
    """Run in a child process: the report of study `scale` in `url`, timed from loading the study
    (as attnas-report does) to the last file written; peak memory is this process's."""
    imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch and torchvision alone: ~700 MB
    cpu, wall = time.process_time(), time.perf_counter()
    study = optuna.load_study(study_name="scale", storage=url)
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(write_report, study, out)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    else:
        write_report(study, out)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    distinct = json.loads((Path(out) / "summary.json").read_text())["architectures"]
    return (f"architectures {distinct:6d}  cpu {cpu:6.1f} s  wall {wall:6.1f} s  peak {peak:6.0f} MB "
            f"(after imports {imports:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated trial counts, one line each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the 30 costliest calls (cProfile)")
    parser.add_argument("--report", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.report:
        print(report(*args.report, profile=args.profile), flush=True)
        return
    print(f"report_scale: seed {args.seed}; synthetic ResNet-50 studies (1-3 of 6 blocks over 16 positions); "
          f"the report in a fresh process per size")
    _fast_sqlite_writes()
    with tempfile.TemporaryDirectory(prefix="attnas-report-scale-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            url = f"sqlite:///{Path(folder) / f'scale-{size}.db'}"
            synthetic_study(url, size, args.seed)
            child = subprocess.run([sys.executable, "-m", "bench.report_scale", "--report", url,
                                    str(Path(folder) / f"report-{size}"), *(["--profile"] if args.profile else [])],
                                   capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"report of {size} trials failed: {child.stderr.strip().splitlines()[-1:]}")
            *profile, line = child.stdout.rstrip().splitlines()
            if profile:
                print("\n".join(profile))
            print(f"trials {size:6d}  {line}", flush=True)


if __name__ == "__main__":
    main()
