"""Study names as folder and file names.

A study name is Optuna's key for a study, and any text up to 512 characters (Optuna's column)
without control characters is accepted. Files are another matter: `runs/<study>/` with a name
such as `../../x` or `a/b` would put `study.db`, a report or an export outside `runs/`, and a
300-character name is longer than a file name may be. So a name that is not already a plain
folder name (letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 100
characters) gets a folder name of its own: its safe characters, cut, plus a digest of the whole
name, so two names never share a folder. The search records the mapping in the study
(`user_attrs["folder_name"]`) and says it once.
"""

from __future__ import annotations

import hashlib
import re

#: Optuna's study_name column (RDB storages) holds at most this many characters
MAX_STUDY_NAME = 512
#: longest folder name kept as is (file systems allow 255 bytes; lock files add a suffix)
MAX_FOLDER = 100
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_study_name(name: str) -> None:
    """Refuse names no storage can hold or no log line can show, in one line."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("study_name is empty; give the study a name, e.g. study_name=my-study")
    if len(name) > MAX_STUDY_NAME:
        raise ValueError(f"study_name has {len(name)} characters; Optuna stores at most {MAX_STUDY_NAME}")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise ValueError(f"study_name {name!r} holds a control character (a newline or tab?); use printable characters")


def folder_name(name: str) -> str:
    """`name` itself when it is a plain folder name, else its safe characters (at most 91) plus
    `-` and an 8-character digest of the whole name: never a path, never `..`, never too long."""
    if _PLAIN.fullmatch(name) and len(name) <= MAX_FOLDER:
        return name
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:MAX_FOLDER - 9].rstrip("._-")
    return f"{readable or 'study'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
