import pytest
import torch

from attnas.evaluators import LatencyConfig, count_flops, measure_latency, measure_latency_ratio, model_cost
from attnas.models import build_model

CFG = LatencyConfig(input_size=(64, 32), warmup=1, repeats=5)


def test_flops_of_plain_resnet50_match_the_known_figure():
    # ResNet-50 at 224x224 is 4.1 GMACs = 8.2 GFLOPs (2 per multiply-add), last stride 2
    model = build_model("resnet50", num_classes=1, last_stride=2)
    assert count_flops(model, (224, 224)) / 1e9 == pytest.approx(8.2, rel=0.02)


def test_nl_early_costs_more_flops_than_late_and_cnl_almost_nothing():
    base = model_cost(build_model("resnet50", 1), (128, 64)).gflops
    nl_early = model_cost(build_model("resnet50:layer1.2=nl", 1), (128, 64)).gflops - base
    nl_late = model_cost(build_model("resnet50:layer3.5=nl", 1), (128, 64)).gflops - base
    cnl = model_cost(build_model("resnet50:layer3.5=cnl", 1), (128, 64)).gflops - base
    assert nl_early > nl_late > cnl > 0
    assert cnl < 0.01 * base


def test_latency_reports_median_p90_and_metadata():
    result = measure_latency(build_model("resnet18", 1), CFG)
    assert len(result.samples_ms) == 5 and 0 < result.median_ms <= result.p90_ms
    assert result.batch_size == 1 and result.input_size == (64, 32) and result.torch_version == torch.__version__
    assert result.threads == torch.get_num_threads() and result.device == "cpu"


def test_ratio_of_a_model_against_itself_is_near_one():
    model = build_model("resnet18", 1)
    ratio = measure_latency_ratio(model, model, LatencyConfig(input_size=(64, 32), warmup=2, repeats=9)).ratio
    assert 0.7 < ratio < 1.4


def test_cuda_latency_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        measure_latency(build_model("resnet18", 1), LatencyConfig(device="cuda"))


def test_cost_command_prints_ratio_flops_and_params(capsys):
    from attnas.search.apps.cost_app import main

    main(["resnet18:layer4.0=se", "resnet18:layer1.0=nl", "--baseline", "resnet18", "--height", "64", "--width", "32", "--repeats", "3"])
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2 and all("ratio=" in line and "gflops=" in line and "params_m=" in line for line in lines)
    with pytest.raises(SystemExit):
        main(["resnet18:layer9.0=se"])


def test_a_timing_waits_for_training_steps_and_new_steps_wait_for_the_timing(tmp_path):
    import threading
    import time

    from attnas.evaluators.device_lock import DeviceLock

    lock, events = DeviceLock(tmp_path / "device"), []
    step_running, timing_waiting = threading.Event(), threading.Event()

    def training_step(name, hold):
        with lock.shared():
            events.append(f"{name} start")
            step_running.set()
            time.sleep(hold)
            events.append(f"{name} end")

    def timing():
        step_running.wait()
        timing_waiting.set()
        with lock.exclusive():
            events.append("timing")
            time.sleep(0.3)
            events.append("timing end")

    first = threading.Thread(target=training_step, args=("step1", 0.5))
    timer = threading.Thread(target=timing)
    first.start(), timer.start()
    timing_waiting.wait()
    time.sleep(0.1)  # the timing is now queued behind step 1
    second = threading.Thread(target=training_step, args=("step2", 0.0))
    second.start()
    for thread in (first, timer, second):
        thread.join(timeout=10)
    assert events == ["step1 start", "step1 end", "timing", "timing end", "step2 start", "step2 end"]


def test_a_disturbed_timing_is_taken_again_then_flagged(monkeypatch, caplog):
    import attnas.evaluators.latency.sources as source
    from attnas.evaluators.latency.timing import LatencyRatio, LatencyResult

    def fake(ratio, spread, se):
        result = LatencyResult(median_ms=10.0, p90_ms=11.0, spread=spread, samples_ms=[10.0])
        return LatencyRatio(ratio, result, result, se)

    answers = [fake(1.9, 6.36, 0.4), fake(1.01, 0.05, 0.005)]  # a busy first timing, then a quiet one
    monkeypatch.setattr(source, "measure_latency_ratio", lambda *args, **kwargs: answers.pop(0))
    timer = source.TimedLatency(LatencyConfig(input_size=(64, 32)), retries=2)
    measured = timer.measure("resnet18")
    assert measured["latency_ratio"] == 1.01 and measured["latency_attempts"] == 2 and measured["latency_unreliable"] == 0
    monkeypatch.setattr(source, "measure_latency_ratio", lambda *args, **kwargs: fake(1.894, 0.1, 0.01))
    with caplog.at_level("WARNING"):
        measured = timer.measure("resnet18")  # the plain backbone "1.894x itself", every time
    assert measured["latency_attempts"] == 3 and measured["latency_unreliable"] == 1
    assert "latency of resnet18 is unreliable after 3 attempts: the plain backbone measured 1.894x itself" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--height", "0"], "--height must be >= 1, got 0"),
    (["--device", "cuda"], "--device cuda: CUDA is not available on this machine; use --device cpu"),
    (["resnet50:layer9.0=se"], "position 'layer9.0' does not exist in resnet50"),
])
def test_cost_command_refuses_bad_arguments_in_one_line(args, message, capsys):
    from attnas.search.apps.cost_app import main

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
