import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from attnas.models import build_model
from attnas.search.analysis import hypervolume, pareto_mask, view
from attnas.search.export import export_model, export_spec, knee, load_study, pick
from attnas.search.report import write_report
from attnas.search.rules import effects_frame, fit_effects, rules_in_words
from attnas.space import ArchSpec, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(entries, storage=None, name="hand"):
    """A study as attnas-search writes it: spec + metrics as user attributes, constraints set."""
    study = optuna.create_study(directions=["maximize", "minimize"], storage=storage, study_name=name)
    study.set_user_attr("objectives", ["mAP", "latency_ratio"])
    for entry in entries:
        spec, m, lat = entry[:3]
        trial = study.ask()
        metrics = {"mAP": m, "latency_ratio": lat}
        trial.set_user_attr("spec", spec)
        trial.set_user_attr("metrics", metrics)
        if len(entry) > 3:
            trial.set_user_attr(*entry[3])
        trial.set_constraint("latency_ratio", lat - 1.2)
        study.tell(trial, [m, lat])
    return study


HAND = [
    ("resnet50", 0.70, 1.00, ("reference", True)),
    ("resnet50:layer3.5=cnl", 0.74, 1.02),
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


def test_hypervolume_known_answer():
    points = np.array([[0.7, 1.0], [0.74, 1.02]])
    # reference (0.6, 1.1): union of two rectangles = 0.1*0.1 + 0.04*0.08
    assert hypervolume(points, ["maximize", "minimize"], np.array([0.6, 1.1])) == pytest.approx(0.01 + 0.0032)


def test_knee_is_the_bend_of_the_front():
    front = pd.DataFrame({"mAP": [0.70, 0.78, 0.80], "latency_ratio": [1.00, 1.02, 1.50]})
    assert knee(front, ["mAP", "latency_ratio"], ["maximize", "minimize"]) == 1


def test_rules_recover_a_planted_effect():
    rng = np.random.default_rng(0)
    space = SearchSpace("resnet50", "all", ("se", "cnl", "nl"), max_blocks=3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rows = []
    for _ in range(300):
        spec = space.sample(study.ask())
        mAP = 0.60 + rng.normal(0, 0.005)
        lat = 1.0 + rng.normal(0, 0.003)
        for pos, choice in spec.blocks.items():
            if choice.block == "cnl" and pos.startswith("layer3"):
                mAP += 0.03  # planted: C-NL in stage 3 helps
            if choice.block == "nl" and pos.startswith("layer1"):
                lat += 0.5  # planted: NL in stage 1 is slow
        rows.append({"spec": str(spec), "mAP": mAP, "latency_ratio": lat})
    table = pd.DataFrame(rows).drop_duplicates("spec")
    stage = effects_frame(fit_effects(table, ["mAP", "latency_ratio"], "stage")).set_index(["feature", "objective"])
    est, err = stage.loc[("cnl@layer3", "mAP"), ["estimate", "stderr"]]
    assert abs(est - 0.03) < 3 * err + 1e-3 and err < 0.005
    assert abs(stage.loc[("nl@layer1", "latency_ratio"), "estimate"] - 0.5) < 0.02
    assert abs(stage.loc[("se@layer2", "mAP"), "estimate"]) < 0.005
    rules = rules_in_words(table, table.nlargest(5, "mAP"), ["mAP", "latency_ratio"])
    assert rules[0].startswith("cnl at layer3.") and "mAP" in rules[0] and "latency" in rules[0]


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


def test_export_writes_spec_metrics_and_provenance(tmp_path):
    study = make_study(HAND)
    spec, record = export_spec(study, "latency<=1.015", tmp_path, storage="memory")
    assert spec == ArchSpec.parse("resnet50:layer3.5=se")  # best mAP among latency <= 1.015 (tie broken by trial order)
    assert record["provenance"]["trial"] == 2 and record["metrics"]["mAP"] == 0.72
    assert ArchSpec.load(tmp_path / "architecture.yaml") == spec
    assert ArchSpec.load(tmp_path / "architecture.json") == spec
    assert export_spec(study, "max_map", tmp_path)[0] == ArchSpec.parse("resnet50:layer3.5=cnl")
    assert export_spec(study, "knee", tmp_path)[0] in {ArchSpec.parse(s) for s in view(study).front["spec"]}


def test_exported_model_round_trips_in_every_format(tmp_path):
    pytest.importorskip("onnxruntime")
    spec = ArchSpec.parse("resnet18:layer3.1=cnl,layer4.0=se@pre")
    torch.manual_seed(0)
    trained = build_model(spec, num_classes=5)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    written = export_model(spec, tmp_path / "out", weights=str(tmp_path / "trained.pt"), input_size=(64, 32))
    assert set(written) == {"state_dict", "torchscript", "onnx"} and Path(written["onnx"]).exists()
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
    with pytest.raises(ValueError, match="no feasible architecture has latency_ratio <= 0.5; the range seen is 1..1.03"):
        pick(view(make_study(HAND)), "latency<=0.5")
    with pytest.raises(ValueError, match="unknown pick 'fastest'"):
        pick(view(make_study(HAND)), "fastest")


def test_report_and_export_commands(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_study(HAND, storage=storage, name="cli")
    bin_dir = Path(sys.executable).parent
    report = subprocess.run([str(bin_dir / "attnas-report"), f"storage={storage}", "study_name=cli", f"out={tmp_path / 'rep'}"],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "dashboard.html").exists()
    export = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=cli", "pick=latency<=1.015",
                             f"out={tmp_path / 'exp'}"], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    assert "picked resnet50:layer3.5=se" in export.stdout
    missing = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", "study_name=nope", f"out={tmp_path / 'x'}"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "studies there: cli" in missing.stderr + missing.stdout
