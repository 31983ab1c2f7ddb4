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
    from attnas.evaluators.cost_cli import main

    main(["resnet18:layer4.0=se", "resnet18:layer1.0=nl", "--baseline", "resnet18", "--height", "64", "--width", "32", "--repeats", "3"])
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2 and all("ratio=" in line and "gflops=" in line and "params_m=" in line for line in lines)
    with pytest.raises(SystemExit):
        main(["resnet18:layer9.0=se"])
