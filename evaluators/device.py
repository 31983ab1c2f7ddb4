"""The device a search trains and times on, and the lock that keeps its timing and training apart.

A latency measured while another process trains on the same device is wrong; `DeviceLock`
gives a timing the device to itself for its few seconds.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator, Optional

from attnas.evaluators.artefacts import file_lock


@dataclass
class DeviceConfig:
    type: str = "cpu"  # cpu | cuda (training and timing)
    threads: Optional[int] = None  # CPU threads for torch; None keeps torch's default (all cores)


class DeviceLock:
    """Keeps latency timing and training apart on one machine, across threads and processes.

    A timing takes the lock exclusively; every training step (and feature extraction batch)
    takes it shared, for the length of one step. A timing therefore waits for the steps in
    flight, then has the machine to itself for its few seconds, and training resumes. The
    turnstile gives a waiting timing priority over new steps, so workers that train back to
    back cannot starve it. `flock` locks belong to each open file, so threads of one process
    exclude each other like processes do.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        import tempfile

        self.path = Path(path) if path else Path(tempfile.gettempdir()) / f"attnas-device-{os.getuid()}"

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with file_lock(f"{self.path}.turnstile"), file_lock(self.path):
            yield

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with file_lock(f"{self.path}.turnstile", shared=True):
            pass  # blocks while a timing waits for, or holds, the machine
        with file_lock(self.path, shared=True):
            yield


#: the machine's lock, used by the timer and by training unless told otherwise
DEVICE_LOCK = DeviceLock()
