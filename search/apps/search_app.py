"""`attnas-search`: the Hydra app. Config groups in `conf/`, schemas in `attnas.search.apps.config`:

    attnas-search                                   # synthetic data, SQLite in runs/<study>/
    attnas-search dataset=market1501 dataset.root=/data/Market-1501-v15.09.15 n_trials=200
    attnas-search --multirun space.max_blocks=1,2,3
    attnas-search workers=2                        # two worker processes on one study
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import default_output
from attnas.search.apps.start import forget_failed_start, made_by_hydra_only, study_exists
from attnas.search.apps.validate import describe_config_error, typed
from attnas.search.config import ConfigError, SearchConfig
from attnas.search.faults import fault
from attnas.search.interrupts import doing
from attnas.search.names import folder_name
from attnas.search.study import prepare, search, setup
from attnas.search.apps.workers import place_worker, spawn, stop, threads_per_worker, wait

log = logging.getLogger("attnas.search")


def study_folder(cfg: SearchConfig) -> Path:
    """Where the study's own files live (study.db, evaluations.jsonl, the parent, the report): the
    run folder, or for a --multirun job the sweep point's folder, which its jobs share."""
    config = HydraConfig.get()
    if config.mode == RunMode.MULTIRUN:
        return Path(config.sweep.dir) / folder_name(cfg.study_name)
    return Path(config.runtime.output_dir)


#: what a start can fail with that the user fixes in the command line or the data: one line, exit 2
START_ERRORS = (ConfigError, ValueError, OSError, RuntimeError, ArithmeticError)


def run(cfg: SearchConfig) -> None:
    if cfg.progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress bar instead of a line per trial
    folder = study_folder(cfg)
    own_folder = HydraConfig.get().mode == RunMode.RUN and made_by_hydra_only(folder)  # this start made it
    folder.mkdir(parents=True, exist_ok=True)
    cfg.storage = cfg.storage or f"sqlite:///{folder / 'study.db'}"
    if cfg.workers > 1:
        cfg.device.threads = threads_per_worker(cfg.workers, cfg.device.threads)
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    existed = True  # until the storage says otherwise: a study this start did not create is never removed
    try:
        cfg.device.type = place_worker(cfg)  # with device=cuda, each worker its own GPU (placement, not identity)
        cfg.enqueue_references = cfg.enqueue_references and not cfg.retime
        if cfg.confirm.count:
            from attnas.search.apps.confirm import check_config

            check_config(cfg.confirm.count, cfg.confirm.seeds)
        existed = study_exists(cfg.storage, cfg.study_name)
        with doing("loading the data and setting up the study"):
            prepared = setup(cfg, cache_path=str(folder / "evaluations.jsonl"), workdir=str(folder))
        if cfg.retime:  # the study's flagged latencies measured again in place; nothing trained
            return run_retime(prepared, cfg)
        with doing("preparing the evaluator (the parent or the supernet)"):
            prepare(prepared)  # before the other workers start: the data and the parent are made once, here
    except Exception as error:  # noqa: BLE001 - whatever failed, the corrected command must find nothing in its way
        with contextlib.suppress(Exception):  # the error to report is the start's, not a failed clean-up's
            forget_failed_start(cfg.storage, cfg.study_name, folder if own_folder else None, existed)
        if not isinstance(error, START_ERRORS):
            raise
        log.error("%s", fault(error) or error)  # a full disk or a lost storage says so, in one line
        sys.exit(2)
    if folder_name(cfg.study_name) != cfg.study_name:
        log.info("study %r is not a plain folder name: its files are in %s (recorded as folder_name)", cfg.study_name, folder)
    data = prepared.study.user_attrs.get("data")
    if data:  # the digest in the study's name stands for this folder
        log.info("study %s searches the %s data in %s", cfg.study_name, data["name"], Path(data["root"]).resolve())
    children = spawn(cfg.workers, cfg.worker or 0, cfg.storage, cfg.device.threads, folder) if cfg.workers > 1 else []
    cfg.workers = 1  # this process is one worker; more run beside it
    try:  # an interrupt or a fault ends in one line (cli.hydra_app), after every worker marked its running trial FAIL
        with doing("searching (the running trial is marked FAIL with the reason)"):
            study = search(prepared, cfg)
            wait(children)
    finally:
        stop(children)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    log.info("study %s: %d trials (%d complete), Pareto front: %s", study.study_name, len(study.trials), len(complete),
             ", ".join(sorted({t.user_attrs.get("spec", "?") for t in study.best_trials})))
    if cfg.confirm.count > 0 and complete:  # before the report, which shows it
        from attnas.search.apps.confirm import confirm_best

        with doing("confirming the best candidates on fresh seeds"):
            confirm_best(study, prepared.evaluator, cfg.confirm.count, cfg.confirm.seeds)
    if cfg.report and complete:
        from attnas.search.analysis.report import write_report

        with doing("writing the report (the study is complete)"):
            paths = write_report(study, default_output(cfg.storage, study.study_name, "report"))
        log.info("report: %s", paths["html"])
    if study.trials and not complete:
        errors = sorted({t.user_attrs.get("error", "?") for t in study.trials if t.state.name == "FAIL"})
        log.error("every trial failed; first error: %s", errors[0] if errors else "?")
        sys.exit(1)
    if cfg.finalists.count > 0:
        run_finalists(study, cfg, folder)


def run_retime(prepared, cfg: SearchConfig) -> None:
    """`retime=true`: the flagged latencies of the study re-measured in place (`attnas.search.retime`)."""
    from attnas.search.analysis.report import write_report
    from attnas.search.retime import retime

    with doing("re-timing the flagged latencies"):
        result = retime(prepared)
    log.info("%s", result.summary)
    if cfg.report and result.trials:
        log.info("report: %s", write_report(result.study, default_output(cfg.storage, result.study.study_name, "report"))["html"])


def run_finalists(study: optuna.Study, cfg: SearchConfig, folder: Path) -> None:
    """The second stage: the likely front of a (one-shot) study re-evaluated stand-alone."""
    from hydra import compose

    from attnas.search.apps.finalists import second_stage
    from attnas.search.analysis.report import write_report

    try:
        evaluator_cfg = typed(compose("config", overrides=[f"evaluator={cfg.finalists.evaluator}",
                                                           f"storage={cfg.storage}"])).evaluator
    except Exception as error:  # noqa: BLE001 - a bad evaluator option: one line, as for the first stage
        log.error("finalists.evaluator=%s: %s", cfg.finalists.evaluator, describe_config_error(error))
        sys.exit(2)
    with doing("evaluating the finalists stand-alone"):
        second = second_stage(study, cfg, evaluator_cfg, cache_path=str(folder / "evaluations.jsonl"), workdir=str(folder))
    if cfg.report:
        paths = write_report(second, default_output(cfg.storage, second.study_name, "report"))
        log.info("finalists report: %s", paths["html"])


main = hydra_app(run, "config", "attnas-search")

if __name__ == "__main__":
    main()
