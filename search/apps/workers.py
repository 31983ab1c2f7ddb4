"""Several worker processes on one study, on one machine: `attnas-search workers=N`.

Threads would share torch's global random state (the same spec and seed then gives another mAP
in every run) and one Python interpreter; processes do not. The first worker is the command
itself; it starts N-1 copies of its own command line with `workers=1 worker=i`, the same storage
and a share of the CPU threads each, waits for them, and writes the report once they are done.
Each worker times its candidates under the machine's `DeviceLock`, so no timing overlaps a
training step of another worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

log = logging.getLogger("attnas.search")

#: overrides a worker gets from the first one, not from the command line
_OWN = ("workers", "worker", "storage", "report", "progress", "device.threads")


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
