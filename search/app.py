"""`attnas-search`: the Hydra app. Config groups in `conf/`; everything overridable:

    attnas-search                                   # synthetic data, SQLite in runs/<study>/
    attnas-search dataset=market1501 dataset.root=/data/Market-1501-v15.09.15 n_trials=200
    attnas-search --multirun space.max_blocks=1,2,3
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from attnas.search.study import run_search

log = logging.getLogger("attnas.search")


@hydra.main(version_base="1.3", config_path="pkg://attnas.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    # heartbeats and the brute-force sampler are marked experimental; users chose them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if cfg.progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress bar instead of a line per trial
    out = Path(HydraConfig.get().runtime.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    study = run_search(config, cache_path=str(out / "evaluations.jsonl"))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    log.info("study %s: %d trials (%d complete), Pareto front: %s", study.study_name, len(study.trials), len(complete),
             ", ".join(sorted({t.user_attrs.get("spec", "?") for t in study.best_trials})))
    if config.get("report", True) and complete:
        from attnas.search.report import write_report

        paths = write_report(study, out / "report")
        log.info("report: %s", paths["html"])


if __name__ == "__main__":
    main()
