"""A study is named from the data it searches, and a start that fails before its first trial
leaves nothing behind, so the corrected command runs (PRID- and GRID-like folders, the tiny
evaluator, temporary storages)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from optuna.trial import TrialState

from attnas.evaluators.reid.datasets.config import SyntheticDatasetConfig, SynthConfig
from attnas.search.apps.config import register_configs
from attnas.search.apps.validate import typed
from attnas.search.study import run_search
from tests.folders import grid_like, prid_like

VENV_BIN = Path(sys.executable).parent
TINY = ["space=resnet18", "evaluator=tiny", "n_trials=1", "progress=false", "report=false", "evaluator.reference_repeats=1"]


def config(*overrides):
    register_configs()
    with initialize_config_module(config_module="attnas.conf", version_base="1.3"):
        return typed(compose("config", overrides=list(overrides)))


def search(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`attnas-search ARGS` run from `cwd`, so its run folders land in cwd/runs/."""
    return subprocess.run([str(VENV_BIN / "attnas-search"), *TINY, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TMPDIR=str(cwd)))  # no other process's timing pauses it


def lines_of(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def test_two_folders_searched_with_the_same_backbone_and_evaluator_are_two_studies(tmp_path):
    prid, grid = prid_like(tmp_path / "prid"), grid_like(tmp_path / "grid")
    prid_study = config(*TINY, "dataset=folder", f"dataset.root={prid}").study_name
    grid_study = config(*TINY, "dataset=folder", f"dataset.root={grid}").study_name
    assert re.fullmatch(r"attnas-resnet18-folder-[0-9a-f]{6}-tiny", prid_study), prid_study
    assert re.fullmatch(r"attnas-resnet18-folder-[0-9a-f]{6}-tiny", grid_study) and grid_study != prid_study
    # the same folder, however it is written, is the same study: the same command resumes it
    assert config(*TINY, "dataset=folder", f"dataset.root={tmp_path}/grid/../prid").study_name == prid_study


def test_the_embedded_synthetic_set_keeps_its_short_name_and_other_synthetic_sets_get_their_own():
    assert config().study_name == "attnas-resnet50-synthetic-proxy"
    assert re.fullmatch(r"attnas-resnet50-synthetic-[0-9a-f]{6}-proxy", config("dataset.synth.cams=2").study_name)
    assert config("dataset.synth.cams=2").study_name != config("dataset.synth.ids=100").study_name
    # and a set generated with other knobs is another folder, never mistaken for the default one
    assert SyntheticDatasetConfig().folder() == "data/synthetic-300ids-seed0"
    assert SyntheticDatasetConfig(synth=SynthConfig(cams=2)).folder().startswith("data/synthetic-300ids-seed0-")


def test_the_data_are_checked_before_the_storage_is_touched(tmp_path):
    cfg = config(*TINY, "dataset=folder", f"dataset.root={tmp_path / 'prid'}", f"storage=sqlite:///{tmp_path / 'study.db'}")
    with pytest.raises(FileNotFoundError, match=f"dataset.root={tmp_path / 'prid'} does not exist"):
        run_search(cfg)
    assert not (tmp_path / "study.db").exists()


def test_a_missing_dataset_root_leaves_no_run_folder_and_blames_the_root(tmp_path):
    run = search(tmp_path, "dataset=folder", "dataset.root=data/prid")
    assert run.returncode == 2 and len(lines_of(run)) == 1, lines_of(run)
    assert "dataset 'folder': dataset.root=data/prid does not exist (relative to" in lines_of(run)[0]
    assert not (tmp_path / "runs").exists()  # no empty run folder, no study.db, no study


def test_a_set_too_small_to_carve_leaves_a_shared_storage_as_it_was(tmp_path):
    prid = prid_like(tmp_path / "prid")
    storage = f"sqlite:///{tmp_path / 'all.db'}"
    optuna.create_study(study_name="another", storage=storage)
    run = search(tmp_path, "dataset=folder", f"dataset.root={prid}", f"storage={storage}", "evaluator.num_val_ids=20")
    assert run.returncode == 2 and len(lines_of(run)) == 1, lines_of(run)
    assert "cannot carve 20 validation ids: 12 training ids are seen by 2+ cameras" in lines_of(run)[0]
    assert optuna.get_all_study_names(storage) == ["another"] and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_start_that_fails_in_the_parent_leaves_nothing_and_the_corrected_command_runs(tmp_path):
    prid = prid_like(tmp_path / "prid")
    fixed = ["dataset=folder", f"dataset.root={prid}", "study_name=prid", "evaluator.parent=tiny"]
    failed = search(tmp_path, *fixed, "evaluator.parent_train.p=50")  # the study exists before the parent trains
    assert failed.returncode == 2, lines_of(failed)
    assert "[ERROR] - P=50 identities per batch, but the training set has only 8" in failed.stdout
    assert not (tmp_path / "runs").exists()  # the study, its study.db and the run folder are gone
    corrected = search(tmp_path, *fixed)
    assert corrected.returncode == 0, lines_of(corrected)[-5:]
    study = optuna.load_study(study_name="prid", storage=f"sqlite:///{tmp_path / 'runs' / 'prid' / 'study.db'}")
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 1
    assert "searches the folder data in" in corrected.stdout and (tmp_path / "runs" / "prid" / "app.log").exists()
