"""Latency on the runtime the user deploys: eager in fp32/fp16/bf16, ONNX Runtime (CPU here, CUDA
where lent), TensorRT when installed; settings refused in one line before any timing; the study's
identity holds the runtime and precision but not the GPU index."""

import importlib.util

import pytest
import torch

from attnas.evaluators.base import digest
from attnas.evaluators.latency.runtimes import check_runtime, onnx_bytes
from attnas.evaluators.latency.sources import TimedLatency
from attnas.evaluators.latency.timing import LatencyConfig, measure_latency, measure_latency_ratio
from attnas.models import build_model

TINY = dict(input_size=(64, 32), warmup=1, repeats=3)


def test_eager_latency_in_bf16_runs_the_model_in_bf16():
    result = measure_latency(build_model("resnet18", 1), LatencyConfig(precision="bf16", **TINY))
    assert (result.runtime, result.precision) == ("eager", "bf16") and len(result.samples_ms) == 3 and result.median_ms > 0


def test_onnx_runtime_on_the_cpu_times_the_same_network_the_model_computes():
    import onnxruntime

    model = build_model("resnet18:layer4.0=cnl,layer3.1=nl", 1).eval()
    x = torch.randn(1, 3, 64, 32)
    session = onnxruntime.InferenceSession(onnx_bytes(model, x), providers=["CPUExecutionProvider"])
    assert torch.allclose(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), model(x), atol=1e-4)
    timing = measure_latency_ratio(model, build_model("resnet18", 1), LatencyConfig(runtime="onnxruntime", **TINY))
    assert timing.model.runtime == "onnxruntime" and timing.ratio > 0 and len(timing.model.samples_ms) == 3


def test_a_timing_stops_at_its_time_bound_with_the_samples_it_has():
    started = __import__("time").perf_counter()
    result = measure_latency(build_model("resnet18", 1), LatencyConfig(input_size=(64, 32), warmup=0, repeats=10_000,
                                                                       max_seconds=0.5))
    assert 3 <= len(result.samples_ms) < 10_000 and __import__("time").perf_counter() - started < 30


@pytest.mark.parametrize("settings, message", [
    (dict(runtime="trt"), "runtime='trt' is not a runtime; valid: eager, onnxruntime, tensorrt"),
    (dict(precision="int8"), "precision='int8' is not a precision; valid: fp32, fp16, bf16"),
    (dict(runtime="onnxruntime", precision="bf16"), "runtime=onnxruntime has no bf16 kernels"),
    (dict(cuda_graphs=True), "cuda_graphs=true needs runtime=eager on device=cuda"),
    (dict(runtime="onnxruntime", channels_last=True), "channels_last=true is an eager setting"),
])
def test_a_runtime_setting_that_cannot_run_is_refused_in_one_line(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_runtime(**({"runtime": "eager", "precision": "fp32", "device": "cpu"} | settings))


def test_tensorrt_without_tensorrt_names_the_extra_to_install():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(ValueError, match=r"runtime=tensorrt needs tensorrt, which is not installed: pip install 'attnas\[tensorrt\]'"):
        check_runtime("tensorrt", "fp16", "cuda")


def test_the_timer_fingerprint_holds_runtime_and_precision_but_not_the_gpu_index():
    plain = TimedLatency(LatencyConfig())
    # studies timed before runtimes existed keep their fingerprint: the old settings, unchanged
    old = {"device": "cpu", "threads": None, "batch_size": 1, "input_size": (256, 128), "warmup": 3, "repeats": 20,
           "channels_last": False}
    assert plain.fingerprint() == digest(["timer", old])
    assert TimedLatency(LatencyConfig(device="cuda:1")).fingerprint() == TimedLatency(LatencyConfig(device="cuda:0")).fingerprint()
    assert TimedLatency(LatencyConfig(device="cuda:1")).fingerprint() != plain.fingerprint()
    others = {TimedLatency(LatencyConfig(runtime="onnxruntime")).fingerprint(), TimedLatency(LatencyConfig(precision="fp16")).fingerprint()}
    assert plain.fingerprint() not in others and len(others) == 2


def test_a_search_timed_on_onnx_runtime_records_it_and_the_dashboard_says_so(tmp_path):
    from attnas.search.analysis.view import view
    from attnas.search.study import run_search
    from tests.test_search import config

    study = run_search(config(tmp_path, "n_trials=2", "evaluator.latency.runtime=onnxruntime", "evaluator.latency.timer.repeats=3"))
    measured = study.trials[0].user_attrs["measured_on"]
    assert (measured["runtime"], measured["precision"]) == ("onnxruntime", "fp32")
    assert "onnxruntime" in measured["software"]
    assert "onnxruntime fp32" in view(study).latency_source


# -- on a GPU (skipped without CUDA): `pytest -m cuda tests/test_runtimes.py tests/test_devices.py` ---------------------

@pytest.mark.cuda
def test_cuda_events_time_on_the_gpu_asked_for_not_the_current_one():
    last = torch.cuda.device_count() - 1
    torch.cuda.set_device(0)
    result = measure_latency(build_model("resnet18", 1), LatencyConfig(device=f"cuda:{last}", **TINY))
    assert result.device == f"cuda:{last}" and result.median_ms > 0
    assert torch.cuda.current_device() == 0


@pytest.mark.cuda
@pytest.mark.parametrize("settings", [dict(precision="fp16"), dict(precision="bf16"), dict(cuda_graphs=True),
                                      dict(channels_last=True, precision="fp16"), dict(runtime="onnxruntime"),
                                      dict(runtime="tensorrt", precision="fp16")])
def test_every_gpu_runtime_and_precision_times_resnet50(settings):
    if settings.get("runtime") in ("onnxruntime", "tensorrt"):
        try:
            check_runtime(settings["runtime"], settings.get("precision", "fp32"), "cuda")
            if settings["runtime"] == "onnxruntime":
                import onnxruntime

                if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                    pytest.skip("onnxruntime-gpu is not installed")
        except ValueError as missing:
            pytest.skip(str(missing))
    timing = measure_latency_ratio(build_model("resnet50:layer3.5=cnl", 1), build_model("resnet50", 1),
                                   LatencyConfig(device="cuda", warmup=5, repeats=20, **settings))
    assert 0.8 < timing.ratio < 1.5 and timing.model.median_ms > 0
