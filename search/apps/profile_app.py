"""`attnas-profile`: measure a device's latency profile once (see `attnas.evaluators.latency.profile`)."""

from __future__ import annotations

import logging
import sys

import torch

from attnas.evaluators.latency.timing import LatencyConfig
from attnas.evaluators.latency.profile import measure_profile
from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import ProfileConfig
from attnas.space import make_space

log = logging.getLogger("attnas.profile")


def run(cfg: ProfileConfig) -> None:
    try:
        space = make_space(cfg.space)
        if cfg.device.type.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device=cuda asked for, but CUDA is not available on this machine; use device=cpu")
        if cfg.repeats < 3 or cfg.batch_size < 1 or min(cfg.input_size) < 1:
            raise ValueError(f"repeats must be >= 3 and batch_size, input_size >= 1; got {cfg.repeats}, {cfg.batch_size}, "
                             f"{list(cfg.input_size)}")
        config = LatencyConfig(device=cfg.device.type, threads=cfg.device.threads, batch_size=cfg.batch_size,
                               input_size=tuple(cfg.input_size), warmup=cfg.warmup, repeats=cfg.repeats)
        threads = cfg.device.threads or torch.get_num_threads()
        out = cfg.out or (f"profiles/{space.backbone}-{cfg.device.type}-{threads}t-b{cfg.batch_size}-"
                          f"{cfg.input_size[0]}x{cfg.input_size[1]}.json")
        log.info("profiling %s: %d single-block entries on %s", space.describe(), len(space.allowed_positions)
                 * len(space.blocks) * len(space.placements), cfg.device.type)
        profile = measure_profile(space, config, out, progress=cfg.progress, resume=cfg.resume)
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        sys.exit(2)
    print(f"wrote {out}: {len(profile.entries)} entries, plain {space.backbone} {profile.plain_ms:.1f} ms on {profile.describe()}")


main = hydra_app(run, "profile", "attnas-profile")

if __name__ == "__main__":
    main()
