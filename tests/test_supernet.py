"""The weight-sharing supernet: its paths are the networks build_model builds, its batch-norm
recalibration touches only statistics, it is trained once across workers and never loaded half
written, and a two-stage search links its studies."""

import subprocess
import sys

import optuna
import pytest
import torch
from optuna.trial import TrialState

from attnas.evaluators.supernet_evaluator import recalibrate_batch_norm, sample_path
from attnas.models.supernet import Supernet
from attnas.space import SearchSpace

SPACE = SearchSpace("resnet18", ["layer3", "layer4"], ["se", "cnl", "nl"], ["post", "pre"], max_blocks=2)
CHOICES = [str(c) for c in SPACE.choices]


def trained_looking(net):
    """Move every weight off its identity initialisation, so paths compute different functions."""
    torch.manual_seed(1)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return net


def test_every_path_is_exactly_the_network_build_model_builds():
    net = trained_looking(Supernet("resnet18", list(SPACE.allowed_positions), CHOICES, num_classes=6)).eval()
    x = torch.randn(2, 3, 64, 32)
    rng = __import__("numpy").random.default_rng(0)
    outputs = set()
    for _ in range(8):
        spec = sample_path(SPACE, rng)
        assert spec in SPACE
        net.set_path(spec)
        expected = net(x)
        torch.testing.assert_close(net.extract(spec).eval()(x), expected)
        outputs.add(round(float(expected.detach().sum()), 4))
    assert len(outputs) > 1  # the paths differ


def test_batch_norm_recalibration_changes_running_statistics_only():
    net = trained_looking(Supernet("resnet18", list(SPACE.allowed_positions), CHOICES, num_classes=6))
    net.set_path("resnet18:layer4.0=cnl")
    params = {k: v.clone() for k, v in net.named_parameters()}
    buffers = {k: v.clone() for k, v in net.named_buffers() if "running" in k}
    recalibrate_batch_norm(net, [torch.randn(8, 3, 64, 32) * 2 + 1 for _ in range(3)])
    assert all(torch.equal(params[k], v) for k, v in net.named_parameters())
    assert any(not torch.equal(buffers[k], v) for k, v in net.named_buffers() if "running" in k)
    assert not net.training


def _config(tmp_path, *overrides):
    from tests.test_search import config

    return config(tmp_path, "evaluator=supernet", "evaluator.budget=tiny", "evaluator.parent=tiny",
                  "evaluator.num_val_ids=4", "evaluator.latency.input_size=[64,32]", "evaluator.latency.timer.repeats=3",
                  "evaluator.calibration_batches=2", *overrides)


def test_a_killed_supernet_training_leaves_nothing_that_is_loaded(tmp_path, monkeypatch):
    import attnas.evaluators.supernet_evaluator as module
    from attnas.evaluators import make_evaluator

    cfg = _config(tmp_path)
    evaluator = make_evaluator(cfg.evaluator, cfg.dataset, cfg.device, workdir=str(tmp_path)).inner
    real_train = module.train
    monkeypatch.setattr(module, "train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        evaluator.prepare(SPACE)
    assert not list(tmp_path.glob("supernet-*.pt")) and not list(tmp_path.glob(".supernet-*partial*"))
    monkeypatch.setattr(module, "train", real_train)
    evaluator._supernet = None
    evaluator.prepare(SPACE)
    assert len(list(tmp_path.glob("supernet-*.pt"))) == 1


@pytest.mark.slow
def test_two_workers_train_the_supernet_once(tmp_path):
    from tests.test_search import config  # noqa: F401 - the configs' schemas are registered on import

    script = """
import logging, sys
logging.basicConfig(level=logging.INFO, format='%(message)s')
from hydra import compose, initialize_config_module
from attnas.evaluators import make_evaluator
from attnas.search.apps.config import register_configs
from attnas.search.apps.validate import typed
from attnas.space import make_space
register_configs()
with initialize_config_module('attnas.conf', version_base='1.3'):
    cfg = typed(compose('config', overrides=sys.argv[1:]))
evaluator = make_evaluator(cfg.evaluator, cfg.dataset, cfg.device, workdir=cfg.evaluator.parent_dir)
evaluator.prepare(make_space(cfg.space))
"""
    args = ["space=resnet18", "evaluator=supernet", "evaluator.budget=tiny", "evaluator.parent=tiny", "evaluator.num_val_ids=4",
            "dataset.synth.ids=16", f"dataset.root={tmp_path / 'synth'}", f"evaluator.parent_dir={tmp_path / 'shared'}",
            "storage=sqlite:///unused.db"]
    jobs = [subprocess.Popen([sys.executable, "-c", script, *args], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [job.communicate(timeout=600)[1] for job in jobs]
    assert all(job.returncode == 0 for job in jobs), [log[-2000:] for log in logs]
    assert sum("making the supernet" in log for log in logs) == 1 and sum("making the parent" in log for log in logs) == 1
    assert len(list((tmp_path / "shared").glob("supernet-*.pt"))) == 1


@pytest.mark.slow
def test_a_two_stage_search_links_both_studies(tmp_path):
    from hydra import compose, initialize_config_module

    from attnas.search.apps.config import register_configs
    from attnas.search.apps.validate import typed
    from attnas.search.analysis.stages import stage_comparison
    from attnas.search.apps.finalists import second_stage
    from attnas.search.study import run_search

    cfg = _config(tmp_path, "n_trials=5", "finalists.count=2", "finalists.evaluator=tiny", "finalists.repeats=2")
    first = run_search(cfg, workdir=str(tmp_path))
    register_configs()
    with initialize_config_module("attnas.conf", version_base="1.3"):
        tiny = typed(compose("config", overrides=["evaluator=tiny", f"storage={cfg.storage}"])).evaluator
    second = second_stage(first, cfg, tiny, workdir=str(tmp_path))
    assert second.study_name == f"{first.study_name}-finalists"
    assert first.user_attrs["finalists_study"] == second.study_name and second.user_attrs["stage_one_study"] == first.study_name
    complete = [t for t in second.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and complete[0].user_attrs["spec"] == "resnet18"  # the baseline, then two finalists
    assert all(t.user_attrs["per_seed"]["seeds"] == [0, 1] for t in complete)
    frame, tau = stage_comparison(second)
    assert set(frame["spec"]) == {t.user_attrs["spec"] for t in complete}  # the finalists and the baseline, both stages
    assert optuna.load_study(study_name=first.study_name, storage=cfg.storage).user_attrs["finalists_study"]
