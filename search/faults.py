"""Errors after which a search cannot go on, told apart from a trial's own failure, in one line.

A trial that raises is FAIL and the search goes on: a spec that does not train says nothing about
the next one. Some errors say that no trial can succeed any more: the disk is full, the storage's
server went away, its file is damaged. Going on would fail every remaining trial, each logged
with its traceback (a full disk gave 222 lines and 7 tracebacks, and left the trial RUNNING).
So a trial that meets one records the reason, raises `SearchHalted`, which Optuna treats as it
treats Ctrl-C (the trial is marked FAIL and the error is let through), and the app prints the
one line `fault` gives and exits 2. The same command resumes once the cause is removed.
"""

from __future__ import annotations

import contextlib
import errno
from typing import Any, Iterator

#: errno values of a full disk or an exhausted quota
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
#: how drivers say the disk is full (SQLite, PostgreSQL, torch.save's stream writer)
_FULL_TEXTS = ("database or disk is full", "no space left on device", "could not extend file", "disk quota exceeded",
               "file write failed")
#: exit status of an app stopped by a fault (as for a config error: nothing to retry as is)
EXIT_FAULT = 2


class SearchHalted(KeyboardInterrupt):
    """Raised from a trial that met a fault: Optuna marks the trial FAIL and lets this through,
    as it does for Ctrl-C, instead of starting the next trial. The message is `fault`'s line."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it (`raise ... from`, or an error raised while handling another;
    not past `raise ... from None`, whose message already says it all)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ if error.__cause__ is not None else None if error.__suppress_context__ else error.__context__


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(original if original is not None else error).strip()
    return " ".join(text.splitlines()[0].split())[:240] if text else type(error).__name__


def fault(error: BaseException) -> str | None:
    """One line naming what stopped the search and what to do; None for an ordinary failure."""
    import sqlalchemy.exc

    for cause in _chain(error):
        if isinstance(cause, SearchHalted):
            return str(cause)
        if isinstance(cause, OSError) and cause.errno in DISK_FULL:
            where = f" writing {cause.filename}" if cause.filename else ""
            return (f"disk full{where} ({cause.strerror or 'no space left'}); free space there, then run the same command "
                    f"to resume")
        text = _first_line(cause)
        if any(marker in text.lower() for marker in _FULL_TEXTS):
            return f"disk full: {text}; free space there, then run the same command to resume"
        if isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError)) and \
                not isinstance(cause, sqlalchemy.exc.IntegrityError):
            return (f"the storage failed: {text}; check the database server (or the file), then run the same command "
                    f"to resume")
    return None


def halt_on_fault(trial: Any, error: BaseException) -> None:
    """For a trial's error: when it is a fault, record the reason in the trial (if the storage
    still takes it) and raise `SearchHalted`; otherwise return, and the trial fails as usual."""
    reason = fault(error)
    if reason is not None:
        with contextlib.suppress(Exception):  # the storage itself may be what failed
            trial.set_user_attr("error", f"halted: {reason}")
        raise SearchHalted(reason) from error
