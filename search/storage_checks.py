"""What a storage must be before Optuna touches it, each refusal one line naming the problem and
what to do (the drivers' own errors are 30-130 lines of traceback, and some are misleading).

* the URL: a scheme SQLAlchemy and attnas know (`sqllite://` and `postgres://` are typos
  SQLAlchemy answers with a plugin traceback), a SQLite path after three slashes;
* a SQLite file: a SQLite database (not another kind of file), undamaged (`PRAGMA quick_check`:
  a truncated or overwritten file otherwise fails later, in Optuna, as "exceeding max length"),
  and an Optuna one or empty: Optuna adds its 13 tables to any database it is pointed at, so a
  database of another program is refused before Optuna creates them;
* a journal file: Optuna's journal (one JSON operation a line), read before anything is written;
* a database server: reachable, the database there, and holding Optuna's tables or none.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from pathlib import Path
from typing import Any

#: tables Optuna's RDB storage creates; a database holding none of them (and other tables) is another program's
OPTUNA_TABLES = frozenset({"studies", "study_directions", "study_user_attributes", "study_system_attributes", "trials",
                           "trial_params", "trial_values", "trial_intermediate_values", "trial_user_attributes",
                           "trial_system_attributes", "trial_heartbeats", "version_info", "alembic_version"})
#: URL schemes (before any `+driver`) a storage may have
SCHEMES = ("sqlite", "postgresql", "mysql")
VALID = "sqlite:///PATH.db, postgresql://USER@HOST/DATABASE, mysql://USER@HOST/DATABASE or journal:PATH"


class StorageError(ValueError):
    """A storage that cannot be used; the message is one line: the problem, then what to do."""


def check_url(url: str) -> None:
    """Refuse a URL whose scheme no driver serves, before SQLAlchemy looks for a plugin."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StorageError(f"storage {url!r} is not a URL; use {VALID}")
    base = scheme.split("+")[0].lower()
    if base == "postgres":
        raise StorageError(f"storage {url!r}: write postgresql://{rest} (SQLAlchemy does not know the postgres:// alias)")
    if base not in SCHEMES:
        close = difflib.get_close_matches(base, SCHEMES, n=1)
        hint = f"did you mean {close[0]}://...? " if close else ""
        raise StorageError(f"storage {url!r} has an unknown scheme {scheme!r}; {hint}valid: {VALID}")
    if base == "sqlite" and rest and not rest.startswith("/"):
        raise StorageError(f"storage {url!r}: a SQLite URL has three slashes before the path, sqlite:///{rest} "
                           f"(relative) or sqlite:////absolute/{rest}")


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL; None for other URLs (and in-memory SQLite)."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0].lower() != "sqlite" or not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:])


def check_sqlite_file(path: Path) -> None:
    """An existing file must be an undamaged SQLite database holding Optuna's tables or none
    (an empty file is a new database). Read-only: nothing is written to a file refused here."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise StorageError(f"storage {str(path)!r} is a folder; give the path of a .db file in it, e.g. {str(path / 'study.db')!r}")
    with open(path, "rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        raise StorageError(f"storage {str(path)!r} is not a SQLite database (another kind of file, or overwritten); "
                           f"point storage= at a study's .db file or at a new path")
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=120) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            verdict = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise StorageError(f"storage {str(path)!r} is damaged ({error}); restore it from a copy, or start the study "
                           f"again at another path") from None
    if verdict != "ok":
        raise StorageError(f"storage {str(path)!r} is damaged (SQLite's check: {verdict}); restore it from a copy, or "
                           f"start the study again at another path")
    _check_tables(tables, repr(str(path)), "point storage= at a study's .db file or at a new path")


def check_journal_file(path: Path) -> None:
    """An existing journal must be Optuna's: one JSON operation per line (a last line cut by a
    killed writer is Optuna's to skip)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise StorageError(f"journal {str(path)!r} is a folder; give the path of a journal file in it")
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            entry = json.loads(line)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            entry = None
        if not isinstance(entry, dict) or "op_code" not in entry:
            raise StorageError(f"journal {str(path)!r} is not an Optuna journal, or is damaged (line {number} is not "
                               f"an Optuna operation); point storage=journal:... at a study's journal or at a new path")


def check_server(url: str, engine_kwargs: dict[str, Any]) -> None:
    """Connect once: an unreachable server, a missing database or refused credentials in one
    line, at once (not after Optuna's retries); a database of another program refused."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
    except sqlalchemy.exc.DBAPIError as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise StorageError(f"cannot open storage {where}: {reason[:300]}; start the server, create the database or fix "
                           f"the URL (storage=...)") from None
    finally:
        engine.dispose()
    _check_tables(tables, where, "use a database of its own for attnas (CREATE DATABASE attnas)")


def _check_tables(tables: set[str], where: str, hint: str) -> None:
    if tables and not tables & OPTUNA_TABLES:
        shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
        raise StorageError(f"storage {where} is a database of another program (tables {shown}), not an Optuna "
                           f"storage; attnas does not add its tables to it: {hint}")
