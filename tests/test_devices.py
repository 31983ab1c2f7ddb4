"""Devices are placement, not identity: device strings checked in one line on every app, each worker
placed on its own GPU, a study the same on every device, and the device lock that holds (one per
physical device, synchronised, bounded) without starving anyone. GPUs are simulated here as CPU
"devices" (`cpu:0`, `cpu:1`); the real ones are in the tests marked `cuda`."""

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

import attnas.evaluators.device as device_module
from attnas.evaluators.device import check_device, device_type, place
from attnas.evaluators.device_lock import DEVICE_LOCK, DeviceLock
from attnas.search.study import run_search
from tests.test_search import config

VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("text, message", [
    ("gpu", "device.type='gpu' is not a device; valid forms: cpu, cuda (one GPU per worker, round-robin), cuda:N"),
    ("cuda:x", "device.type='cuda:x' is not a device; valid forms: cpu, cuda"),
    ("cuda", "device.type=cuda: CUDA is not available on this machine; use device=cpu"),
    ("cuda:1", "device.type=cuda:1: CUDA is not available on this machine; use device=cpu"),
])
def test_a_bad_device_string_is_one_line_naming_the_valid_forms(text, message, monkeypatch):
    monkeypatch.setattr(device_module, "visible_devices", lambda kind: 0 if kind == "cuda" else 1)
    with pytest.raises(ValueError) as error:
        check_device(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_gpu_index_this_machine_lacks_is_refused_counting_the_visible_ones(monkeypatch):
    monkeypatch.setattr(device_module, "visible_devices", lambda kind: 2 if kind == "cuda" else 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"^device.type=cuda:2: this machine has 2 visible CUDA device\(s\), cuda:0..cuda:1 "
                                         r"\(CUDA_VISIBLE_DEVICES=4,5\)$"):
        check_device("cuda:2")
    with pytest.raises(ValueError, match=r"^--device cuda:7: this machine has 2"):  # argparse apps spell it their way
        check_device("cuda:7", "--device")


def test_workers_are_placed_round_robin_over_the_visible_gpus_and_a_pinned_gpu_stays(monkeypatch):
    monkeypatch.setattr(device_module, "visible_devices", lambda kind: 2 if kind == "cuda" else 1)
    assert [place("cuda", worker) for worker in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [place("cuda:1", worker) for worker in range(3)] == ["cuda:1"] * 3
    assert place("cpu", 3) == "cpu"
    assert device_type("cuda:1") == device_type("cuda") == "cuda"


def test_the_worker_index_comes_from_worker_else_the_launchers_rank(monkeypatch):
    from attnas.search.apps.workers import worker_index

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    assert worker_index(None) == 0 and worker_index(3) == 3
    monkeypatch.setenv("SLURM_LOCALID", "2")
    assert worker_index(None) == 2 and worker_index(5) == 5


@pytest.mark.slow
def test_one_study_runs_with_workers_on_two_devices_and_trains_its_parent_once(tmp_path, monkeypatch):
    """This CPU seen as two devices (`cpu:0`, `cpu:1`): two workers of one study, one on each,
    are the same study (nothing refused as 'other settings') and share one parent."""
    import attnas.evaluators.reid_evaluator as reid
    from attnas.search.apps.workers import place_worker

    monkeypatch.setattr(device_module, "visible_devices", lambda kind: 2)
    parents = []
    real_train = reid.train
    monkeypatch.setattr(reid, "train", lambda model, records, cfg, *a, **k: (
        parents.append(cfg.device) if model.spec.num_blocks == 0 and cfg.epochs == 2 else None) or real_train(model, records, cfg, *a, **k))
    overrides = ["evaluator.parent=tiny", "evaluator.parent_train.epochs=2", f"evaluator.parent_dir={tmp_path / 'parents'}"]
    for worker in (0, 1):
        cfg = config(tmp_path, f"n_trials={2 + worker}", f"worker={worker}", *overrides)
        cfg.device.type = place_worker(cfg)  # what attnas-search does first
        assert cfg.device.type == f"cpu:{worker}"
        study = run_search(cfg)
    assert parents == ["cpu:0"]  # trained once, by the first worker; the second found it on disk
    assert len(list((tmp_path / "parents").glob("parent-resnet18-*.pt"))) == 1  # its name holds no device index
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and {t.user_attrs["measured_on"]["device"] for t in complete} == {"cpu:0", "cpu:1"}


def test_a_worker_on_another_device_model_is_refused_for_timing(tmp_path, monkeypatch):
    import attnas.evaluators.latency.sources as sources

    monkeypatch.setattr(sources, "timing_device", lambda device, threads: "NVIDIA A100-SXM4-80GB")
    run_search(config(tmp_path, "n_trials=0"))
    monkeypatch.setattr(sources, "timing_device", lambda device, threads: "NVIDIA H200")
    with pytest.raises(ValueError, match="was run with timing_device='NVIDIA A100-SXM4-80GB', this run has 'NVIDIA H200'; "
                                         "this worker cannot time latencies comparable with the study's"):
        run_search(config(tmp_path, "n_trials=0"))


@pytest.mark.parametrize("app, args, message", [
    ("attnas-search", ["device.type=gpu"], "device.type='gpu' is not a device; valid forms: cpu, cuda"),
    ("attnas-profile", ["device.type=cuda:1"], "device.type=cuda:1: CUDA is not available on this machine; use device=cpu"),
])
def test_every_app_refuses_a_bad_device_in_one_line_before_any_work(tmp_path, app, args, message):
    if torch.cuda.is_available() and "cuda" in args[0]:
        pytest.skip("this machine has CUDA")
    run = subprocess.run([str(VENV_BIN / app), *args, f"hydra.run.dir={tmp_path}", f"dataset.root={tmp_path / 'synth'}"
                          if app == "attnas-search" else f"out={tmp_path / 'p.json'}"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 2 and message in output and "Traceback" not in output, output[-2000:]
    assert not (tmp_path / "synth").exists() and not (tmp_path / "study.db").exists()  # refused before any work


def test_locks_are_per_physical_device_in_the_configured_folder(tmp_path):
    DEVICE_LOCK.configure(tmp_path / "locks")
    try:
        assert DEVICE_LOCK.of("cpu:0") is DEVICE_LOCK.of("cpu:1") is DEVICE_LOCK.of("cpu")  # one CPU, one lock
        assert DEVICE_LOCK.of("cpu").path.parent == tmp_path / "locks"
        assert DEVICE_LOCK.of("cpu").path.name.startswith("attnas-device-cpu-")
    finally:
        DEVICE_LOCK.configure(None)


def test_a_timing_waits_for_the_device_a_bounded_time_then_times_anyway(tmp_path):
    lock = DeviceLock(tmp_path / "device")
    holding = lock.acquire_shared()  # another process's training step that never ends
    started = time.monotonic()
    with lock.exclusive(wait_s=0.3) as alone:
        assert alone is False  # not had: the caller times beside the work and flags a disturbed result
    assert time.monotonic() - started < 2
    lock.release(holding)
    with lock.exclusive(wait_s=0.3) as alone:
        assert alone is True


def test_a_training_hold_keeps_the_device_across_steps_and_hands_it_to_a_waiting_timing(tmp_path):
    lock, events = DeviceLock(tmp_path / "device"), []
    hold = lock.hold()
    with hold:
        events.append("step 1")
    assert hold.holding  # kept between steps: no synchronisation per step
    timing_done = threading.Event()

    def timing():
        with lock.exclusive(wait_s=10) as alone:
            events.append(f"timing alone={alone}")
        timing_done.set()

    thread = threading.Thread(target=timing)
    thread.start()
    assert timing_done.wait(5), "the idle hold did not hand the device over"  # the watcher let go between steps
    with hold:
        events.append("step 2")
    thread.join()
    hold.release()
    assert events == ["step 1", "timing alone=True", "step 2"]


@contextlib.contextmanager
def another_process_holding(lock: DeviceLock, exclusive: bool):
    """A process that holds `lock` (as a timing, exclusively, turnstile included; or as a training
    step, shared) and never lets go until killed."""
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    mode, files = ("LOCK_EX", [f"{lock.path}.turnstile.lock", f"{lock.path}.lock"]) if exclusive else ("LOCK_SH", [f"{lock.path}.lock"])
    code = (f"import fcntl, time\nhandles = [open(p, 'a') for p in {files!r}]\n"
            f"for h in handles: fcntl.flock(h, fcntl.{mode})\nprint('held', flush=True)\ntime.sleep(300)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_timing_beside_another_process_holding_its_device_still_finishes_and_is_flagged(tmp_path):
    """Another process holds this test's device and never lets go: the timing gives up waiting
    after its bound, times anyway and flags the result for retime=true; it never hangs."""
    from attnas.evaluators.latency.sources import TimedLatency
    from attnas.evaluators.latency.timing import LatencyConfig

    with another_process_holding(DEVICE_LOCK.of("cpu"), exclusive=False):
        timer = TimedLatency(LatencyConfig(input_size=(64, 32), warmup=1, repeats=3), retries=0, max_wait_s=0.5)
        started = time.monotonic()
        measured = timer.measure("resnet18:layer4.0=se")
    assert time.monotonic() - started < 60
    assert measured["latency_unreliable"] == 1.0


def test_a_search_beside_another_process_holding_the_machines_device_lock_finishes(tmp_path, monkeypatch):
    """A timing of another attnas process holds this machine's CPU (where the lock would be without
    the tests' own folder): the tests' search neither waits for it nor pauses it."""
    with monkeypatch.context() as outside_the_tests:
        outside_the_tests.delenv("ATTNAS_LOCK_DIR")
        outside_the_tests.setenv("XDG_CACHE_HOME", str(tmp_path / "machine-cache"))
        machine = DEVICE_LOCK.of("cpu")
    assert machine is not DEVICE_LOCK.of("cpu")
    with another_process_holding(machine, exclusive=True):
        study = run_search(config(tmp_path, "n_trials=2", "evaluator.latency.timer.max_wait_s=600"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.cuda
def test_cuda_locks_are_named_by_the_gpus_uuid_and_released_after_synchronising():
    lock = DEVICE_LOCK.of("cuda:0")
    assert lock.path.name.startswith("attnas-device-cuda-") and lock.device == torch.device("cuda:0")
    hold = lock.hold()
    with hold:
        x = torch.randn(4096, 4096, device="cuda:0")
        for _ in range(20):
            x = x @ x / 4096
    hold.release()
    assert torch.cuda.current_stream(0).query()  # nothing left running on the GPU once released
