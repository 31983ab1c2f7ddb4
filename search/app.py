"""`attnas-search`: the Hydra app. Config groups in `conf/`, schemas in `attnas.search.config`:

    attnas-search                                   # synthetic data, SQLite in runs/<study>/
    attnas-search dataset=market1501 dataset.root=/data/Market-1501-v15.09.15 n_trials=200
    attnas-search --multirun space.max_blocks=1,2,3
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import optuna
from hydra.core.hydra_config import HydraConfig

from attnas.search.cli import hydra_app
from attnas.search.config import ConfigError, SearchConfig
from attnas.search.study import Terminated, prepare, search, setup

log = logging.getLogger("attnas.search")


def run(cfg: SearchConfig) -> None:
    if cfg.progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress bar instead of a line per trial
    out = Path(HydraConfig.get().runtime.output_dir)
    cfg.storage = cfg.storage or f"sqlite:///{out / 'study.db'}"
    try:
        prepared = setup(cfg, cache_path=str(out / "evaluations.jsonl"), workdir=str(out))
        prepare(prepared)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as error:
        log.error("%s", error)
        sys.exit(2)
    try:
        study = search(prepared, cfg)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        log.error("%s: the running trial is marked FAIL with the reason; run the same command to resume",
                  "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)")
        sys.exit(143 if terminated else 130)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    log.info("study %s: %d trials (%d complete), Pareto front: %s", study.study_name, len(study.trials), len(complete),
             ", ".join(sorted({t.user_attrs.get("spec", "?") for t in study.best_trials})))
    if cfg.report and complete:
        from attnas.search.report import write_report

        paths = write_report(study, out / "report")
        log.info("report: %s", paths["html"])
    if study.trials and not complete:
        errors = sorted({t.user_attrs.get("error", "?") for t in study.trials if t.state.name == "FAIL"})
        log.error("every trial failed; first error: %s", errors[0] if errors else "?")
        sys.exit(1)


main = hydra_app(run, "config", "attnas-search")

if __name__ == "__main__":
    main()
