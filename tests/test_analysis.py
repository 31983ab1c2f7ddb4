import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml

from attnas.models import build_model, layout
from attnas.search.analysis.view import view
from attnas.search.pareto import hypervolume, pareto_mask
from attnas.search.analysis.evidence import probability_non_dominated, verdict
from attnas.search.analysis.deploy import export_model
from attnas.search.analysis.export import InsignificantError, export_spec, knee, load_study, pick
from attnas.search.analysis.report import write_report
from attnas.search.analysis.rules import discoveries, fit_effects, rules_in_words
from attnas.search.apps.confirm import confirm
from attnas.space import ArchSpec, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(entries, storage=None, name="hand"):
    """A study as attnas-search writes it: spec, per-seed runs and metrics as user attributes,
    constraints set. An entry's mAP is one value (one seed) or a list (one per seed)."""
    study = optuna.create_study(directions=["maximize", "minimize"], storage=storage, study_name=name)
    study.set_user_attr("objectives", ["mAP", "latency_ratio"])
    study.set_user_attr("constraints", {"latency_ratio": 1.2})
    for entry in entries:
        spec, runs, lat = entry[:3]
        runs = runs if isinstance(runs, list) else [runs]
        m = float(np.mean(runs))
        trial = study.ask()
        trial.set_user_attr("spec", spec)
        trial.set_user_attr("per_seed", {"seeds": list(range(len(runs))), "mAP": runs})
        trial.set_user_attr("metrics", {"mAP": m, "latency_ratio": lat})
        if len(entry) > 3:
            trial.set_user_attr(*entry[3])
        trial.set_constraint("latency_ratio", lat - 1.2)
        study.tell(trial, [m, lat])
    return study


HAND = [
    ("resnet50", [0.698, 0.700, 0.702], 1.00, ("reference", True)),  # three seeds: the noise floor
    ("resnet50:layer3.5=cnl", [0.738, 0.742, 0.740], 1.02),  # with the plain backbone: 2 residual degrees of freedom
    ("resnet50:layer3.5=se", 0.72, 1.01),
    ("resnet50:layer1.2=nl", 0.73, 1.60),  # better mAP than SE but infeasible (latency > 1.2)
    ("resnet50:layer2.3=se", 0.71, 1.03),  # dominated by layer3.5=se
    ("resnet50:layer3.5=cnl", 0.74, 1.02, ("duplicate_of", 1)),  # re-proposal
    ("resnet50:layer4.0=eca", 0.72, 1.01),  # tie with layer3.5=se: both stay on the front
]


def test_front_counts_each_architecture_once_keeps_ties_and_drops_infeasible():
    v = view(make_study(HAND))
    assert len(v.architectures) == 6
    assert int(v.architectures.loc[v.architectures.spec == "resnet50:layer3.5=cnl", "times_proposed"].iloc[0]) == 2
    assert list(v.front["spec"]) == ["resnet50:layer3.5=cnl", "resnet50:layer3.5=se", "resnet50:layer4.0=eca", "resnet50"]
    assert not v.architectures.set_index("spec").loc["resnet50:layer1.2=nl", "feasible"]


def test_pareto_mask_known_answer():
    values = np.array([[0.7, 1.0], [0.74, 1.02], [0.71, 1.03], [0.74, 1.02]])
    assert pareto_mask(values, ["maximize", "minimize"]).tolist() == [True, True, False, True]


def test_probability_of_being_on_the_front_is_seeded_and_follows_the_uncertainty():
    means = np.array([[0.70, 1.00], [0.74, 1.02], [0.60, 1.30], [0.72, 1.01], [0.72, 1.01]])
    ses = np.array([[0.002, 0.0], [0.002, 0.0], [0.002, 0.0], [0.002, 0.0], [0.002, 0.0]])
    p = probability_non_dominated(means, ses, ["maximize", "minimize"], draws=4000)
    assert p[0] == p[1] == 1.0 and p[2] == 0.0  # clear front members; far behind
    assert abs(p[3] - 0.5) < 0.05 and abs(p[4] - 0.5) < 0.05 and p[3] + p[4] == pytest.approx(1.0)  # a coin toss
    assert (probability_non_dominated(means, ses, ["maximize", "minimize"], draws=4000) == p).all()  # reproducible
    wide = probability_non_dominated(means[:2], np.array([[0.05, 0.0], [0.05, 0.0]]), ["maximize", "maximize"], draws=4000)
    assert 0.2 < wide[0] < 0.4  # 0.70 vs 0.74 with SE 0.05 each: P(first ahead) = Phi(-0.04 / 0.0707) = 0.29


def test_hypervolume_known_answer():
    points = np.array([[0.7, 1.0], [0.74, 1.02]])
    # reference (0.6, 1.1): union of two rectangles = 0.1*0.1 + 0.04*0.08
    assert hypervolume(points, ["maximize", "minimize"], np.array([0.6, 1.1])) == pytest.approx(0.01 + 0.0032)


def test_knee_is_the_bend_of_the_front():
    front = pd.DataFrame({"mAP": [0.70, 0.78, 0.80], "latency_ratio": [1.00, 1.02, 1.50]})
    assert knee(front, ["mAP", "latency_ratio"], ["maximize", "minimize"]) == 1


PLANTED = {("cnl", "layer3"): 0.03, ("se", "layer4"): 0.01, ("nl", "layer1"): -0.02}  # the rest: no effect


def simulated_table(seed: int, archs: int = 80, noise: float = 0.01) -> pd.DataFrame:
    """A study's architectures under a known additive truth: planted stage effects on mAP plus
    Gaussian seed noise (one seed each), NL in stage 1 slow; every other placement does nothing."""
    rng = np.random.default_rng(seed)
    space = SearchSpace("resnet50", "all", ("se", "cnl", "nl"), max_blocks=3)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rows = {}
    while len(rows) < archs:
        spec = space.sample(sampler.ask())
        truth = 0.60 + sum(PLANTED.get((c.block, stage), 0.0) for c, stage in zip(spec.blocks.values(), spec.stages().values()))
        lat = 1.0 + sum(0.5 for c, stage in zip(spec.blocks.values(), spec.stages().values()) if (c.block, stage) == ("nl", "layer1"))
        rows[str(spec)] = {"spec": str(spec), "mAP": truth + rng.normal(0, noise), "latency_ratio": lat + rng.normal(0, 0.002),
                           "seeds": 1, "mAP_se": noise, "latency_ratio_se": 0.002}
    return pd.DataFrame(list(rows.values()))


def test_rule_intervals_cover_planted_effects_and_call_zero_effects_noise():
    covered = planted = zero_called_noise = zeros = 0
    for seed in range(50):  # 50 simulated studies
        effects = discoveries(fit_effects(simulated_table(seed), ["mAP"], "stage", seed=seed))
        for e in effects:
            truth = PLANTED.get((e.block, e.where), 0.0)
            if truth:
                planted += 1
                covered += e.lo <= truth <= e.hi
            else:
                zeros += 1
                zero_called_noise += not e.finding
    assert planted >= 140 and zeros >= 400
    assert covered / planted >= 0.90, f"95% intervals covered the planted effects {covered}/{planted} times"
    assert zero_called_noise / zeros >= 0.90, f"zero effects called noise {zero_called_noise}/{zeros} times"


def test_rules_state_findings_only_when_the_interval_excludes_zero():
    table = simulated_table(0, archs=200)
    stage = discoveries(fit_effects(table, ["mAP", "latency_ratio"], "stage"))
    rules = rules_in_words(table, table.nlargest(5, "mAP"), ["mAP", "latency_ratio"], stage)
    assert re.match(r"cnl in layer3: \+[23]\.\d+ mAP points \[\+[23]", rules.findings[0]), rules.findings[0]
    assert any(r.startswith("nl in layer1: +50% latency") for r in rules.findings)
    by_feature = {(e.feature, e.objective): e for e in stage}
    for text in rules.findings:
        feature = text.split(":")[0].replace(" in ", "@")
        objective = "latency_ratio" if "latency" in text else "mAP"
        assert by_feature[(feature, objective)].finding, text
    assert any("not distinguishable from noise" in r for r in rules.noise)


def test_dashboard_is_self_contained_and_shows_the_front(tmp_path):
    paths = write_report(make_study(HAND), tmp_path)
    page = paths["html"].read_text()
    assert "<script src=" not in page  # plotly.js is inline: opens without network
    assert "Plotly.newPlot" in page and page.count("copySpec(this)") == 4
    for spec in ("resnet50:layer3.5=cnl", "resnet50:layer4.0=eca"):
        assert spec in page
    summary = json.loads(paths["json"].read_text())
    assert summary["architectures"] == 6 and summary["duplicate_trials"] == 1 and summary["hypervolume"] > 0
    assert [r["spec"] for r in summary["front"]][0] == "resnet50:layer3.5=cnl"
    assert len(pd.read_csv(paths["front_csv"])) == 4


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_dashboard_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    page = write_report(make_study(HAND), tmp_path)["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000"]
    shot = tmp_path / "dashboard.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="main-svg"') >= 8  # each rendered Plotly figure draws two main SVG layers
    assert "scatterlayer" in dom and "hm" in dom  # the front's scatter and the heatmap were drawn
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not a blank page


def test_export_writes_spec_metrics_uncertainty_verdict_and_provenance(tmp_path):
    from tests.test_confirmation import TRUTH, PlantedEvaluator

    study = make_study(HAND)
    retrain = PlantedEvaluator(TRUTH)  # training replaced by the truth: the fresh-seed runs of a confirmation
    again = lambda spec: confirm(study, retrain, [spec], seeds=4)  # noqa: E731
    spec, record = export_spec(study, "latency<=1.015", tmp_path, storage="memory", confirm=again)
    assert spec == ArchSpec.parse("resnet50:layer3.5=se")  # best mAP among latency <= 1.015 (tie broken by trial order)
    assert record["provenance"]["trial"] == 2 and record["metrics"]["mAP"] == 0.72
    assert record["verdict"]["significant"] is True and record["verdict"]["versus"] == "resnet50"
    assert record["verdict"]["tested"] == 4  # the infeasible NL is not a candidate
    # within seed 0, the only seed they share, the plain backbone scored 0.698: the gain is 0.022, not 0.72 - 0.700
    assert record["verdict"]["gain"] == pytest.approx(0.022) and record["uncertainty"]["noise_floor"]["mAP"]["specs"] == 2
    assert record["verdict"]["confirmed"] is True and record["verdict"]["confirmation"]["gain"] == pytest.approx(0.02, abs=0.004)
    low, high = record["uncertainty"]["intervals_95"]["mAP"]
    assert low < 0.72 < high
    assert ArchSpec.load(tmp_path / "architecture.yaml") == spec
    assert ArchSpec.load(tmp_path / "architecture.json") == spec
    assert export_spec(study, "max_map", tmp_path / "max", confirm=again)[0] == ArchSpec.parse("resnet50:layer3.5=cnl")
    assert export_spec(study, "knee", tmp_path / "knee", confirm=again)[0] in {ArchSpec.parse(s) for s in view(study).front["spec"]}


def test_a_knee_never_pays_latency_for_a_tie_within_noise():
    # the knee of these three is the middle one, which costs 5% latency for 0.00002 mAP over the fast one
    study = make_study([("resnet50", [0.698, 0.700, 0.702], 1.00, ("reference", True)),
                        ("resnet50:layer3.5=cnl", [0.768, 0.772, 0.770], 1.15),
                        ("resnet50:layer4.0=eca", 0.73000, 1.01), ("resnet50:layer3.5=se", 0.73002, 1.06),
                        ("resnet50:layer2.3=se", 0.60, 1.02)])
    front = view(study).front
    candidates = front[front["num_blocks"] > 0].reset_index(drop=True)
    assert candidates.loc[knee(candidates, ["mAP", "latency_ratio"], ["maximize", "minimize"]), "spec"] == "resnet50:layer3.5=se"
    assert pick(view(study), "knee")[0]["spec"] == "resnet50:layer4.0=eca"  # the same mAP within noise, 5% faster


def test_exported_model_round_trips_in_every_format(tmp_path):
    pytest.importorskip("onnxruntime")
    spec = ArchSpec.parse("resnet18:layer3.1=cnl,layer4.0=se@pre")
    torch.manual_seed(0)
    trained = build_model(spec, num_classes=5)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    written = export_model(spec, tmp_path / "out", weights=str(tmp_path / "trained.pt"), input_size=(64, 32))
    assert set(written) == {"state_dict", "torchscript", "onnx"} and Path(written["onnx"]).exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx", "model.torchscript.pt", "model_state_dict.pt"]
    x = torch.randn(3, 3, 64, 32)  # another batch size than the export's: dynamic batch
    expected = trained.eval()(x)
    rebuilt = build_model(spec, 5)
    rebuilt.load_state_dict(torch.load(written["state_dict"], weights_only=True))
    torch.testing.assert_close(rebuilt.eval()(x), expected)
    torch.testing.assert_close(torch.jit.load(written["torchscript"])(x), expected)
    import onnxruntime

    session = onnxruntime.InferenceSession(written["onnx"], providers=["CPUExecutionProvider"])
    torch.testing.assert_close(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), expected, rtol=1e-4, atol=1e-4)


def test_bad_requests_list_what_exists(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_study(HAND, storage=storage, name="real")
    with pytest.raises(ValueError, match="no study 'other' in .*; studies there: real"):
        load_study(storage, "other")
    empty = optuna.create_study(storage=storage, study_name="empty", directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="has no completed trial .*trials by state: none"):
        view(empty)
    failed = empty.ask()
    empty.tell(failed, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(ValueError, match="trials by state: \\{'FAIL': 1\\}"):
        view(load_study(storage, "empty"))
    with pytest.raises(ValueError, match="no significant architecture has latency_ratio <= 0.5; the range seen is 1.01..1.03"):
        pick(view(make_study(HAND)), "latency<=0.5")
    with pytest.raises(ValueError, match="unknown pick 'fastest'"):
        pick(view(make_study(HAND)), "fastest")


@pytest.mark.slow
def test_report_and_export_commands(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_study(HAND, storage=storage, name="cli")
    bin_dir = Path(sys.executable).parent
    report = subprocess.run([str(bin_dir / "attnas-report"), f"storage={storage}", "study_name=cli", f"out={tmp_path / 'rep'}"],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "dashboard.html").exists()
    refused = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=cli", "pick=latency<=1.015",
                              f"out={tmp_path / 'exp'}"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3 and "was not confirmed on fresh seeds" in refused.stdout + refused.stderr  # made by hand
    export = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=cli", "pick=latency<=1.015",
                             f"out={tmp_path / 'exp'}", "allow_unconfirmed=true"], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    assert "picked resnet50:layer3.5=se" in export.stdout
    record = yaml.safe_load((tmp_path / "exp" / "architecture.yaml").read_text())
    assert record["embedding"].startswith("eval() returns the BNNeck embedding") and record["verdict"]["significant"]
    assert record["verdict"]["confirmed"] is False
    missing = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=nope", f"out={tmp_path / 'x'}"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "studies there: cli" in missing.stderr + missing.stdout


def coin_toss_study(seed=0, storage=None):
    """Every candidate has the plain backbone's true mAP; only seed noise tells them apart. The plain
    backbone and one reference ran under three seeds, the others under the first."""
    rng = np.random.default_rng(seed)
    entries = [("resnet50", list(0.30 + rng.normal(0, 0.01, 3)), 1.00, ("reference", True)),
               ("resnet50:layer3.5=cnl", list(0.30 + rng.normal(0, 0.01, 3)), 1.01, ("reference", True)),
               ("resnet50:layer3.5=se", list(0.30 + rng.normal(0, 0.01, 3)), 1.01, ("reference", True))]
    for i, spec in enumerate(["layer2.3=eca", "layer4.0=gc", "layer1.2=nl", "layer4.2=cnl"]):
        entries.append((f"resnet50:{spec}", float(0.30 + rng.normal(0, 0.01)), 1.01 + 0.01 * (i + 1)))
    return make_study(entries, storage=storage)


def test_knee_refuses_when_no_candidate_beats_the_plain_backbone_beyond_seed_noise(tmp_path):
    study = coin_toss_study()
    with pytest.raises(InsignificantError) as info:
        export_spec(study, "knee", tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("no candidate beats resnet50 beyond seed noise at this budget: best +")
    assert "mAP points (± " in message and not (tmp_path / "architecture.yaml").exists()
    spec, record = export_spec(study, "knee", tmp_path, allow_unconfirmed=True)
    assert record["verdict"]["significant"] is False and record["verdict"]["study"].startswith("no candidate beats")
    assert yaml.safe_load((tmp_path / "architecture.yaml").read_text())["verdict"]["significant"] is False


def test_a_real_gain_is_significant_and_a_study_without_repeats_says_its_uncertainty_is_unknown():
    v = view(make_study(HAND))
    assert set(verdict(v).significant) == {"resnet50:layer3.5=cnl", "resnet50:layer3.5=se", "resnet50:layer2.3=se",
                                          "resnet50:layer4.0=eca"}  # NL is infeasible
    single = view(make_study([("resnet50", 0.70, 1.0), ("resnet50:layer3.5=cnl", 0.74, 1.02)]))
    assert not single.uncertainty_known and np.isnan(single.architectures["mAP_se"]).all()
    assert verdict(single).significant == []


def test_dashboard_shows_the_noise_floor_the_verdict_and_honest_rules(tmp_path):
    page = write_report(coin_toss_study(), tmp_path)["html"].read_text()
    evidence = page.split('id="evidence">')[1].split("</ul>")[0]
    assert "seed noise of mAP: one run moves by" in evidence and "9 runs" in evidence
    assert "within shared seeds: a seed effect common to every architecture of" in evidence
    assert "no candidate beats resnet50 beyond seed noise" in evidence
    findings = page.split('id="findings">')[1].split("</ul>")[0]
    assert "mAP points" not in findings  # no accuracy rule is claimed from a coin toss
    assert "P(on front)" in page


@pytest.mark.slow
def test_export_commands_refuse_mismatched_or_missing_weights_before_writing_anything(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_study(HAND, storage=storage, name="w")
    bin_dir = Path(sys.executable).parent
    other = tmp_path / "other"
    other.mkdir()
    torch.save(build_model("resnet50:layer1.2=nl", 3).state_dict(), other / "model.pt")
    ArchSpec.parse("resnet50:layer1.2=nl").save(other / "spec.yaml")  # what attnas-train writes beside its weights

    def export(*args):  # a hand-made study has nothing to retrain a pick with
        return subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=w", "pick=max_map",
                               "allow_unconfirmed=true", *args],
                              capture_output=True, text=True, timeout=300)

    mismatch = export("model=true", f"weights={other / 'model.pt'}", f"out={tmp_path / 'a'}")
    assert mismatch.returncode == 2 and "were trained for resnet50:layer1.2=nl" in mismatch.stdout + mismatch.stderr
    assert not (tmp_path / "a").exists()  # nothing written
    missing = export("model=true", f"out={tmp_path / 'b'}")
    assert missing.returncode == 2 and "model=true needs weights=PATH" in missing.stdout + missing.stderr
    untrained = export("model=true", "untrained=true", f"out={tmp_path / 'c'}", "input_size=[64,32]")
    assert untrained.returncode == 0, untrained.stderr
    assert {p.name for p in (tmp_path / "c").glob("model*")} >= {"model_untrained_state_dict.pt", "model_untrained.torchscript.pt"}
    assert yaml.safe_load((tmp_path / "c" / "architecture.yaml").read_text())["weights"] == "untrained"
    other_pick = export("pick=latency<=1.015", f"out={tmp_path / 'c'}")
    assert other_pick.returncode == 2 and "holds the export of resnet50:layer3.5=cnl" in other_pick.stdout + other_pick.stderr
    replaced = export("pick=latency<=1.015", f"out={tmp_path / 'c'}", "overwrite=true")
    assert replaced.returncode == 0 and not list((tmp_path / "c").glob("model*"))  # the old spec's model files are gone


@pytest.mark.slow
def test_reports_and_exports_go_next_to_the_storage_by_default(tmp_path):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    storage = f"sqlite:///{tmp_path / 'runs' / 'x' / 'study.db'}"
    make_study(HAND, storage=storage, name="near")
    bin_dir = Path(sys.executable).parent
    report = subprocess.run([str(bin_dir / "attnas-report"), f"storage={storage}", "study_name=near"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / "runs" / "x" / "reports" / "near" / "dashboard.html").exists()
    export = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=near", "allow_unconfirmed=true"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert export.returncode == 0 and (tmp_path / "runs" / "x" / "exports" / "near" / "architecture.yaml").exists()


def test_models_can_be_deep_copied_pickled_and_averaged_as_ema_and_swa_need():
    import copy
    import pickle

    model = build_model("resnet18:layer3.1=cnl(r=4),layer4.0=se@pre", 5)
    twin = copy.deepcopy(model)
    assert twin.spec == model.spec and twin.spec is not model.spec
    averaged = torch.optim.swa_utils.AveragedModel(model)
    averaged.update_parameters(model)
    assert pickle.loads(pickle.dumps(model.spec)) == model.spec
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(averaged.module.eval()(x), model.eval()(x))


def test_importances_are_computed_on_positions_not_on_sampler_slots_with_their_uncertainty():
    from attnas.search.analysis.importance import position_importances

    table = simulated_table(1, archs=120)
    table["mAP"] += [0.05 * ("layer3.5=" in spec) for spec in table["spec"]]  # anything at layer3.5 helps a lot
    v = view(make_study([(row.spec, row.mAP, row.latency_ratio) for row in table.itertuples()]))
    importances = position_importances(v.architectures, "mAP", "resnet50")
    assert set(importances["parameter"]) <= set(layout("resnet50").positions)
    top = importances.iloc[0]
    assert top["parameter"] == "layer3.5" and top["distinguishable"] and top["lo"] <= top["importance"] <= top["hi"]
    assert not importances.iloc[-1]["distinguishable"]  # a position that does nothing explains only its chance share
    assert (importances["chance"] > 0).all()


def test_an_effect_seen_in_one_architecture_is_not_listed_as_an_interval_that_includes_zero():
    from attnas.search.analysis.rules import Effect

    table = pd.DataFrame({"spec": ["resnet50", "resnet50:layer3.0=nl"], "mAP": [0.3, 0.31]})
    effects = [Effect("nl@layer3", "nl", "layer3", "latency_ratio", 0.18, 0.15, 0.22, 0.01, support=1),
               Effect("se@layer4", "se", "layer4", "latency_ratio", 0.01, -0.01, 0.03, 0.01, support=3)]
    rules = rules_in_words(table, table, ["latency_ratio"], effects)
    assert rules.findings == []
    include_zero = [r for r in rules.noise if "include zero" in r]
    alone = [r for r in rules.noise if "one architecture only" in r]
    assert len(include_zero) == 1 and "se in layer4" in include_zero[0] and "nl" not in include_zero[0]
    assert len(alone) == 1 and "nl in layer3 [+15, +22]" in alone[0]


def test_dashboard_draws_no_interval_on_exact_flops_and_states_how_long_candidates_trained(tmp_path):
    from attnas.search.analysis.report import front_figure

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["mAP", "gflops"])
    for spec, runs, flops in HAND_FLOPS:
        trial = study.ask()
        trial.set_user_attr("spec", spec)
        trial.set_user_attr("per_seed", {"seeds": list(range(len(runs))), "mAP": runs, "train_steps": [96] * len(runs)})
        trial.set_user_attr("metrics", {"mAP": float(np.mean(runs)), "gflops": flops})
        study.tell(trial, [float(np.mean(runs)), flops])
    figure = front_figure(view(study))
    assert all(trace.error_x.visible is False for trace in figure.data[:2])  # GFLOPs are exact: no bars
    assert any(trace.error_y.visible for trace in figure.data[:2])  # mAP has seed noise: bars
    page = write_report(study, tmp_path)["html"].read_text()
    evidence = page.split('id="evidence">')[1].split("</ul>")[0]
    assert "(each candidate trained 96 optimiser steps, 96-96 over 10 runs)" in evidence


HAND_FLOPS = [("resnet50", [0.698, 0.700, 0.702], 4.10), ("resnet50:layer3.5=cnl", [0.738, 0.742, 0.740], 4.12),
              ("resnet50:layer3.5=se", [0.72], 4.11), ("resnet50:layer4.0=eca", [0.71], 4.10),
              ("resnet50:layer2.3=se", [0.70], 4.11), ("resnet50:layer1.2=nl", [0.73], 4.60)]
