"""Running the Hydra apps: config errors as one line naming what is valid, before any work.

Hydra reports a bad override in five to thirty lines, and lets `+key=value` through to a
structured config (OmegaConf then drops it silently). `hydra_app` composes the command line once
before handing it to Hydra (the first job of a sweep stands for all), checks every key against
its schema, and turns the failure into `attnas-search: error: unknown key 'idz' in
dataset.synth; valid keys: ids, cams, ...` with exit status 2. Ctrl-C or SIGTERM inside the app is
logged as one line (what was interrupted, how to go on; `attnas.search.interrupts`), exit 130/143.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Any, Callable, Iterator

import hydra
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from attnas.search.apps.config import register_configs
from attnas.search.apps.entry import app, interrupted_line
from attnas.search.apps.plugins import load_plugins
from attnas.search.apps.validate import check_group_choice, check_keys, describe_config_error, missing_keys, typed
from attnas.search.config import ConfigError
from attnas.search.faults import EXIT_FAULT, SearchHalted, fault
from attnas.search.interrupts import doing, exit_status, terminate_as_interrupt

#: Hydra flags after which the command line is Hydra's business (help, printing the config, ...)
_HYDRA_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-p", "--package", "-cp", "--config-path",
                "-cn", "--config-name", "-cd", "--config-dir", "--shell-completion", "-sc", "--run", "-r", "--resolve")


def first_job_overrides(args: list[str]) -> list[str] | None:
    """The overrides of the first job of the command line (sweeps take their first value);
    None when a Hydra flag leaves nothing to check."""
    if any(arg.split("=")[0] in _HYDRA_FLAGS for arg in args):
        return None
    lines = [arg for arg in args if arg not in ("-m", "--multirun")]
    chosen = []
    for override in OverridesParser.create().parse_overrides(lines):
        if override.key_or_group.startswith("hydra"):
            continue
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            chosen.append(f"{override.get_key_element()}={first}")
        else:
            first = override.value()
            chosen.append(override.input_line)
        check_group_choice(override.key_or_group, first)
    return chosen


def precheck(config_name: str, args: list[str]) -> str | None:
    """The one-line error of composing `args`, or None when they compose."""
    try:
        overrides = first_job_overrides(args)
        if overrides is None:
            return None
        with initialize_config_module("attnas.conf", version_base="1.3"):
            cfg = compose(config_name, overrides=overrides)
        check_keys(cfg)
        missing = missing_keys(cfg)
        if missing:
            return f"missing {', '.join(f'{key}=...' for key in missing)}"
    except ConfigError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - Hydra's override and composition errors
        return describe_config_error(error)
    return None


@contextlib.contextmanager
def one_line_faults() -> Iterator[None]:
    """A fault in the block (a full disk, a lost or damaged storage: `attnas.search.faults`) ends
    the app with one line and status 2 (a search has stopped its other workers on the way out); a
    search's running trial was marked FAIL with the reason when the storage still took it (else its
    heartbeat fails it when the same command resumes). Other errors pass through."""
    try:
        yield
    except (Exception, SearchHalted) as error:  # SearchHalted is a KeyboardInterrupt, as Ctrl-C is
        reason = fault(error)
        if reason is None:
            raise
        logging.getLogger("attnas").error("%s", reason)
        sys.exit(EXIT_FAULT)


def hydra_app(task: Callable[[Any], None], config_name: str, prog: str) -> Callable[[], None]:
    """A console entry point running `task(typed config)` as Hydra app `prog`."""

    def main() -> None:
        # heartbeats and the brute-force sampler are marked experimental; users chose them knowingly
        import optuna

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        logging.raiseExceptions = False  # a full disk must not turn every log line into a traceback on stderr
        try:
            load_plugins(sys.argv[1:])  # before the configs: what plugins register is a valid value
        except ConfigError as failed:
            print(f"{prog}: error: {failed}", file=sys.stderr)
            sys.exit(2)
        register_configs()
        error = precheck(config_name, sys.argv[1:])
        if error is not None:
            print(f"{prog}: error: {error}", file=sys.stderr)
            sys.exit(2)

        @hydra.main(version_base="1.3", config_path="pkg://attnas.conf", config_name=config_name)
        def run(cfg: DictConfig) -> None:
            try:
                config = typed(cfg)
            except ConfigError as error:
                logging.getLogger(f"attnas.{prog.removeprefix('attnas-')}").error("%s", error)
                sys.exit(2)
            try:  # in the job's log too: one line, what was interrupted and how to go on
                with terminate_as_interrupt(), doing(app(prog).doing), one_line_faults():
                    task(config)
            except KeyboardInterrupt as interrupt:
                logging.getLogger(f"attnas.{prog.removeprefix('attnas-')}").error("%s", interrupted_line(prog, interrupt))
                sys.exit(exit_status(interrupt))

        run()

    return main
