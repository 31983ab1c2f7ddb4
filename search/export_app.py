"""`attnas-export storage=... study_name=... pick=knee`: the chosen spec with metrics and provenance."""

from __future__ import annotations

import logging
import sys

from attnas.search.cli import hydra_app
from attnas.search.config import ExportConfig
from attnas.search.export import InsignificantError, export_model, export_spec, load_study

log = logging.getLogger("attnas.export")


def run(cfg: ExportConfig) -> None:
    try:
        spec, record = export_spec(load_study(cfg.storage, cfg.study_name), str(cfg.pick), cfg.out, cfg.storage,
                                   cfg.min_gain_se, cfg.allow_insignificant)
    except InsignificantError as error:
        log.error("%s", error)
        sys.exit(3)
    except ValueError as error:
        log.error("%s", error)
        sys.exit(2)
    if record["verdict"]["significant"] is False:
        log.warning("exported without evidence: %s", record["verdict"]["study"])
    print(f"picked {spec} (trial {record['provenance']['trial']}): "
          + ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items() if isinstance(v, float)))
    print(f"wrote {cfg.out}/architecture.yaml and architecture.json")
    if cfg.model:
        for kind, where in export_model(spec, cfg.out, weights=cfg.weights, input_size=tuple(cfg.input_size)).items():
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
