"""A start that fails before its first trial leaves nothing behind.

A wrong `dataset.root`, a data set too small to carve a validation split from, a parent that
cannot be trained: the user corrects the command and runs it again, and nothing of the failed
attempt may stand in its way (a study recorded with the wrong data would refuse the corrected
command as 'run with other settings') or lie around (an empty run folder, an empty study.db).

`attnas.search.study.setup` loads and checks the data before it touches the storage, so most
failed starts create nothing but Hydra's run folder; what a later failure made is removed here:
the study when no trial of it ever ran (only the queued references), its SQLite file when that
holds no other study, and the run folder when this start made it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState

from attnas.search.storage import make_storage


def made_by_hydra_only(folder: Path) -> bool:
    """The folder holds only what Hydra writes before the app starts (`.hydra/`, an empty log):
    this start made it, and nothing of value is in it."""
    return folder.is_dir() and all(entry.name == ".hydra" or (entry.suffix == ".log" and entry.stat().st_size == 0)
                                   for entry in folder.iterdir())


def _file_of(url: str) -> Path | None:
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return Path(url.removeprefix(prefix))
    return None


def study_exists(url: str, study_name: str) -> bool:
    """Whether the storage holds the study (without creating a storage file that is not there)."""
    file = _file_of(url)
    if file is not None and not file.exists():
        return False
    return study_name in optuna.get_all_study_names(make_storage(url, heartbeat_interval=None))


def forget_failed_start(url: str, study_name: str, own_folder: Path | None, study_existed: bool) -> None:
    """Remove what a start that failed before its first trial made: the study, when this start
    created it and none of its trials ran (another worker's study is never touched), a SQLite or
    journal file left without any study, and `own_folder` (the run folder this start made, or None)."""
    file = _file_of(url)
    if file is None or file.exists():
        storage = make_storage(url, heartbeat_interval=None)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
        except KeyError:  # no such study: the start failed before creating it
            trials = None
        if not study_existed and trials is not None and all(t.state == TrialState.WAITING for t in trials):
            optuna.delete_study(study_name=study_name, storage=storage)
        if file is not None and not optuna.get_all_study_names(storage):
            file.unlink(missing_ok=True)
            for lock in file.parent.glob(f"{file.name}.*.lock"):  # the study lock beside it (storage.study_lock)
                lock.unlink(missing_ok=True)
    if own_folder is not None:
        shutil.rmtree(own_folder, ignore_errors=True)
        here = Path.cwd().resolve()
        for parent in own_folder.resolve().parents:  # runs/, when Hydra made it for this folder alone
            if parent == here or here not in parent.parents or any(parent.iterdir()):
                break
            parent.rmdir()
