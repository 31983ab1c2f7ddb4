"""The lock that keeps latency timing and other work on one physical device apart, across threads,
processes, containers and jobs, without letting anyone starve.

A latency measured while another process trains on the same device is wrong. So a timing takes
its device's lock exclusively, and work (a training step, a batch of feature extraction) takes it
shared. What makes it hold, and what keeps it fair:

* **One lock per physical device**, in a directory the user sets (`device.lock_dir`, default
  `$ATTNAS_LOCK_DIR` or `~/.cache/attnas/locks`; not the temporary directory, which containers and
  SLURM jobs often get privately). A GPU is named by its UUID, so `cuda:0` of a job that sees
  only GPU 3 and `cuda:3` of another job are the same lock; the CPU by the kernel's boot id,
  which containers on one host share. Timing on one GPU does not pause training on another.
* **Synchronised before release**: GPU work is launched asynchronously, so a holder waits for its
  device to finish before it lets a timing in; otherwise the kernels it queued would run during
  the timing.
* **A turnstile** gives a waiting timing priority over new work, so trainers that step back to
  back cannot starve it; a training loop holds its share across steps (`hold()`) and hands it
  over, synchronised, only when a timing waits: no host synchronisation per step otherwise.
* **Bounded**: a timing waits at most `wait_s` for the device (then it times anyway and the
  result is flagged) and holds it only for its own few seconds (the timer's `max_seconds`), so a
  disturbed machine cannot make it hold everyone for minutes.

`flock` locks belong to an open file, so threads of one process exclude each other like
processes do, and the kernel releases a dead holder's locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Iterator

import torch

#: seconds between a training loop's checks, while it is between steps, for a timing that waits
WATCH_INTERVAL = 0.2


def lock_directory(configured: str | os.PathLike | None = None) -> Path:
    """Where device locks live: the configured folder, else $ATTNAS_LOCK_DIR, else ~/.cache/attnas/locks."""
    if configured:
        return Path(configured)
    if os.environ.get("ATTNAS_LOCK_DIR"):
        return Path(os.environ["ATTNAS_LOCK_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "attnas" / "locks"


def physical_name(device: torch.device) -> str:
    """A name of the physical device that every process on the machine agrees on."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda-{torch.cuda.get_device_properties(index).uuid}"
    try:  # one per running kernel: containers of one host share it, other hosts (a shared lock folder) do not
        return "cpu-" + Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:13]
    except OSError:
        import socket

        return f"cpu-{socket.gethostname()}"


def _open(path: Path) -> IO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a")


def _flock(handle: IO, mode: int, deadline: float | None) -> bool:
    """Take `mode` on `handle`, waiting until `deadline` (monotonic; None: for ever)."""
    if deadline is None:
        fcntl.flock(handle, mode)
        return True
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


class DeviceLock:
    """The lock of one physical device (`device`: a torch device, synchronised before release)."""

    def __init__(self, path: str | os.PathLike, device: torch.device | str | None = None) -> None:
        self.path = Path(path)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._holds: weakref.WeakSet[Hold] = weakref.WeakSet()

    # -- the two files: the lock itself, and a turnstile where a waiting timing stands ----------
    def _turnstile(self) -> Path:
        return Path(f"{self.path}.turnstile.lock")

    def _main(self) -> Path:
        return Path(f"{self.path}.lock")

    def synchronize(self) -> None:
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.synchronize(self.device)

    def timing_waits(self) -> bool:
        """Whether a timing waits for (or holds) the device: it stands in the turnstile."""
        with _open(self._turnstile()) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def acquire_shared(self) -> IO:
        """The device shared with other work (blocks while a timing waits or runs); an open handle."""
        with _open(self._turnstile()) as turnstile:
            fcntl.flock(turnstile, fcntl.LOCK_SH)  # passes at once unless a timing stands here
        handle = _open(self._main())
        fcntl.flock(handle, fcntl.LOCK_SH)
        return handle

    def release(self, handle: IO) -> None:
        """Synchronise the device (the work launched under the lock must be done), then release."""
        try:
            self.synchronize()
        finally:
            handle.close()  # closing the file releases its flock

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """One piece of work (a batch): the device shared, synchronised before release."""
        handle = self.acquire_shared()
        try:
            yield
        finally:
            self.release(handle)

    @contextlib.contextmanager
    def exclusive(self, wait_s: float | None = None) -> Iterator[bool]:
        """The device to a timing alone. Yields True when it was had, False when it could not be
        had within `wait_s` seconds (then nothing is held: the caller times anyway and flags the
        result). This process's own idle training holds are handed over first."""
        for hold in list(self._holds):
            hold.let_go_if_idle()
        deadline = None if wait_s is None else time.monotonic() + wait_s
        with _open(self._turnstile()) as turnstile:
            if not _flock(turnstile, fcntl.LOCK_EX, deadline):
                yield False
                return
            with _open(self._main()) as handle:
                if not _flock(handle, fcntl.LOCK_EX, deadline):
                    yield False
                    return
                self.synchronize()
                yield True

    def hold(self) -> "Hold":
        """A share of the device for a loop of steps (`with hold:` around each step)."""
        hold = Hold(self)
        self._holds.add(hold)
        return hold


class Hold:
    """A training loop's share of the device, kept across steps and handed to a timing that waits.

    `with hold:` around each step: the share is taken at the first step and kept, so steps pay no
    host synchronisation; when a timing waits, it is released (after synchronising the device)
    before the next step, or by a watcher thread while the loop is between steps (evaluating,
    loading data, idle in the search), then taken back once the timing is done. `release()` ends
    it; a hold that is dropped without it is released when it is collected or its process ends.
    """

    def __init__(self, lock: DeviceLock) -> None:
        self.lock = lock
        self._mutex = threading.Lock()
        self._handle: IO | None = None
        self._busy = 0
        self._closed = False
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> "Hold":
        with self._mutex:
            if self._handle is not None and self.lock.timing_waits():
                self._let_go()
            if self._handle is None:
                self._handle = self.lock.acquire_shared()
            self._busy += 1
        if self._watcher is None:
            self._watcher = threading.Thread(target=_watch, args=(weakref.ref(self),), daemon=True,
                                             name=f"attnas-device-hold-{self.lock.path.name}")
            self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._mutex:
            self._busy -= 1

    def _let_go(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self.lock.release(handle)

    def let_go_if_idle(self) -> None:
        """Hand the device over now unless a step is running (a timing of this very process)."""
        with self._mutex:
            if self._busy == 0:
                self._let_go()

    def release(self) -> None:
        with self._mutex:
            self._closed = True
            self._let_go()

    @property
    def holding(self) -> bool:
        return self._handle is not None

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            handle.close()


def _watch(ref: "weakref.ref[Hold]") -> None:
    """Between steps, hand the device to a timing that waits; ends with its hold."""
    while True:
        time.sleep(WATCH_INTERVAL)
        hold = ref()
        if hold is None or hold._closed:
            return
        with hold._mutex:
            if hold._handle is not None and hold._busy == 0 and hold.lock.timing_waits():
                hold._let_go()
        del hold


class DeviceLocks:
    """Every physical device's lock, by device: `DEVICE_LOCK.shared(device)`, `.exclusive(device)`,
    `.hold(device)`; `device` None is the CPU."""

    def __init__(self) -> None:
        self.directory: str | None = None
        self._locks: dict[tuple[Path, str], DeviceLock] = {}
        self._mutex = threading.Lock()

    def configure(self, directory: str | os.PathLike | None) -> None:
        """Use `directory` for the locks (`device.lock_dir`); None: the default (see `lock_directory`)."""
        self.directory = None if directory is None else str(directory)

    def of(self, device: torch.device | str | None = None) -> DeviceLock:
        device = torch.device(device) if device is not None else torch.device("cpu")
        if device.type == "cuda" and device.index is None and torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        folder, name = lock_directory(self.directory), physical_name(device)
        with self._mutex:
            key = (folder, name)
            if key not in self._locks:
                self._locks[key] = DeviceLock(folder / f"attnas-device-{name}", device)
            return self._locks[key]

    def shared(self, device: torch.device | str | None = None):
        return self.of(device).shared()

    def exclusive(self, device: torch.device | str | None = None, wait_s: float | None = None):
        return self.of(device).exclusive(wait_s)

    def hold(self, device: torch.device | str | None = None) -> Hold:
        return self.of(device).hold()


#: the locks of this machine's devices, used by the timer and by training
DEVICE_LOCK = DeviceLocks()
