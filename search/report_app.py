"""`attnas-report storage=... study_name=...`: dashboard + summary of a study (also run by attnas-search)."""

from __future__ import annotations

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from attnas.search.export import load_study
from attnas.search.report import write_report

log = logging.getLogger("attnas.report")


@hydra.main(version_base="1.3", config_path="pkg://attnas.conf", config_name="report")
def main(cfg: DictConfig) -> None:
    warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator")
    try:
        paths = write_report(load_study(cfg.storage, cfg.study_name), cfg.out)
    except ValueError as error:
        log.error("%s", error)
        sys.exit(2)
    for kind, path in paths.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
