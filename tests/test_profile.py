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
    (dict(torch="1.13.0"), "torch 1.13.0, not"),
])
def test_a_stale_profile_is_refused_saying_what_differs(change, message):
    with pytest.raises(ValueError, match=f"is stale: it was measured for {message}"):
        hand_profile(**change).check("resnet18", 1, [64, 32])


def test_a_killed_profiling_run_resumes_without_measuring_an_entry_twice(tmp_path, monkeypatch):
    import attnas.evaluators.latency.profile as module

    real, measured = module.measure_latency_ratio, []

    def dying_after_three(model, plain, config):
        if len(measured) == 3:
            raise KeyboardInterrupt  # killed half way
        measured.append(str(model.spec))
        return real(model, plain, config)

    monkeypatch.setattr(module, "measure_latency_ratio", dying_after_three)
    path = tmp_path / "profile.json"
    with pytest.raises(KeyboardInterrupt):
        measure_profile(SMALL, FAST, path, progress=False)
    assert len(LatencyProfile.load(path).entries) == 3  # what was measured is on disk
    first = list(measured)
    monkeypatch.setattr(module, "measure_latency_ratio", lambda m, p, c: measured.append(str(m.spec)) or real(m, p, c))
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
    study = run_search(config(tmp_path, "n_trials=3", "evaluator.latency.source=profile", f"evaluator.latency.profile={path}"))
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
