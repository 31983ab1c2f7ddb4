"""`attnas-profile`: measure a device's latency profile once (see `attnas.evaluators.latency.profile`).

Exit status 0 when every entry was measured; 3 when some stayed disturbed and were left out (the
file says which and why; the same command measures only those); 2 for a bad setting.
"""

from __future__ import annotations

import logging
import sys

import torch

from attnas.evaluators.device import check_device, device_type
from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.latency.profile import measure_profile
from attnas.evaluators.latency.runtimes import check_runtime
from attnas.evaluators.latency.timing import LatencyConfig
from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import ProfileConfig
from attnas.space import make_space

log = logging.getLogger("attnas.profile")


def run(cfg: ProfileConfig) -> None:
    try:
        space = make_space(cfg.space)
        check_device(cfg.device.type)
        check_runtime(cfg.runtime, cfg.precision, cfg.device.type, cfg.cuda_graphs, cfg.channels_last)
        if cfg.repeats < 3 or cfg.batch_size < 1 or min(cfg.input_size) < 1 or cfg.retries < 0:
            raise ValueError(f"repeats must be >= 3, batch_size and input_size >= 1, retries >= 0; got {cfg.repeats}, "
                             f"{cfg.batch_size}, {list(cfg.input_size)}, {cfg.retries}")
        DEVICE_LOCK.configure(cfg.device.lock_dir)
        config = LatencyConfig(device=cfg.device.type, threads=cfg.device.threads, batch_size=cfg.batch_size,
                               input_size=tuple(cfg.input_size), warmup=cfg.warmup, repeats=cfg.repeats,
                               channels_last=cfg.channels_last, runtime=cfg.runtime, precision=cfg.precision,
                               cuda_graphs=cfg.cuda_graphs, max_seconds=cfg.max_seconds)
        threads = cfg.device.threads or torch.get_num_threads()
        conditions = "" if (cfg.runtime, cfg.precision) == ("eager", "fp32") else f"-{cfg.runtime}-{cfg.precision}"
        out = cfg.out or (f"profiles/{space.backbone}-{device_type(cfg.device.type)}-{threads}t-b{cfg.batch_size}-"
                          f"{cfg.input_size[0]}x{cfg.input_size[1]}{conditions}.json")
        log.info("profiling %s: %d single-block entries on %s (%s %s)", space.describe(), len(space.allowed_positions)
                 * len(space.blocks) * len(space.placements), cfg.device.type, cfg.runtime, cfg.precision)
        profile = measure_profile(space, config, out, progress=cfg.progress, resume=cfg.resume, retries=cfg.retries)
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        sys.exit(2)
    print(f"wrote {out}: {len(profile.entries)} entries, plain {space.backbone} {profile.plain_ms:.1f} ms on {profile.describe()}")
    if profile.disturbed:
        print(f"{len(profile.disturbed)} entries stayed disturbed after {cfg.retries + 1} timings each and were not saved "
              f"({', '.join(sorted(profile.disturbed)[:5])}{', ...' if len(profile.disturbed) > 5 else ''}; reasons in the "
              f"file); run the same command on a quieter machine: it measures only those", file=sys.stderr)
        sys.exit(3)


main = hydra_app(run, "profile", "attnas-profile")

if __name__ == "__main__":
    main()
