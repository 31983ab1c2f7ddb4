"""Progress with the time left, for the one-time steps that can take a while (generating the
synthetic set, reading a big folder's file names): nobody should stare at a silent job.

On a terminal it is a tqdm bar; anywhere else (a log file, a CI job, `nohup`) a log line every
`every` seconds, so a job's log is never silent for long either. A step that ends within `delay`
seconds shows nothing: short steps stay quiet.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_log = logging.getLogger("attnas.progress")


def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def status(done: int, total: int | None, elapsed: float, unit: str) -> str:
    """'120 of 300 ids (40%), 35 s so far, about 52 s left'."""
    if not total:
        return f"{done} {unit} so far, {duration(elapsed)}"
    left = elapsed / done * (total - done) if done else float("nan")
    eta = f", about {duration(left)} left" if done else ""
    return f"{done} of {total} {unit} ({100 * done / total:.0f}%), {duration(elapsed)} so far{eta}"


def progress(items: Iterable[T], what: str, total: int | None = None, unit: str = "items", delay: float = 3.0,
             every: float = 15.0, log: logging.Logger | None = None) -> Iterator[T]:
    """`items`, reported as `what` once the step has taken `delay` seconds: a bar on a terminal,
    else a log line (`log`, default `attnas.progress`) every `every` seconds."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=what, total=total, unit=f" {unit}", delay=delay, leave=False)
        return
    log = log or _log
    started = time.monotonic()
    report_at = started + delay
    for done, item in enumerate(items):
        now = time.monotonic()
        if now >= report_at:
            log.info("%s: %s", what, status(done, total, now - started, unit))
            report_at = now + every
        yield item
