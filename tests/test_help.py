"""`--help` of every app answers at once (without importing torch), and says what is true: the
options a user can pick, every key with its real default, the folders the apps really write."""

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from attnas.search.apps.config import ExportConfig, ProfileConfig, ReportConfig, default_output
from attnas.search.apps.entry import APPS, fast_help
from attnas.search.config import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
HEAVY = ("torch", "torchvision", "optuna", "hydra", "plotly", "pandas")
GROUPS = ("space", "dataset", "evaluator", "sampler", "device")


def help_of(script: str) -> tuple[str, set[str]]:
    """What `script --help` prints, and which heavy packages it imported on the way."""
    run = subprocess.run([sys.executable, "-X", "importtime", str(VENV_BIN / script), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    return run.stdout, {name for name in HEAVY if name in imported}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_torch(script):
    text, heavy = help_of(script)
    assert script in text and not heavy, f"{script} --help imported {sorted(heavy)}"


def test_every_script_enters_through_entry_py():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(target.startswith("attnas.search.apps.entry:") for target in scripts.values()), scripts
    assert set(scripts) == set(APPS)


def documented_defaults(text: str) -> dict[str, str]:
    """`  key   what it is [default]` lines of a help text."""
    bracketed = r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"  # [8], [[256, 128]]: one level of nesting
    return {m[1]: m[2] for m in re.finditer(rf"^ +([a-z_]+) {{2,}}.*?{bracketed}$", text, re.MULTILINE)}


def shown(value) -> str:
    """A default as the help writes it: true, false, none, 8, 7200.0, [256, 128], {}."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    return str(value)


@pytest.mark.parametrize("config, schema, skip", [
    ("config", SearchConfig, GROUPS), ("report", ReportConfig, ()), ("export", ExportConfig, ()),
    ("profile", ProfileConfig, ("space", "device"))])
def test_help_names_every_key_with_its_real_default(config, schema, skip):
    text = fast_help(config)
    stated = documented_defaults(text)
    for field in dataclasses.fields(schema):
        if field.name in skip:
            continue
        assert re.search(rf"^ +{field.name}\b", text, re.MULTILINE), f"{config} help does not name {field.name}"
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        described = default is None and stated.get(field.name) != "none" or "${" in str(default)  # said in words
        if field.name in stated and (default is None or isinstance(default, (bool, int, float, str, list))) and not described:
            assert stated[field.name] == shown(default), f"{config} help: {field.name} [{stated[field.name]}], schema {default!r}"


def test_search_help_lists_options_a_user_can_pick_and_no_unset_budgets():
    text = fast_help("config")
    assert "base_" not in text and "null" not in text
    assert "evaluator  proxy (default), cost, full, latency, supernet, tiny" in text
    assert "attnas-search dataset=folder dataset.root=" in text  # your own data
    assert "source .venv/bin/activate" in text and "runs/<study_name>/: study.db, app.log" in text


def test_help_names_the_folders_the_apps_really_write():
    study = "attnas-resnet50-synthetic-proxy"
    search = fast_help("config")
    for kind in ("report", "export"):
        assert default_output(f"sqlite:///runs/{study}/study.db", study, kind) == f"runs/{study}/{kind}"
        assert f"# runs/<study_name>/{kind}/" in search
        assert default_output("sqlite:///shared/all.db", study, kind) == f"shared/{kind}s/{study}"
        assert default_output("postgresql://db/attnas", study, kind) == f"runs/{study}/{kind}"
        text = fast_help(kind)
        assert f"runs/<study>/{kind}/ for runs/<study>/study.db" in text
        assert f"<folder>/{kind}s/<study_name>/ for a file holding several studies" in text
        assert f"runs/<study_name>/{kind}/" in text and "for a server" in text


def test_the_log_file_the_help_names_is_the_one_hydra_writes():
    import yaml

    conf = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())
    assert f"{conf['hydra']['job']['name']}.log" == "app.log" and "app.log" in fast_help("config")


def test_synth_help_states_the_generators_defaults():
    from attnas.evaluators.reid.datasets.synthetic import SynthConfig
    from attnas.search.apps.synth_app import DEFAULTS, parser

    assert DEFAULTS == {name: getattr(SynthConfig, name) for name in DEFAULTS}
    assert all(f"--{name.replace('_', '-')}" in parser().format_help() for name in DEFAULTS)
