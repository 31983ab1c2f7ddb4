"""Ctrl-C and SIGTERM as one line: what was interrupted, and that the same command resumes.

Python answers Ctrl-C with a traceback of wherever the main thread happened to be (93 lines in
the middle of a parent's training), and SIGTERM (a scheduler ending the job) with nothing at all.
Here both become a `KeyboardInterrupt` that unwinds normally (files made once are published by
an atomic rename, so unwinding leaves nothing half-written), and the app's outermost frame turns
it into one line and exit status 130 (SIGINT) or 143 (SIGTERM), as a shell reports them.

What was going on travels with the exception as a note (`BaseException.add_note`), added by
the code that knows: `doing("writing the report")` around a step, `made_once` around a file it
makes. The innermost note is the most precise, so it is the one reported.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending the job), handled like Ctrl-C: the running trial is marked FAIL."""


def terminate(signum, frame) -> None:
    """A SIGTERM handler: unwind as for Ctrl-C."""
    raise Terminated(f"signal {signum} (SIGTERM)")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises `Terminated` inside the block (main thread only; signals go nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Name the step an interrupt inside the block lands in (`what`: 'training the parent')."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        interrupt.add_note(what)
        raise


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM: 128 + the signal's number, as a shell reports them."""
    return 143 if isinstance(interrupt, Terminated) else 130


def describe(interrupt: KeyboardInterrupt, default: str = "starting") -> str:
    """'interrupted (Ctrl-C) while training the parent resnet18': the innermost step named."""
    kind = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
    notes = getattr(interrupt, "__notes__", None) or [default]
    return f"{kind} while {notes[0]}"
