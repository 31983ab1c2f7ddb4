"""Progress of a training: log lines with the elapsed time and an ETA, and an optional bar.

A parent, a supernet or a full training runs for minutes to hours; without a line now and then a
user cannot tell a slow run from a hung one. A line is written at the end of every epoch and, within
a long epoch, at the first loss read after `every_seconds` of silence. The ETA assumes the remaining
steps go as fast as the ones so far (validation time included).
"""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    """`42 s`, `3m05s`, `2h07m`: short enough for a log line."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class TrainingProgress:
    """Counts steps of one training of `steps` steps over `epochs` epochs named `what`."""

    def __init__(self, what: str, steps: int, epochs: int, log: logging.Logger, lines: bool, bar: bool,
                 every_seconds: float = 60.0) -> None:
        self.what, self.steps, self.epochs, self.log, self.lines = what, steps, epochs, log, lines
        self.every_seconds = every_seconds
        self.started = self.last_line = time.perf_counter()
        self.bar = tqdm(total=steps, desc=f"training {what}", disable=not bar, leave=False, unit="step")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self, done: int) -> float:
        return self.elapsed() / done * (self.steps - done) if done else float("nan")

    def step(self) -> None:
        self.bar.update()

    def loss_read(self, done: int, epoch: int, loss: float, epoch_end: bool) -> None:
        """After a host read of the loss: `loss` is the epoch's mean so far, `done` the steps so far."""
        self.bar.set_postfix(loss=f"{loss:.3f}", epoch=f"{epoch + 1}/{self.epochs}")
        now = time.perf_counter()
        if self.lines and (epoch_end or now - self.last_line >= self.every_seconds):
            self.last_line = now
            self.log.info("training %s: %s %d/%d, step %d/%d, loss %.3f, %s elapsed, ETA %s", self.what,
                          "epoch" if epoch_end else "in epoch", epoch + 1, self.epochs, done, self.steps, loss,
                          duration(self.elapsed()), duration(self.eta(done)) if done < self.steps else "0 s")

    def close(self) -> None:
        self.bar.close()
