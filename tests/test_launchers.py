"""Hydra launchers for many workers: joblib (local processes) is run; submitit (SLURM) is
config-tested, since no SLURM is here: the composed configs and the sbatch script a job gets."""

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from optuna.trial import TrialState

from attnas.search.apps.config import register_configs

VENV_BIN = Path(sys.executable).parent
COMMON = ["space=resnet18", "evaluator=tiny", "dataset.synth.ids=16", "n_trials=4", "progress=false",
          "evaluator.reference_repeats=1", "device.threads=1"]


@pytest.mark.slow
def test_joblib_launcher_runs_several_workers_of_one_study(tmp_path):
    run = subprocess.run([str(VENV_BIN / "attnas-search"), "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                          "worker=0,1", *COMMON, f"dataset.root={tmp_path / 'synth'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]  # one study: `worker` is not part of its name
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("job")) == ["job0", "job1"]
    storage = f"sqlite:///{folder / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)  # the folder is its name, or a digest of a long one
    study = optuna.load_study(study_name=name, storage=storage)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4
    assert {t.user_attrs["worker"]["index"] for t in study.trials} == {0, 1}  # both workers took trials


def test_submitit_slurm_launcher_composes_workers_of_one_study_and_their_sbatch_script(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    register_configs()
    overrides = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.cpus_per_task=8",
                 "hydra.launcher.gpus_per_node=1", "hydra.launcher.timeout_min=720", "hydra.launcher.mem_gb=32",
                 "storage=postgresql://attnas@db.cluster:5432/attnas", "device=cuda", "evaluator=full",
                 "dataset=market1501", "dataset.root=/data/Market-1501-v15.09.15", "n_trials=200"]
    names = set()
    for worker in range(4):  # what --multirun worker=0,1,2,3 composes for each job
        with initialize_config_module("attnas.conf", version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, f"worker={worker}"], return_hydra_config=True)
        launcher = cfg.hydra.launcher
        assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
        assert (launcher.partition, launcher.cpus_per_task, launcher.gpus_per_node) == ("gpu", 8, 1)
        assert cfg.worker == worker and cfg.storage.startswith("postgresql://")
        names.add(cfg.study_name.replace("${attnas.sweep_suffix:}", ""))
    (name,) = names  # every job is a worker of the same study, named from its data's folder
    assert re.fullmatch(r"attnas-resnet50-market1501-[0-9a-f]{6}-full", name)
    script = _make_sbatch_string(command="python -u -m submitit.core._submit /shared/runs/.submitit/%j", folder=tmp_path,
                                 job_name="attnas-search", partition=launcher.partition, time=launcher.timeout_min,
                                 cpus_per_task=launcher.cpus_per_task, gpus_per_node=launcher.gpus_per_node,
                                 mem=f"{launcher.mem_gb}GB", map_count=4, array_parallelism=4)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --gpus-per-node=1", "#SBATCH --time=720",
                 "#SBATCH --mem=32GB", "#SBATCH --array=0-3%4", "python -u -m submitit.core._submit"):
        assert line in script, line
