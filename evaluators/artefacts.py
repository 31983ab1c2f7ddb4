"""Files that workers share and that take minutes to make (a generated data set, a trained
parent or supernet, a device profile): made once, under a lock, and published atomically.

* `made_once(path, make)`: if `path` exists it is complete (nothing is ever written there but
  by an atomic rename), so it is used as is; otherwise the first worker to take the lock makes it
  in a private temporary path and renames it into place, and the others wait for the lock and
  then find it made. A writer killed half way leaves only its temporary path, which nobody
  reads (and the next maker removes).
* The lock is `fcntl.flock` on `<path>.lock`: released by the kernel when its holder dies, so a
  killed worker never blocks the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger("attnas.artefacts")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, shared: bool = False) -> Iterator[None]:
    """An advisory lock on `<path>.lock` across processes (exclusive, or shared with other
    shared holders); released when the block ends or the process dies."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """`write(temporary)` then an atomic rename onto `path`: a reader (or a killed writer) never
    sees a half-written file under the final name; the temporary is removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text))


MARKER = ".complete"


def complete_folder(path: Path) -> bool:
    """A folder made by `made_once(..., folder=True)`: it carries the marker written last."""
    return (path / MARKER).exists()


def made_once(path: str | os.PathLike, make: Callable[[Path], None], what: str = "", folder: bool = False) -> Path:
    """`path`, made by `make(temporary_path)` unless it is there. A `folder` also gets a marker
    file, written last, so that a folder the user created empty (or one left by an older,
    interrupted writer) is told apart from a finished one."""
    path = Path(path)
    done = complete_folder if folder else Path.exists
    if done(path):
        return path
    with file_lock(path):
        if done(path):  # another worker made it while we waited for the lock
            return path
        if path.exists():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # an empty folder made for us (a temporary directory): fill it
            else:
                raise FileExistsError(f"{str(path)!r} exists but was not finished by attnas (no {MARKER}: an interrupted "
                                      f"write?); delete it or choose another folder")
        for stale in path.parent.glob(f".{path.name}.partial-*"):  # a killed maker's leftovers
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        temporary = _temporary(path)
        if what:
            log.info("making %s at %s", what, path)
        try:
            make(temporary)
            if folder:
                (temporary / MARKER).write_text("")
            os.replace(temporary, path)
        except KeyboardInterrupt as interrupt:  # the app's one-line report names what was being made
            interrupt.add_note(f"making {what or path} (nothing of it is kept)")
            raise
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True) if temporary.is_dir() else temporary.unlink(missing_ok=True)
    return path
