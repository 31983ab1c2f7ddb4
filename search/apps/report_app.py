"""`attnas-report storage=... study_name=...`: dashboard + summary of a study (also run by attnas-search)."""

from __future__ import annotations

import logging
import sys

from attnas.evaluators.latency.profile import LatencyProfile
from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import ReportConfig, default_output
from attnas.search.analysis.export import load_study
from attnas.search.analysis.report import write_report

log = logging.getLogger("attnas.report")


def run(cfg: ReportConfig) -> None:
    try:
        profile = LatencyProfile.load(cfg.profile) if cfg.profile else None
        out = cfg.out or default_output(cfg.storage, cfg.study_name, "report" if profile is None else f"report-{profile.device}")
        study = load_study(cfg.storage, cfg.study_name)
        log.info("writing the report of %s (%d trials) to %s", study.study_name, len(study.trials), out)
        paths = write_report(study, out, profile)
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        sys.exit(2)
    for kind, path in paths.items():
        print(f"{kind}: {path}")


main = hydra_app(run, "report", "attnas-report")

if __name__ == "__main__":
    main()
