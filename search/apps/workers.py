"""Several worker processes on one study, on one machine: `attnas-search workers=N`, and which
device each worker of a study runs on.

Threads would share torch's global random state (the same spec and seed then gives another mAP
in every run) and one Python interpreter; processes do not. The first worker is the command
itself; it starts N-1 copies of its own command line with `workers=1 worker=i`, the same storage
and a share of the CPU threads each, waits for them, and writes the report once they are done.
Each worker times its candidates under its device's lock, so no timing overlaps a training step
on that device.

With `device=cuda` every worker gets its own GPU (`place_worker`): worker i of `workers=N`, of a
`--multirun worker=0,1,...` sweep (Hydra's joblib launcher) or the launcher's local rank runs on
visible GPU i mod count; a SLURM job with `gpus_per_node=1` sees one GPU, its own. Placement is
not identity: the study, its parent and its supernet are the same on every GPU.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from attnas.evaluators.device import check_device, place

log = logging.getLogger("attnas.search")

#: overrides a worker gets from the first one, not from the command line
_OWN = ("workers", "worker", "storage", "report", "progress", "device.threads")


def worker_index(worker: int | None) -> int:
    """This process's index among a study's workers: `worker` when given, else the job's number
    in a Hydra sweep, else the launcher's local rank (LOCAL_RANK, SLURM_LOCALID), else 0."""
    if worker is not None:
        return worker
    try:
        config = HydraConfig.get()
        if config.mode == RunMode.MULTIRUN and config.job.num is not None:
            return int(config.job.num)
    except ValueError:  # outside a Hydra app
        pass
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def place_worker(cfg: Any) -> str:
    """The device this worker runs on (`cfg.device.type` checked, then placed); one line when it is bad."""
    device = check_device(cfg.device.type)
    placed = place(device, worker_index(cfg.worker))
    if placed != device:
        log.info("worker %d runs on %s", worker_index(cfg.worker), placed)
    return placed


def threads_per_worker(workers: int, threads: int | None) -> int:
    return threads or max((os.cpu_count() or 1) // workers, 1)


def spawn(workers: int, first_worker: int, storage: str, threads: int, study_dir: Path) -> list[subprocess.Popen]:
    """Start workers first_worker+1 .. first_worker+workers-1 with this job's overrides."""
    overrides = [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").split("=")[0] not in _OWN]
    children = []
    for index in range(1, workers):
        worker = first_worker + index
        command = [sys.executable, "-m", "attnas.search.apps.search_app", *overrides, "workers=1", f"worker={worker}",
                   f"storage={storage}", "report=false", "progress=false", f"device.threads={threads}",
                   f"hydra.run.dir={study_dir}", f"hydra.job.name=worker{worker}"]
        children.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    log.info("started %d more worker process(es) with %d thread(s) each; their logs: %s/worker*.log", len(children),
             threads, study_dir)
    return children


def stop(children: list[subprocess.Popen], signum: int = signal.SIGTERM) -> None:
    """Pass an interrupt on: each worker marks its running trial FAIL and exits."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)
    for child in children:
        child.wait()


def wait(children: list[subprocess.Popen]) -> None:
    for child in children:
        code = child.wait()
        if code not in (0, 1):  # 1: that worker saw only failed trials, which the study reports anyway
            log.warning("worker process %d exited with status %d", child.pid, code)
