"""The training loop: budgets in optimiser steps, batches that feed a device, progress with an ETA."""

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from attnas.evaluators import ReIDEvaluator
from attnas.evaluators.reid import image_cache
from attnas.evaluators.reid.budgets import budget, lr_factor, plan_steps
from attnas.evaluators.reid.data import IdentitySampler, allotted_cpus, default_workers, train_loader
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from attnas.evaluators.reid.training import TrainingProgress, subset_ids, train, training_device, training_steps
from attnas.models import build_model

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("synth"), SynthConfig(ids=24, cams=3, images_per_cam=2, distractors=4, junk=2))
    return load_dataset("synthetic", root)


@pytest.fixture(scope="module")
def records(synth):
    return subset_ids(synth.train, 8, 0)  # 8 ids: one P x K = 4 x 2 pass holds 2 or 3 batches


def test_a_budget_in_steps_trains_as_long_on_a_small_set_as_on_a_large_one():
    finetune = budget("finetune")
    assert plan_steps(finetune, batches_per_pass=3).steps == plan_steps(finetune, batches_per_pass=500).steps == 64
    passes = budget("finetune", steps_per_epoch=0)  # epochs as passes over the data: what shrank on PRID and GRID
    assert plan_steps(passes, batches_per_pass=3).steps == 12 and plan_steps(passes, batches_per_pass=500).steps == 2000
    capped = budget("finetune", steps_per_epoch=0, max_batches_per_epoch=16)
    assert plan_steps(capped, batches_per_pass=3).steps == 12 and plan_steps(capped, batches_per_pass=500).steps == 64
    assert plan_steps(budget("finetune", epochs=8), batches_per_pass=3).steps == 128  # more epochs, more steps
    assert {name: plan_steps(budget(name), 1000).steps for name in ("proxy", "parent", "supernet", "tiny")} == {
        "proxy": 96, "parent": 480, "supernet": 640, "tiny": 2}


def test_fidelity_scales_the_steps_and_keeps_the_whole_schedule():
    cfg = budget("finetune")  # 4 epochs x 16 steps, one epoch of warm-up, then cosine
    rung = plan_steps(cfg, batches_per_pass=3, fidelity=1 / 9)
    assert (rung.steps, rung.epochs) == (7, 4)
    assert [rung.bounds(e) for e in range(rung.epochs)] == [(0, 1), (1, 3), (3, 5), (5, 7)]  # every step, once
    assert rung.schedule_epoch(0) == 0 and rung.schedule_epoch(7) == 4  # the rung ends where the budget ends
    assert lr_factor(rung.schedule_epoch(6.9), cfg) < 0.01  # decayed, as at the end of the full budget
    with pytest.raises(ValueError, match="fidelity must be in \\(0, 1\\], got 0"):
        plan_steps(cfg, 3, fidelity=0)


def test_a_warm_up_as_long_as_the_training_is_dropped():
    one_epoch = budget("finetune", epochs=1)  # warmup_epochs=1 would never reach the learning rate
    assert lr_factor(0, one_epoch) == 1


@pytest.mark.parametrize("overrides, message", [
    ({"max_batches_per_epoch": 8}, "max_batches_per_epoch caps a pass over the data, but this budget counts epochs of "
                                   "steps_per_epoch=16 steps; change steps_per_epoch instead"),
    ({"steps_per_epoch": -1}, "epochs and log_every must be >= 1 and steps_per_epoch >= 0 \\(0: an epoch is a pass over "
                              "the data\\); got epochs=4, log_every=50, steps_per_epoch=-1"),
    ({"amp_dtype": "fp8"}, "unknown amp_dtype 'fp8'; valid: auto, bf16, fp16"),
    ({"schedule": "linear"}, "unknown schedule 'linear'; valid: step, cosine"),
])
def test_budget_settings_that_cannot_train_are_refused_in_one_line(overrides, message):
    with pytest.raises(ValueError, match=f"budget 'finetune': {message}"):
        budget("finetune", **overrides)


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown training device 'gpu'; valid: cpu, cuda, cuda:N"),
    ("cuda:x", "unknown training device 'cuda:x'; valid: cpu, cuda, cuda:N"),
    ("meta", "unknown training device 'meta'; valid: cpu, cuda, cuda:N"),
])
def test_bad_training_devices_are_refused_in_one_line(device, message):
    with pytest.raises(ValueError, match=message):
        training_device(device)


def test_the_sampler_yields_exactly_the_batches_a_training_uses_over_reshuffled_passes():
    pids = [i // 4 for i in range(24)]  # 6 ids x 4 images: one pass of 3 x 2 batches holds 4 batches
    one_pass = list(IdentitySampler(pids, p=3, k=2, seed=0))
    stream = list(IdentitySampler(pids, p=3, k=2, seed=0, num_batches=11))
    assert len(one_pass) == 4 and len(stream) == len(IdentitySampler(pids, 3, 2, 0, num_batches=11)) == 11
    assert stream[:4] == one_pass and stream[4:8] != one_pass  # the next pass is reshuffled
    assert all(len({pids[i] for i in batch}) == 3 for batch in stream)


def test_a_seed_gives_the_same_batches_with_any_number_of_workers_and_from_the_decoded_cache(records):
    def batches(workers, cache_mb):
        image_cache.clear()
        loader = train_loader(records, 64, 32, 4, 2, seed=3, workers=workers, num_batches=5, cache_mb=cache_mb,
                              random_erasing=0.5)
        return [(images, pids) for images, pids, _ in loader]

    reference = batches(0, 0)
    assert len(reference) == 5 and reference[0][0].shape == (8, 3, 64, 32)
    for workers, cache_mb in ((1, 0), (0, 64), (2, 64)):
        for (images, pids), (expected, expected_pids) in zip(batches(workers, cache_mb), reference):
            assert torch.equal(pids, expected_pids) and torch.equal(images, expected), (workers, cache_mb)
    other = train_loader(records, 64, 32, 4, 2, seed=4, workers=0, num_batches=1)
    assert not torch.equal(next(iter(other))[0], reference[0][0])


def test_a_set_is_decoded_once_within_the_memory_budget(records, synth, monkeypatch):
    image_cache.clear()
    reads = []
    real_read = image_cache.read_image
    monkeypatch.setattr(image_cache, "read_image", lambda path: reads.append(path) or real_read(path))
    one_set_mb = len(records) * 3 * 64 * 32 / 2**20
    first = image_cache.decoded_images(records, 64, 32, budget_mb=one_set_mb)
    assert first.shape == (len(records), 3, 64, 32) and first.dtype == torch.uint8 and len(reads) == len(records)
    assert image_cache.decoded_images(records, 64, 32, budget_mb=one_set_mb) is first and len(reads) == len(records)
    assert image_cache.decoded_images(records, 128, 64, budget_mb=one_set_mb) is None  # 4x the pixels: read per epoch
    other = synth.query[: len(records)]
    image_cache.decoded_images(other, 64, 32, budget_mb=one_set_mb)  # room for one set: the older one goes
    image_cache.decoded_images(records, 64, 32, budget_mb=one_set_mb)
    assert len(reads) == 2 * len(records) + len(other)
    image_cache.clear()


def test_a_training_takes_the_budgets_steps_and_reads_the_loss_once_per_interval(records, monkeypatch):
    import attnas.evaluators.reid.training as training

    reads = []
    real_read = TrainingProgress.loss_read
    monkeypatch.setattr(TrainingProgress, "loss_read",
                        lambda self, done, epoch, loss, end: reads.append((done, end)) or real_read(self, done, epoch, loss, end))
    cfg = budget("tiny", epochs=2, steps_per_epoch=3, log_every=2)  # more steps than the 8 ids hold in a pass
    results = []
    for seconds in (1e9, 0.0):  # reads every 2 steps; then a read after every step, as on a slow machine
        monkeypatch.setattr(training, "READ_SECONDS", seconds)
        torch.manual_seed(0)
        results.append(train(build_model("resnet18", len({r.pid for r in records})), records, cfg))
    assert reads == [(2, False), (3, True), (5, False), (6, True)] + [(n, n in (3, 6)) for n in range(1, 7)]
    assert results[0].steps == 6 and results[0].images_seen == 6 * 8 and training_steps(records, cfg).steps == 6
    assert results[0].epoch_losses == results[1].epoch_losses  # how often the loss is read changes no number


def test_long_trainings_log_epochs_with_elapsed_time_and_eta(records, caplog):
    model = build_model("resnet18", len({r.pid for r in records}))
    with caplog.at_level(logging.INFO, logger="attnas.training"):
        train(model, records, budget("tiny", epochs=2, log_epochs=True))
    lines = [r.getMessage() for r in caplog.records if r.name == "attnas.training"]
    assert lines[0] == "training resnet18: 4 steps (2 epochs) of 4 x 2 images at 64x32 on cpu"
    assert "epoch 1/2, step 2/4, loss" in lines[1] and "elapsed, ETA" in lines[1] and lines[2].endswith("ETA 0 s")


def test_candidates_record_the_steps_they_trained_and_rungs_train_a_fraction(synth):
    evaluator = ReIDEvaluator(synth, budget("tiny", steps_per_epoch=4), num_val_ids=3, latency=None)
    assert "train_steps" in evaluator.produces()
    assert evaluator.score("resnet18", 0)["train_steps"] == 4
    assert evaluator.score("resnet18", 0, fidelity=0.5)["train_steps"] == 2
    assert evaluator.provenance()["training"]["steps"] == 4


def test_loader_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert allotted_cpus() == 3 and default_workers() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_workers() == 8


@pytest.mark.slow
def test_a_compiled_model_trains_like_the_eager_one(records):
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build_model("resnet18", len({r.pid for r in records}))
        losses.append(train(model, records, budget("tiny", epochs=2, compile=compiled)).epoch_losses)
    assert losses[1] == pytest.approx(losses[0], rel=0.02)  # compiled kernels round differently, nothing more


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_attnas_train_on_cuda_without_cuda_is_one_line(tmp_path):
    run = subprocess.run([str(VENV_BIN / "attnas-train"), "spec=resnet18:layer4.0=se,layer3.1=cnl", "device=cuda",
                          f"dataset.root={tmp_path / 'none'}", f"out={tmp_path / 'out'}"], capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert run.returncode == 2 and lines == [
        "training device 'cuda' asked for, but CUDA is not available on this machine; use device=cpu"], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_cuda_training_waits_for_the_device_only_to_read_the_loss(records, dtype):
    syncs = []

    def watch():  # from the first step on: model and optimiser set-up may copy synchronously
        if not syncs:
            torch.cuda.set_sync_debug_mode("warn")
            syncs.append("watching")

    cfg = budget("tiny", device="cuda", epochs=2, steps_per_epoch=6, log_every=3, amp_dtype=dtype, channels_last=True)
    model = build_model("resnet18", len({r.pid for r in records}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = train(model, records, cfg, before_batch=watch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronising = [w for w in caught if "synchroniz" in str(w.message)]
    assert result.steps == 12 and len(synchronising) == 4, [str(w.message) for w in synchronising]  # 2 reads an epoch
