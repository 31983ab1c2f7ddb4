"""`attnas-export storage=... study_name=... pick=knee`: the chosen spec with metrics and provenance.

A pick must be confirmed on fresh seeds before it is exported. When the study holds no
confirmation of it, export retrains it and the plain backbone under `confirm_seeds` fresh seeds
(with the study's own evaluator, rebuilt from the study; nothing it already trained is trained
again) and decides on those runs. Exit 3, one line, when nothing is significant, the pick is not
confirmed, or it cannot be confirmed here; `allow_unconfirmed=true` exports anyway and writes why.
"""

from __future__ import annotations

import logging
import sys

from attnas.evaluators.latency.profile import LatencyProfile
from attnas.evaluators.metric_registry import METRICS
from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import ExportConfig, default_output
from attnas.search.analysis.deploy import check_weights, export_model
from attnas.search.analysis.export import InsignificantError, export_record, load_study, write_export
from attnas.search.apps.confirm import confirm, evaluator_of

log = logging.getLogger("attnas.export")


def run(cfg: ExportConfig) -> None:
    out = cfg.out or default_output(cfg.storage, cfg.study_name, "export")
    try:
        profile = LatencyProfile.load(cfg.profile) if cfg.profile else None
        if cfg.confirm_seeds == 1 or cfg.confirm_seeds < 0:
            raise ValueError(f"confirm_seeds must be 0 (never retrain) or >= 2, got {cfg.confirm_seeds}")
        study = load_study(cfg.storage, cfg.study_name)

        def confirm_pick(spec: str):
            return confirm(study, evaluator_of(study, cfg.storage, cfg.device), [spec], cfg.confirm_seeds, cfg.alpha)

        spec, record = export_record(study, str(cfg.pick), cfg.storage, cfg.alpha, cfg.allow_unconfirmed, profile,
                                     confirm_pick if cfg.confirm_seeds else None)
        state = check_weights(spec, cfg.weights, cfg.untrained) if cfg.model else None  # before anything is written
        if cfg.model:
            record["weights"] = cfg.weights or "untrained"
        write_export(record, out, cfg.overwrite)
    except InsignificantError as error:
        log.error("%s", error)
        sys.exit(3)
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        sys.exit(2)
    if record["verdict"]["unconfirmed"]:
        log.warning("exported without confirmation: %s", record["verdict"]["unconfirmed"])
    elif record["verdict"]["significant"] is False and not record["verdict"]["confirmed"]:
        log.warning("exported without evidence: %s", record["verdict"]["study"])
    print(f"picked {spec} (trial {record['provenance']['trial']}): "
          + ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items() if isinstance(v, float)))
    confirmation = record["verdict"].get("confirmation")
    if confirmation:
        m = METRICS[record["verdict"]["objective"]]
        print(f"confirmation on {confirmation['seeds']} fresh seeds: {m.format(confirmation['gain'], confirmation['se'], signed=True)}, "
              f"{'confirmed' if confirmation['confirmed'] else 'NOT confirmed'}; the search said "
              f"{m.format(confirmation['search_gain'], confirmation['search_se'], signed=True)}")
    print(f"wrote {out}/architecture.yaml and architecture.json")
    if cfg.model:
        written = export_model(spec, out, weights=cfg.weights, untrained=cfg.untrained, input_size=tuple(cfg.input_size),
                               state=state)
        for kind, where in written.items():
            print(f"{kind}: {where}")


def main() -> None:
    # Hydra's override grammar has no unquoted '<' or '>': quote pick=latency<=1.05 for the user
    sys.argv = [_quote_pick(arg) for arg in sys.argv]
    _app()


_app = hydra_app(run, "export", "attnas-export")


def _quote_pick(arg: str) -> str:
    key, sep, value = arg.partition("=")
    if key == "pick" and sep and not value.startswith(("'", '"')) and any(c in value for c in "<>"):
        return f"pick='{value}'"
    return arg


if __name__ == "__main__":
    main()
