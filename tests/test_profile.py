"""Device latency profiles: measured once, resumable, checked for staleness, predicting any spec."""

import math

import pytest
import torch

from attnas.evaluators.latency.timing import LatencyConfig
from attnas.evaluators.latency.profile import LatencyProfile, ProfileEntry, measure_profile, single_block_specs
from attnas.space import SearchSpace

SMALL = SearchSpace("resnet18", ["layer4"], ["se", "cnl"], ["post", "pre"], max_blocks=2)
FAST = LatencyConfig(input_size=(64, 32), warmup=1, repeats=5)


def hand_profile(**overrides) -> LatencyProfile:
    fields = dict(backbone="resnet18", device="cpu", device_name="robot-cpu", threads=2, batch_size=1, input_size=[64, 32],
                  torch=torch.__version__, created="2026-11-25T00:00:00", repeats=5, plain_ms=10.0,
                  entries={"layer4.0=se": ProfileEntry(1.02, 0.003, 0.05, 10.2), "layer4.1=cnl": ProfileEntry(1.05, 0.004, 0.05, 10.5),
                           "layer4.1=se@pre": ProfileEntry(1.01, 0.002, 0.05, 10.1)})
    return LatencyProfile(**(fields | overrides))


def test_a_profile_round_trips_and_predicts_the_sum_of_its_deltas(tmp_path):
    profile = hand_profile()
    loaded = LatencyProfile.load(profile.save(tmp_path / "p.json"))
    assert loaded == profile and loaded.digest == profile.digest
    ratio, se = loaded.predict("resnet18:layer4.0=se,layer4.1=cnl")
    assert ratio == pytest.approx(1 + 0.02 + 0.05) and se == pytest.approx(math.hypot(0.003, 0.004))
    assert loaded.predict("resnet18") == (1.0, 0.0)
    with pytest.raises(ValueError, match="has no entry layer4.0=cnl; profile a space that holds it"):
        loaded.predict("resnet18:layer4.0=cnl")


@pytest.mark.parametrize("change, message", [
    (dict(backbone="resnet50"), "backbone resnet50, not resnet18"),
    (dict(input_size=[256, 128]), "input 256x128, not 64x32"),
    (dict(batch_size=8), "batch 8, not 1"),
    (dict(runtime="onnxruntime"), "runtime onnxruntime, not eager"),
    (dict(precision="fp16"), "precision fp16, not fp32"),
])
def test_a_profile_of_other_conditions_is_refused_saying_what_differs(change, message):
    with pytest.raises(ValueError, match=f"does not fit: it was measured for {message}"):
        hand_profile(**change).check("resnet18", 1, [64, 32], runtime="eager", precision="fp32")


JETSON = dict(device="cuda", device_name="Orin (nvgpu)", torch="2.5.0a0+872d972e41.nv24.08",
              software={"cuda": "12.6", "cudnn": "90300", "driver": "540.4.0"})


def test_a_profile_measured_under_another_torch_build_is_accepted_shown_and_warned_about(tmp_path, caplog):
    from attnas.evaluators.config import DeviceConfig, LatencySettings, ProfileSettings
    from attnas.evaluators.latency.sources import ProfileLatency

    path = hand_profile(**JETSON).save(tmp_path / "jetson.json")
    settings = LatencySettings(source="profile", input_size=[64, 32], profile=ProfileSettings(str(path)))
    with caplog.at_level("WARNING"):
        source = ProfileLatency.from_config(settings, DeviceConfig("cpu"))
    assert "measured under torch 2.5.0a0+872d972e41.nv24.08 (here " in caplog.text  # warned, not refused
    assert source.measure("resnet18:layer4.0=se")["latency_ratio"] == pytest.approx(1.02)
    shown = ProfileLatency.describe(source.context())  # the dashboard's line
    assert "Orin (nvgpu)" in shown and "torch 2.5.0a0+872d972e41.nv24.08" in shown and "driver 540.4.0" in shown


def test_a_format_1_profile_reads_as_eager_fp32_and_keeps_its_digest(tmp_path):
    import hashlib
    import json
    from dataclasses import asdict

    old = {k: v for k, v in asdict(hand_profile()).items() if k not in
           ("runtime", "precision", "channels_last", "cuda_graphs", "software", "disturbed")} | {"format": 1}
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = LatencyProfile.load(tmp_path / "old.json")
    assert (loaded.runtime, loaded.precision) == ("eager", "fp32")
    assert loaded.digest == hashlib.sha1(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]  # its studies still match


def fake_timing(ratio, se=0.002, spread=0.05):
    from attnas.evaluators.latency.timing import LatencyRatio, LatencyResult

    result = LatencyResult(median_ms=10.0 * ratio, p90_ms=11.0, spread=spread, samples_ms=[10.0])
    return LatencyRatio(ratio, result, result, se)


def test_an_entry_that_stays_disturbed_is_not_saved_and_the_next_run_measures_only_it(tmp_path, monkeypatch):
    import attnas.evaluators.latency.profile as module

    calls = []

    def busy_for_cnl(model, plain, config):  # two SE-like blocks "at 0.54x the plain network": impossible
        calls.append(str(model.spec))
        return fake_timing(0.54, se=0.05) if "cnl" in str(model.spec) else fake_timing(1.01)

    monkeypatch.setattr(module, "measure_latency_ratio", busy_for_cnl)
    path = tmp_path / "p.json"
    profile = measure_profile(SMALL, FAST, path, progress=False, retries=1)
    disturbed = sorted(k for k in (LatencyProfile.key(*next(iter(s.blocks.items()))) for s in single_block_specs(SMALL))
                       if "cnl" in k)
    assert sorted(profile.disturbed) == disturbed and not set(disturbed) & set(profile.entries)
    assert "physically impossible" in next(iter(profile.disturbed.values()))
    assert len(calls) == 4 + 4 * 2  # the quiet entries once, the disturbed ones once more each
    assert sorted(LatencyProfile.load(path).disturbed) == disturbed  # on disk: what is missing, and why
    calls.clear()
    monkeypatch.setattr(module, "measure_latency_ratio", lambda m, p, c: calls.append(str(m.spec)) or fake_timing(1.03))
    profile = measure_profile(SMALL, FAST, path, progress=False, retries=1)
    assert len(calls) == 4 and not profile.disturbed and len(profile.entries) == 8


def test_attnas_profile_exits_3_naming_the_entries_it_could_not_measure(tmp_path, monkeypatch, capsys):
    import attnas.evaluators.latency.profile as module
    from attnas.search.apps import profile_app
    from tests.test_search import register_configs

    monkeypatch.setattr(module, "measure_latency_ratio", lambda m, p, c: fake_timing(0.5 if "se" in str(m.spec) else 1.0))
    monkeypatch.setattr(module, "measure_latency", lambda m, c: fake_timing(1.0).model)
    register_configs()
    from hydra import compose, initialize_config_module
    from attnas.search.apps.validate import typed

    with initialize_config_module("attnas.conf", version_base="1.3"):
        cfg = typed(compose("profile", overrides=["space=resnet18", "space.blocks=[se,cnl]", "space.positions=[layer4]",
                                                  f"out={tmp_path / 'p.json'}", "progress=false", "retries=0"]))
    with pytest.raises(SystemExit) as exit_:
        profile_app.run(cfg)
    err = capsys.readouterr().err
    assert exit_.value.code == 3 and "2 entries stayed disturbed after 1 timings each and were not saved" in err
    assert "layer4.0=se" in err and "measures only those" in err


def test_a_killed_profiling_run_resumes_without_measuring_an_entry_twice(tmp_path, monkeypatch):
    import attnas.evaluators.latency.profile as module

    measured = []  # timings are faked: what is tested is the bookkeeping, not this machine's load

    def dying_after_three(model, plain, config):
        if len(measured) == 3:
            raise KeyboardInterrupt  # killed half way
        measured.append(str(model.spec))
        return fake_timing(1.01)

    monkeypatch.setattr(module, "measure_latency_ratio", dying_after_three)
    path = tmp_path / "profile.json"
    with pytest.raises(KeyboardInterrupt):
        measure_profile(SMALL, FAST, path, progress=False)
    assert len(LatencyProfile.load(path).entries) == 3  # what was measured is on disk
    first = list(measured)
    monkeypatch.setattr(module, "measure_latency_ratio", lambda m, p, c: measured.append(str(m.spec)) or fake_timing(1.02))
    profile = measure_profile(SMALL, FAST, path, progress=False)
    assert len(profile.entries) == len(single_block_specs(SMALL)) == 8
    assert sorted(measured) == sorted(set(measured)) and measured[:3] == first  # none measured twice


def test_a_search_can_take_its_latency_from_a_profile_and_records_which(tmp_path):
    from tests.test_search import config
    from attnas.search.study import run_search

    profile = hand_profile(entries={key: ProfileEntry(1.0 + 0.01 * i, 0.001, 0.05, 10.0)
                                    for i, spec in enumerate(single_block_specs(SearchSpace("resnet18", ["layer3", "layer4"],
                                                                                            ["se", "cnl", "nl"])))
                                    for key in [str(spec).split(":")[1]]})
    path = profile.save(tmp_path / "robot.json")
    study = run_search(config(tmp_path, "n_trials=3", "evaluator.latency.source=profile", f"evaluator.latency.profile.path={path}"))
    for trial in study.trials:
        assert trial.user_attrs["latency_ratio"] == pytest.approx(profile.predict(trial.user_attrs["spec"])[0])
    assert study.trials[0].user_attrs["measured_on"]["profile_digest"] == profile.digest
    assert study.trials[0].user_attrs["measured_on"]["device_name"] == "robot-cpu"


def test_a_finished_study_is_redrawn_with_another_devices_latency(tmp_path):
    from tests.test_analysis import make_study
    from attnas.search.analysis.view import view
    from attnas.search.analysis.report import write_report

    study = make_study([("resnet18", [0.5, 0.51, 0.49], 1.0), ("resnet18:layer4.0=se", 0.6, 1.001),
                        ("resnet18:layer4.1=cnl", 0.62, 1.30)])  # cnl is infeasible (> 1.2) where it was timed
    robot = hand_profile()
    v = view(study, robot)
    table = v.architectures.set_index("spec")
    assert table.loc["resnet18:layer4.1=cnl", "latency_ratio"] == pytest.approx(1.05)
    assert table.loc["resnet18:layer4.1=cnl", "feasible"]  # within 1.2 on the profiled device
    assert "predicted from the profile of robot-cpu" in v.latency_source
    page = write_report(study, tmp_path, robot)["html"].read_text()
    assert "Latency: predicted from the profile of robot-cpu" in page
