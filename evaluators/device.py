"""The device a search trains and times on: how it is written, checked and placed.

A device string says where one process runs: `cpu`, `cuda` (a GPU chosen per worker) or
`cuda:N` (pinned to visible GPU N). Where a worker runs is placement, not identity: workers of
one study on cuda:0 and cuda:1 produce comparable numbers and share one parent, so a study's
identity (evaluator fingerprints, the parent's and supernet's file names) holds only the device
*type* (`device_type`). `place` gives each worker its GPU, round-robin over the visible ones.

`check_device` is the one check of a device string for every app (attnas-search, -profile,
-cost, -train): a malformed string or a device this machine lacks is refused in one line, before
any work.

The lock that keeps latency timing and other work on one physical device apart is in
`attnas.evaluators.device_lock`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

VALID_FORMS = "cpu, cuda (one GPU per worker, round-robin), cuda:N (visible GPU N)"


@dataclass
class DeviceConfig:
    type: str = "cpu"  # cpu | cuda (each worker gets its own visible GPU, round-robin) | cuda:N (pinned to GPU N)
    threads: Optional[int] = None  # CPU threads for torch; None keeps torch's default (all cores)
    # where the device locks live (one file per physical device); None: $ATTNAS_LOCK_DIR, else
    # ~/.cache/attnas/locks. Point every job that shares a machine (containers, SLURM jobs with a private /tmp) here
    lock_dir: Optional[str] = None


def _option(option: str, value: str) -> str:
    """How the user wrote the setting: `--device cuda` for argparse flags, `device.type=cuda` for Hydra."""
    return f"{option} {value}" if option.startswith("--") else f"{option}={value}"


def parse_device(text: str, option: str = "device.type") -> tuple[str, int | None]:
    """(type, index or None) of a device string; a malformed one is refused in one line."""
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", str(text).strip())
    if match is None:
        raise ValueError(f"{_option(option, repr(text))} is not a device; valid forms: {VALID_FORMS}")
    return match[1], None if match[2] is None else int(match[2])


def device_type(text: str) -> str:
    """`cuda` for `cuda:1`: what a study's identity holds of a device (where it ran is placement)."""
    return parse_device(text)[0]


def visible_devices(kind: str) -> int:
    """How many devices of `kind` this process can use (CUDA_VISIBLE_DEVICES applied); a CPU is one."""
    if kind != "cuda":
        return 1
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(text: str, option: str = "device.type") -> str:
    """`text` when it names a device this machine has; else one line saying what is wrong and what
    is valid. `option` is how the app spells the setting (`device.type`, `--device`)."""
    kind, index = parse_device(text, option)
    if kind == "cuda":
        count = visible_devices("cuda")
        alternative = "--device cpu" if option.startswith("--") else "device=cpu"
        if count == 0:
            raise ValueError(f"{_option(option, text)}: CUDA is not available on this machine; use {alternative}")
        if index is not None and index >= count:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise ValueError(f"{_option(option, text)}: this machine has {count} visible CUDA device(s), cuda:0..cuda:{count - 1}"
                             f"{f' (CUDA_VISIBLE_DEVICES={visible})' if visible is not None else ''}")
    return str(text).strip()


def place(text: str, worker: int) -> str:
    """The device worker number `worker` runs on: `cuda` round-robin over the visible GPUs
    (`cuda:<worker mod count>`), a pinned `cuda:N` as given, `cpu` as is. Under a launcher that
    gives each job its own GPU (SLURM's gpus_per_node=1 sets CUDA_VISIBLE_DEVICES), one GPU is
    visible and every job gets cuda:0, which is its own."""
    kind, index = parse_device(text)
    if index is not None:
        return str(text).strip()
    count = visible_devices(kind)
    if kind == "cpu" and count <= 1:
        return "cpu"
    return f"{kind}:{worker % max(count, 1)}"


# the lock's old home: callers that import it from here keep working
from attnas.evaluators.device_lock import DEVICE_LOCK, DeviceLock  # noqa: E402,F401
