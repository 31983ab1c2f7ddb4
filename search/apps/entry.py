"""The console scripts: `--help` in a blink, and an interrupt anywhere as one line.

Every app module imports torch, Optuna and Hydra (seconds before a word is printed). So the
scripts enter here: `--help` of a Hydra app is its `hydra.help.template` in `conf/<config>.yaml`,
with `$APP_CONFIG_GROUPS` filled from the group folders (the options a user can pick, not the
`base_*` schemas of the config store), printed without importing any of that. Everything else
imports the app and runs it; Ctrl-C or SIGTERM from the first import to the last line ends in one
line saying what was interrupted and how to go on (`attnas.search.interrupts`), exit 130 or 143.
"""

from __future__ import annotations

import importlib
import string
import sys
from dataclasses import dataclass
from importlib import resources

from attnas.search.interrupts import describe, doing, exit_status, terminate_as_interrupt


@dataclass(frozen=True)
class App:
    module: str  # holds main()
    config: str | None  # the Hydra config (conf/<config>.yaml) whose help template answers --help
    resume: str  # what to do after an interrupt
    doing: str  # what the app does, for an interrupt that no step of it has named


APPS = {
    "attnas-search": App("attnas.search.apps.search_app", "config", "run the same command to resume", "searching"),
    "attnas-report": App("attnas.search.apps.report_app", "report", "run the same command again", "writing the report"),
    "attnas-export": App("attnas.search.apps.export_app", "export", "run the same command again", "exporting"),
    "attnas-profile": App("attnas.search.apps.profile_app", "profile",
                          "run the same command to resume where it stopped (the measured entries are kept)", "profiling"),
    "attnas-train": App("attnas.search.apps.train_app", "train", "run the same command again", "training"),
    "attnas-cost": App("attnas.search.apps.cost_app", None, "run the same command again", "timing the specs"),
    "attnas-synth": App("attnas.search.apps.synth_app", None, "run the same command again", "writing the data set"),
}


def app(prog: str) -> App:
    """The entry of `prog`; an app that is not listed (a plugin's) gets general words."""
    return APPS.get(prog) or App("", None, "run the same command again", "running")


def interrupted_line(prog: str, interrupt: KeyboardInterrupt) -> str:
    """'interrupted (Ctrl-C) while making the parent resnet18 (nothing of it is kept); run the same command to resume'."""
    return f"{describe(interrupt)}; {app(prog).resume}"


def _group_options(group: str) -> list[str]:
    folder = resources.files("attnas.conf") / group
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _config_groups(defaults: list) -> str:
    """'  space      resnet50 (default), convnext_tiny, ...' for each group of a defaults list."""
    lines = []
    for entry in defaults:
        if not isinstance(entry, dict):
            continue
        ((group, default),) = entry.items()
        if group.startswith(("override ", "hydra")):
            continue
        others = [option for option in _group_options(group) if option != default]
        lines.append(f"  {group:<10} {', '.join([f'{default} (default)', *others])}")
    return "\n".join(lines)


def _config_file(config: str | None):
    """conf/<config>.yaml, or None: an app without one parses its own arguments (argparse)."""
    path = resources.files("attnas.conf") / f"{config}.yaml" if config else None
    return path if path is not None and path.is_file() else None


def fast_help(config: str) -> str | None:
    """The app's help from its config's template, or None when the config has none."""
    import yaml

    path = _config_file(config)
    if path is None:
        return None
    data = yaml.safe_load(path.read_text()) or {}
    template = ((data.get("hydra") or {}).get("help") or {}).get("template")
    if template is None:
        return None
    return string.Template(template).safe_substitute(APP_CONFIG_GROUPS=_config_groups(data.get("defaults") or []))


def run(prog: str) -> None:
    entry, args = APPS[prog], sys.argv[1:]
    hydra = _config_file(entry.config) is not None
    try:
        with terminate_as_interrupt():
            if hydra and ("-h" in args or "--help" in args):
                text = fast_help(entry.config)
                if text is not None:
                    print(text)
                    return
            with doing("starting"):
                main = importlib.import_module(entry.module).main
            with doing("starting" if hydra else entry.doing):  # a Hydra app names its task's steps (cli.hydra_app)
                main()
    except KeyboardInterrupt as interrupt:
        print(f"{prog}: {interrupted_line(prog, interrupt)}", file=sys.stderr)
        sys.exit(exit_status(interrupt))


def search() -> None:
    run("attnas-search")


def report() -> None:
    run("attnas-report")


def export() -> None:
    run("attnas-export")


def profile() -> None:
    run("attnas-profile")


def train() -> None:
    run("attnas-train")


def cost() -> None:
    run("attnas-cost")


def synth() -> None:
    run("attnas-synth")
