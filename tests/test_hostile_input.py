"""Hostile and careless input: a study anyone could have written (script in every stored string),
a weights file that would run code, study names that are paths, options no block can build, a
changed encoding. Each is refused in one line or made harmless."""

import os
import shutil
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch

from attnas.models import build_model
from attnas.models.backbones import backbone_family
from attnas.models.weights import load_state_dict, read_weights
from attnas.search.analysis.report import write_report
from attnas.search.apps.config import default_output
from attnas.search.names import check_study_name, folder_name
from attnas.space import ArchSpec, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: a script and an image whose error handler runs one; either would mark the page's <html> element
PAYLOAD = ('<script>document.documentElement.dataset.injected="script"</script>'
           '"><img src=x onerror="document.documentElement.dataset.injected=\'img\'">')


def hostile_study() -> optuna.Study:
    """A finished study whose every stored string (and every metric beyond the objectives) is the payload."""
    study = optuna.create_study(directions=["maximize", "minimize"], study_name=f"hostile{PAYLOAD}")
    study.set_user_attr("objectives", ["mAP", "latency_ratio"])
    study.set_user_attr("constraints", {"latency_ratio": 1.2})
    study.set_user_attr("stage_one_study", PAYLOAD)  # a finalists study whose first stage is not there
    study.set_user_attr("software", {"attnas": PAYLOAD})
    entries = [("resnet50", [0.700, 0.702, 0.698], 1.00), ("resnet50:layer3.5=cnl", [0.74, 0.742], 1.02),
               ("resnet50:layer3.5=se", [0.72], 1.01), ("resnet50:layer4.0=eca", [0.72], 1.01), ("resnet50:layer1.2=nl", [0.73], 1.6)]
    for number, (spec, runs, latency) in enumerate(entries):
        trial = study.ask()
        trial.set_user_attr("spec", spec)
        trial.set_user_attr("per_seed", {"seeds": list(range(len(runs))), "mAP": runs})
        trial.set_user_attr("metrics", {"mAP": float(np.mean(runs)), "latency_ratio": latency, "rank1": PAYLOAD,
                                        "mINP": PAYLOAD, "gflops": PAYLOAD, "latency_unreliable": PAYLOAD})
        trial.set_user_attr("measured_on", {"latency_source": "timer", "device": PAYLOAD, "device_name": PAYLOAD})
        for key in ("error", "skipped", "traceback", "reference_spec", "worker", "duplicate_of"):
            trial.set_user_attr(key, PAYLOAD)
        trial.set_user_attr("reference", number == 0)
        trial.set_constraint("latency_ratio", latency - 1.2)
        study.tell(trial, [float(np.mean(runs)), latency])
    return study


def test_every_stored_string_reaches_the_dashboard_escaped(tmp_path):
    paths = write_report(hostile_study(), tmp_path)
    page = paths["html"].read_text()
    assert "hostile&lt;script&gt;" in page  # the study's name is shown, as text
    for raw in ("<script>document", "<img src=x", 'onerror="document'):
        assert raw not in page, raw  # in HTML escaped, in Plotly's JSON as \u003c...
    assert paths["json"].exists() and paths["front_csv"].exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_hostile_dashboard_runs_nothing_in_headless_chromium(tmp_path):
    page = write_report(hostile_study(), tmp_path)["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert dom.count('class="main-svg"') >= 8  # the figures were drawn: the page did run its own scripts
    assert "data-injected" not in dom and "<img" not in dom  # and none of the study's


def test_a_weights_file_that_would_run_code_is_refused_in_one_line(tmp_path, monkeypatch):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cache = backbone_family("resnet18").cached_weights_path("resnet18")  # torchvision's ImageNet cache
    cache.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload()}, cache)
    with pytest.raises(ValueError, match="cached ImageNet weights of resnet18 .* is refused: loading it would run code "
                                         ".*posix.system.*save a plain state_dict") as refused:
        load_state_dict("resnet18", "imagenet")
    assert "\n" not in str(refused.value)
    shutil.copy(cache, tmp_path / "given.pth")
    with pytest.raises(ValueError, match="the weights file .*given.pth' is refused"):
        build_model("resnet18", num_classes=3, pretrained=tmp_path / "given.pth")
    (tmp_path / "cut.pth").write_bytes(cache.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a readable torch file .*damaged or truncated"):
        read_weights(tmp_path / "cut.pth")
    assert not marker.exists()  # nothing ran


@pytest.mark.parametrize("name", ["../../x", "a/b", "/etc/x", "..", "x" * 300, "séance <1>"])
def test_a_study_name_that_is_not_a_folder_name_gets_a_folder_of_its_own(name):
    folder = folder_name(name)
    assert "/" not in folder and folder not in (".", "..") and not folder.startswith(".") and len(folder) <= 100
    assert folder != folder_name(name + "!")  # two names never share a folder
    for storage in (f"sqlite:///runs/{folder}/study.db", "postgresql://u@h/db", "journal:shared/all.journal"):
        out = default_output(storage, name, "report")
        assert os.path.normpath(out).split(os.sep)[0] in ("runs", "shared") and ".." not in out.split(os.sep), out
    assert folder_name("attnas-resnet50-synthetic-proxy") == "attnas-resnet50-synthetic-proxy"  # plain names stay
    check_study_name(name)  # and all of them are valid study names


@pytest.mark.parametrize("name, message", [("", "study_name is empty"), ("a\nb", "control character"),
                                           ("x" * 513, "has 513 characters; Optuna stores at most 512")])
def test_study_names_no_storage_can_hold_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        check_study_name(name)


def test_a_search_named_like_a_path_keeps_its_files_in_the_run_folder(tmp_path):
    name = "../../escape/" + "x" * 300
    done = subprocess.run([sys.executable, "-m", "attnas.search.apps.search_app", f"study_name={name}", "evaluator=cost",
                           "space=resnet18", "n_trials=1", "progress=false", "enqueue_references=false"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(str(p).startswith(f"runs/{folder_name(name)}/") for p in written), written
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / folder_name(name) / 'study.db'}")
    assert study.user_attrs["folder_name"] == folder_name(name)  # the mapping is recorded


@pytest.mark.parametrize("spec, message", [
    ("resnet18:layer1.0=cnl(r=99999999999999999999)", "must be an integer >= 1 and at most 4096"),
    ("resnet18:layer1.0=cnl(r=100)", "does not fit the 64 channels at layer1.0: reduction r=100 is more than the 64 channels"),
    ("resnet18:layer1.0=eca(k=65)", "kernel k=65 is wider than the 64 channels it slides over; valid: odd values up to 63"),
    ("resnet18:layer4.0=cbam(k=65)", "kernel k=65 is wider than the feature maps it convolves"),
])
def test_block_options_beyond_what_the_block_can_build_are_refused(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
        ArchSpec.parse(spec)


def test_a_space_refuses_a_block_option_that_does_not_fit_a_stage_it_may_be_drawn_for():
    assert str(ArchSpec.parse("resnet18:layer4.0=cnl(r=100)")) == "resnet18:layer4.0=cnl(r=100)"  # 512 channels there
    assert SearchSpace("resnet18", ["layer4"], ["cnl(r=100)"]).cardinality() > 1
    with pytest.raises(ValueError, match="cnl\\(r=100\\) does not fit the 64 channels at layer1: .*leave that stage out"):
        SearchSpace("resnet18", "all", ["cnl(r=100)"])


def test_a_study_refuses_another_encoding_of_its_space(tmp_path):
    from tests.test_search import config
    from attnas.search import study as search_study

    search_study.setup(config(tmp_path, "space.max_blocks=4", "space.encoding=positional", "enqueue_references=false"))
    with pytest.raises(ValueError, match="was run with encoding='positional', this run has 'slots'; set "
                                         "space.encoding=positional or use another study_name"):
        search_study.setup(config(tmp_path, "space.max_blocks=4", "space.encoding=slots", "enqueue_references=false"))
