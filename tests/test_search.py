import math
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import torch
import pytest
from hydra import compose, initialize_config_module
from optuna.trial import TrialState

from attnas.search.names import folder_name
from attnas.space import ArchSpec, SearchSpace
from attnas.search import study as search_study
from attnas.search.apps.config import register_configs
from attnas.search.apps.validate import typed
from attnas.search.study import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)
VENV_BIN = Path(sys.executable).parent


def config(tmp_path, *overrides):
    """The app's real config (conf/), as Hydra composes it, with a tiny budget and a temp storage."""
    register_configs()
    with initialize_config_module(config_module="attnas.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            "space=resnet18", "evaluator=tiny", "dataset.synth.ids=16", f"dataset.root={tmp_path / 'synth'}",
            f"storage=sqlite:///{tmp_path / 'study.db'}", "progress=false", "report=false",
            "evaluator.reference_repeats=1", *overrides,  # one seed unless a test is about seeds
        ])
    return typed(cfg)


def patch_score(monkeypatch, wrap):
    """Every evaluator the search makes gets `wrap(real_score)` as its score (seed-dependent part)."""
    real = search_study.make_evaluator

    def patched(*args, **kwargs):
        cached = real(*args, **kwargs)
        cached.inner.score = wrap(cached.inner.score)
        return cached

    monkeypatch.setattr(search_study, "make_evaluator", patched)


def specs_of(study):
    return [t.user_attrs["spec"] for t in study.trials]


def test_search_runs_references_first_and_stores_specs_and_metrics(tmp_path):
    study = run_search(config(tmp_path, "n_trials=5"))
    assert len(study.trials) == 5 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert specs_of(study)[:2] == ["resnet18", "resnet18:layer3.1=cnl"]  # enqueued references
    space = SearchSpace("resnet18", ["layer3", "layer4"], ("se", "cnl", "nl"), max_blocks=2)
    for trial in study.trials:
        assert ArchSpec.parse(trial.user_attrs["spec"]) in space
        assert all(math.isfinite(v) for v in trial.values)
        assert trial.values == [trial.user_attrs["mAP"], trial.user_attrs["latency_ratio"]]
        assert {"rank1", "mINP", "gflops", "params_m", "train_seconds", "train_steps"} <= set(trial.user_attrs)
    measured = study.trials[0].user_attrs["measured_on"]
    assert measured["device"] == "cpu" and measured["torch"] and measured["threads"] >= 1
    assert measured["batch_size"] == 1 and measured["input_size"] == [64, 32]
    frame = study.trials_dataframe()
    assert "user_attrs_spec" in frame and "user_attrs_mAP" in frame
    assert {"values_mAP", "values_latency_ratio"} <= set(frame.columns)  # objectives named for Optuna's tools


def test_a_search_with_a_parent_trains_it_once_and_keeps_it(tmp_path, monkeypatch):
    import attnas.evaluators.reid_evaluator as reid

    trainings = []
    real_train = reid.train

    def recording(model, records, cfg, *args, **kwargs):
        trainings.append((str(model.spec), cfg.epochs))
        return real_train(model, records, cfg, *args, **kwargs)

    monkeypatch.setattr(reid, "train", recording)
    overrides = ["evaluator.parent=tiny", "evaluator.parent_train.epochs=3", "evaluator.parent_train.max_ids=100000",
                 f"evaluator.parent_dir={tmp_path / 'parents'}"]
    study = run_search(config(tmp_path, "n_trials=3", *overrides))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    resumed = run_search(config(tmp_path, "n_trials=4", *overrides))  # reuses the parent on disk
    assert trainings.count(("resnet18", 3)) == 1  # the parent: 3 epochs; candidates train 1
    assert sorted(spec for spec, epochs in trainings if epochs == 1) == sorted({t.user_attrs["spec"] for t in resumed.trials})
    (weights,) = (tmp_path / "parents").glob("parent-resnet18-*.pt")
    with pytest.raises(ValueError, match="evaluator.parent_dir"):
        run_search(config(tmp_path, "n_trials=1", "evaluator.parent=tiny", "study_name=other"))


def test_running_the_same_command_again_resumes_the_study(tmp_path):
    first = run_search(config(tmp_path, "n_trials=3"))
    before = specs_of(first)
    second = run_search(config(tmp_path, "n_trials=5"))
    assert second.study_name == first.study_name and len(second.trials) == 5
    assert specs_of(second)[:3] == before
    assert len(run_search(config(tmp_path, "n_trials=5")).trials) == 5  # nothing left to do


def test_an_architecture_is_never_trained_twice(tmp_path, monkeypatch):
    trained = []
    patch_score(monkeypatch, lambda inner: lambda spec, seed: trained.append(str(spec)) or inner(spec, seed))
    # two specs in the whole space: plain resnet18 and one SE block
    study = run_search(config(tmp_path, "n_trials=6", "sampler=random", "space.positions=[layer4.1]", "space.blocks=[se]",
                              "space.max_blocks=1"))
    assert len(study.trials) == 6 and sorted(trained) == sorted(set(trained)) and len(trained) <= 2
    copies = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert copies, "six draws from two specs must repeat one"
    for copy in copies:
        original = study.trials[copy.user_attrs["duplicate_of"]]
        assert original.user_attrs["spec"] == copy.user_attrs["spec"] and original.values == copy.values


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    def failing_on_nl(inner):
        def score(spec, seed):
            if "=nl" in str(spec):
                raise RuntimeError("out of memory (simulated)")
            return inner(spec, seed)

        return score

    patch_score(monkeypatch, failing_on_nl)
    cfg = config(tmp_path, "n_trials=4", "space.references=['resnet18','resnet18:layer4.0=nl','resnet18:layer4.1=se']")
    study = run_search(cfg)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len(failed) >= 1  # n_trials counts complete trials; failures are extra
    assert failed[0].user_attrs["error"] == "RuntimeError: out of memory (simulated)"
    assert any(t.state == TrialState.COMPLETE for t in study.trials[2:])


def test_constraints_mark_infeasible_trials_and_keep_them(tmp_path):
    # a bound on FLOPs (exact, unlike a timing on a busy machine) that no ResNet-18 at 64x32 meets
    study = run_search(config(tmp_path, "n_trials=3", "+constraints.gflops=0.05"))
    assert len(study.trials) == 3
    for trial in study.trials:
        assert trial.constraints["gflops"] == pytest.approx(trial.user_attrs["gflops"] - 0.05)
        assert trial.constraints["gflops"] > 0
    assert study.best_trials == []  # no feasible trial, so nothing on the (feasible) front


def test_resuming_with_other_evaluator_settings_is_refused(tmp_path):
    first = run_search(config(tmp_path, "n_trials=1"))
    with pytest.raises(ValueError, match="was run with evaluator=.* use another study_name"):
        run_search(config(tmp_path, "n_trials=2", "evaluator.num_val_ids=3", f"study_name={first.study_name}"))


def test_resuming_with_other_positions_of_the_same_count_is_refused(tmp_path):
    run_search(config(tmp_path, "n_trials=1", "space.positions=[layer3]"))
    with pytest.raises(ValueError, match="was run with space=.*'layer3.0', 'layer3.1'.* use another study_name"):
        run_search(config(tmp_path, "n_trials=2", "space.positions=[layer4]"))  # two positions either way


def test_bad_objective_is_explained(tmp_path):
    with pytest.raises(ValueError, match="unknown objective.*'accuracy'.*valid objectives: mAP"):
        run_search(config(tmp_path, "evaluator.objectives=[accuracy,latency_ratio]"))


def test_stale_trial_of_a_killed_worker_is_failed_and_retried(tmp_path):
    cfg = config(tmp_path, "n_trials=2", "heartbeat_interval=1", "grace_period=1", "enqueue_references=false")
    setup = search_study.setup(cfg)
    storage = setup.study._storage
    trial_id = storage.create_new_trial(setup.study._study_id)  # a worker that started a trial ...
    storage.record_heartbeat(trial_id)
    time.sleep(2.5)  # ... and died: no heartbeat for longer than the grace period
    study = run_search(cfg)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert retried and retried[0].state == TrialState.COMPLETE


@pytest.mark.slow
def test_two_processes_on_one_storage_share_the_work(tmp_path):
    args = [str(VENV_BIN / "attnas-search"), "space=resnet18", "evaluator=tiny", "dataset.synth.ids=16",
            f"dataset.root={tmp_path / 'synth'}", f"storage=sqlite:///{tmp_path / 'shared.db'}", "n_trials=6",
            "report=false", "progress=false", "sampler=random", f"hydra.run.dir={tmp_path / 'run'}"]
    # generate the data once so the two workers do not both write it; the shared storage is new, so
    # both workers also race to create Optuna's tables and the study
    run_search(config(tmp_path, "n_trials=0"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    workers = [subprocess.Popen(args + [f"worker={i}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for i in range(2)]
    outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
    assert all(w.returncode == 0 for w in workers), [out[-3000:] for out in outputs]
    study = optuna.load_study(study_name=config(tmp_path).study_name, storage=f"sqlite:///{tmp_path / 'shared.db'}")
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 6  # exactly: a trial that would exceed n_trials is pruned as surplus
    trained = [t.user_attrs["spec"] for t in finished if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained)), "the same spec was trained by two workers"


@pytest.mark.slow
def test_hydra_cli_runs_and_multiruns(tmp_path):
    common = ["space=resnet18", "evaluator=tiny", "dataset.synth.ids=16", f"dataset.root={tmp_path / 'synth'}",
              "n_trials=2", "report=false", "progress=false"]
    single = subprocess.run([str(VENV_BIN / "attnas-search"), *common, f"hydra.run.dir={tmp_path / 'single'}"],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "single" / "study.db").exists() and (tmp_path / "single" / "evaluations.jsonl").exists()
    multi = subprocess.run([str(VENV_BIN / "attnas-search"), "--multirun", "space.max_blocks=1,2",
                            "space.positions=[layer3,layer4]", *common, f"hydra.sweep.dir={tmp_path / 'multi'}"],
                           capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr
    runs = sorted(p.name for p in (tmp_path / "multi").iterdir() if p.is_dir())
    # one study per sweep point, named by it, in folders a path override can take back ('=' and ',' would not)
    tag = config(tmp_path).study_name.removeprefix("attnas-resnet18-synthetic-").removesuffix("-tiny")  # the data's digest
    names = [f"attnas-resnet18-synthetic-{tag}-tiny-dataset.synth.ids-16__evaluator-tiny__space.max_blocks-{k}__space.positions-_layer3_layer4___space-resnet18"
             for k in (1, 2)]
    assert runs == sorted(folder_name(name) for name in names)  # over 100 characters: a digest keeps folders short
    for name in names:
        run = folder_name(name)
        storage = f"sqlite:///{tmp_path / 'multi' / run / 'study.db'}"
        assert optuna.get_all_study_names(storage) == [name]
        report = subprocess.run([str(VENV_BIN / "attnas-report"), f"storage={storage}", f"study_name={name}"],
                                capture_output=True, text=True, timeout=120)
        assert report.returncode == 0, report.stdout + report.stderr
        assert (tmp_path / "multi" / run / "report" / "dashboard.html").exists()  # beside its own study


class ToyGate(torch.nn.Module):
    """A block added by a user: its module and one registry line, nothing else."""

    spec_options = {"g": "groups"}

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups must divide the channels, got {groups}")
        self.logit = torch.nn.Parameter(torch.zeros(groups))  # 2 * sigmoid(0) = 1: identity at insertion

    def forward(self, x):
        gate = 2 * torch.sigmoid(self.logit).repeat_interleave(x.shape[1] // len(self.logit))
        return x * gate[None, :, None, None]


def test_a_block_added_through_the_registry_alone_is_built_and_searched(tmp_path, monkeypatch):
    from attnas.models import BLOCKS, attention_modules, build_model

    monkeypatch.setitem(BLOCKS, "toy", ToyGate)
    spec = ArchSpec.parse("resnet18:layer4.1=toy(g=4),layer3.0=toy@pre")
    assert isinstance(attention_modules(build_model(spec, 3))["layer4.1"], ToyGate)
    with pytest.raises(ValueError, match="block toy\\(g=3\\): groups must divide"):
        ArchSpec.parse("resnet18:layer4.1=toy(g=3)")
    study = run_search(config(tmp_path, "n_trials=4", "sampler=random", "space.blocks=[toy,'toy(g=4)']",
                              "space.references=[resnet18]"))
    specs = [ArchSpec.parse(t.user_attrs["spec"]) for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(specs) == 4 and any(s.num_blocks for s in specs)
    assert all(choice.block == "toy" for s in specs for choice in s.blocks.values())


def test_objectives_and_constraints_the_evaluator_cannot_produce_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="constraint 'latency_ratio' is not a metric of the 'cost' evaluator; valid: gflops, params_m"):
        run_search(config(tmp_path, "evaluator=cost", "+constraints.latency_ratio=1.1"))
    with pytest.raises(ValueError, match="'train_seconds' cannot be constrained"):
        run_search(config(tmp_path, "+constraints.train_seconds=10"))
    with pytest.raises(ValueError, match="objective 'mAP' is not a metric of the 'latency' evaluator"):
        run_search(config(tmp_path, "evaluator=latency", "evaluator.objectives=[mAP,latency_ratio]"))
    assert not (tmp_path / "synth").exists()  # refused before the data was even generated


def test_a_lower_bound_on_a_maximised_metric_is_a_constraint_too(tmp_path):
    study = run_search(config(tmp_path, "n_trials=2", "+constraints.mAP=2.0"))  # mAP >= 2 is impossible
    assert all(t.constraints == {"mAP": pytest.approx(2.0 - t.user_attrs["mAP"])} for t in study.trials)
    assert study.best_trials == []


@pytest.mark.parametrize("args, message", [
    (["+dataset.synth.idz=3"], "unknown key 'idz' in dataset.synth; valid keys: ids, cams,"),
    (["n_trail=3"], "unknown key 'n_trail' in the config; valid keys: space, dataset,"),
    (["evaluator=nope"], "no evaluator option 'nope'; valid options: cost, full, latency, proxy, supernet, tiny"),
    (["n_trials=abc"], "n_trials: Value 'abc' of type 'str' could not be converted to Integer"),
    (["evaluator.train.epoch=3"], "unknown key 'epoch' in evaluator.train; valid keys: height, width, epochs"),
    (["+evaluator.train.epoch=3"], "unknown key 'epoch' in evaluator.train; valid keys: height, width, epochs"),
])
def test_config_errors_are_one_line_naming_what_is_valid(tmp_path, args, message):
    run = subprocess.run([str(VENV_BIN / "attnas-search"), *args, f"hydra.run.dir={tmp_path}", "dataset.synth.ids=8",
                          f"dataset.root={tmp_path / 'synth'}"], capture_output=True, text=True, timeout=120)
    lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and message in lines[0], lines


def test_evaluators_that_train_nothing_run_a_search(tmp_path):
    study = run_search(config(tmp_path, "evaluator=cost", "n_trials=3", "sampler=random"))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(t.values == [t.user_attrs["gflops"], t.user_attrs["params_m"]] for t in study.trials)
    assert not (tmp_path / "synth").exists()  # no data is needed, none is generated


def _count_scores(monkeypatch, calls):
    patch_score(monkeypatch, lambda inner: lambda spec, seed: calls.append((str(spec), seed)) or inner(spec, seed))


def test_references_get_more_seeds_and_the_study_records_its_noise_floor(tmp_path, monkeypatch):
    calls = []
    _count_scores(monkeypatch, calls)
    study = run_search(config(tmp_path, "n_trials=3", "evaluator.reference_repeats=3", "seed=5"))
    first, second, third = study.trials
    assert first.user_attrs["per_seed"]["seeds"] == [5, 6, 7] and second.user_attrs["per_seed"]["seeds"] == [5, 6, 7]
    assert third.user_attrs["per_seed"]["seeds"] == [5]  # a candidate: evaluator.repeats = 1
    runs = first.user_attrs["per_seed"]["mAP"]
    assert first.values[0] == pytest.approx(sum(runs) / 3) and len(set(runs)) == 3  # seeds do differ
    floor = study.user_attrs["noise_floor"]["mAP"]
    assert (floor["specs"], floor["seeds"], floor["dof"]) == (2, 6, 4) and floor["sd"] > 0
    assert third.user_attrs["mAP_se"] == pytest.approx(floor["sd"])  # one seed: the floor itself
    assert first.user_attrs["mAP_se"] == pytest.approx(floor["sd"] / 3 ** 0.5, rel=0.5)  # as known when it finished
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 7


def test_a_resumed_study_trains_only_the_seeds_it_lacks(tmp_path, monkeypatch):
    calls = []
    _count_scores(monkeypatch, calls)
    space = ["sampler=random", "space.positions=[layer4.1]", "space.blocks=[se]"]  # two specs: plain and one SE
    first = run_search(config(tmp_path, "n_trials=3", *space))
    before = {t.user_attrs["spec"] for t in first.trials}
    assert sorted(calls) == sorted((spec, 0) for spec in before)
    # resume, asking two seeds per spec: a spec already held gets its second seed only; nothing is trained twice
    study = run_search(config(tmp_path, "n_trials=6", *space, "evaluator.repeats=2"))
    resumed = {t.user_attrs["spec"] for t in study.trials[3:]}
    expected = [(spec, 1) for spec in resumed] + [(spec, 0) for spec in resumed - before]
    assert sorted(calls) == sorted(set(calls)) and sorted(calls[len(before):]) == sorted(expected)
    assert all(t.user_attrs["per_seed"]["seeds"] == [0, 1] for t in study.trials[3:])
    assert any("duplicate_of" in t.user_attrs for t in study.trials[3:])  # three trials, at most two specs


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "viper").is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("dataset, protocol", [("viper", "cross_camera"), ("cuhk01", "market")])
def test_a_search_on_real_two_camera_data_completes_with_a_report(tmp_path, dataset, protocol):
    run = subprocess.run([str(VENV_BIN / "attnas-search"), f"dataset={dataset}", f"dataset.root={SHARED / dataset}",
                          "space=resnet18", "evaluator=tiny", "n_trials=3", "progress=false", f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"validation ({protocol}, 4 ids carved from the training ids)" in run.stdout + run.stderr
    (name,) = optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")
    assert re.fullmatch(f"attnas-resnet18-{dataset}-[0-9a-f]{{6}}-tiny", name)  # named from the data's folder
    assert (tmp_path / "reports" / name / "dashboard.html").exists()  # beside study.db
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


@pytest.mark.slow
def test_a_study_whose_every_trial_fails_exits_non_zero(tmp_path):
    root = tmp_path / "broken"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
        for pid in range(1, 13):
            for cam in (1, 2, 3):
                (root / split / f"{pid:04d}_c{cam}s1_000001_00.jpg").write_bytes(b"not an image")
    run = subprocess.run([str(VENV_BIN / "attnas-search"), "dataset=folder", f"dataset.root={root}", "space=resnet18",
                          "evaluator=tiny", "n_trials=2", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, timeout=300)
    # unreadable data is the data's fault, not a trial's: one line naming the file, before any trial counts
    said = run.stdout + run.stderr
    assert run.returncode == 2 and "cannot read image" in said and "the file is corrupt or not an image" in said, said[-2000:]
    assert "Traceback" not in said


def test_an_interrupted_reference_is_queued_again_on_resume_and_failures_do_not_count(tmp_path, monkeypatch, caplog):
    interrupted = []

    def ctrl_c_once(inner):
        def score(spec, seed):
            if str(spec) == "resnet18" and not interrupted:
                interrupted.append(1)
                raise KeyboardInterrupt  # the user presses Ctrl-C while the baseline trains
            return inner(spec, seed)

        return score

    patch_score(monkeypatch, ctrl_c_once)
    with pytest.raises(KeyboardInterrupt):
        run_search(config(tmp_path, "n_trials=3"))
    study = optuna.load_study(study_name=config(tmp_path).study_name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    (first,) = study.trials[:1]
    assert first.state == TrialState.FAIL and first.user_attrs["error"] == "interrupted: SIGINT (Ctrl-C)"
    with caplog.at_level("INFO", logger="attnas.search"):
        study = run_search(config(tmp_path, "n_trials=3"))  # the same command again
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and "resnet18" in {t.user_attrs["spec"] for t in complete}  # the baseline is back
    assert sum(t.user_attrs.get("reference_spec") == "resnet18" for t in study.trials) == 2  # queued once more, not twice
    assert re.search(r"trial \d+ resnet18: mAP [0-9.]+, latency_ratio [0-9.]+( ± [0-9.]+)? \(1 seed\), \d+ s", caplog.text)


def test_the_search_stops_after_max_failures(tmp_path, monkeypatch):
    def always_failing(inner):
        def score(spec, seed):
            raise RuntimeError("diverged")

        return score

    patch_score(monkeypatch, always_failing)
    study = run_search(config(tmp_path, "n_trials=10", "max_failures=3"))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
