"""`attnas-train`: train one architecture with a budget, score it once on the TEST split, save it.

This is how a user trains the architecture a search exported (Hydra overrides, like the other apps):

    attnas-train spec=resnet50:layer3.5=cnl dataset=market1501 dataset.root=/data/Market-1501-v15.09.15 \\
        budget=full device=cuda out=runs/cnl
    attnas-train spec=runs/<study>/export/architecture.yaml budget=proxy out=runs/best

The spec's `=` and `,` are quoted for Hydra here, so spec text needs no quotes of its own. The
training logs its steps, the elapsed time and an ETA; the test split is scored once, after it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

from attnas.evaluators.artefacts import atomic_write_text
from attnas.evaluators.metric_registry import retrieval_metrics
from attnas.evaluators.reid.datasets.base import relabel
from attnas.evaluators.reid.training import budget, evaluate_model, set_overrides, train, training_device
from attnas.evaluators.reid_evaluator import make_dataset
from attnas.models import build_model
from attnas.search.apps.cli import hydra_app
from attnas.search.apps.config import TrainAppConfig
from attnas.search.interrupts import doing
from attnas.space import ArchSpec

log = logging.getLogger("attnas.train")

SPEC_FILES = (".json", ".yaml", ".yml")


def run(cfg: TrainAppConfig) -> None:
    try:
        spec = ArchSpec.load(cfg.spec) if Path(cfg.spec).suffix in SPEC_FILES else ArchSpec.parse(cfg.spec)
        training_device(cfg.device.type)  # before the data is read: `device=cuda` on a CPU-only machine is one line
        # the final model trains on every training identity; the budget's other settings as configured
        settings = {"max_ids": None, "log_epochs": True, "progress": cfg.progress, "seed": cfg.seed,
                    "device": cfg.device.type, **set_overrides(cfg.train)}
        train_cfg = budget(cfg.budget, **settings)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        data = make_dataset(cfg.dataset)
        if cfg.device.threads:
            torch.set_num_threads(cfg.device.threads)
        records = relabel(data.train)
        torch.manual_seed(cfg.seed)
        model = build_model(spec, len({r.pid for r in records}), pretrained=cfg.pretrained)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        log.error("%s", error)
        sys.exit(2)
    log.info("training %s with budget %s on %s", spec, cfg.budget, data.summary())
    try:  # an interrupt is said in the app's one line (cli.hydra_app), naming what was not written
        with doing(f"training {spec} (nothing written to {out})"):
            result = train(model, records, train_cfg)  # no validation inside: the test split is scored once, below
            log.info("scoring the test split: %d queries against %d gallery images", len(data.query), len(data.gallery))
            ranks = evaluate_model(model, data.query, data.gallery, train_cfg)
    except FloatingPointError as error:
        log.error("%s", error)
        sys.exit(1)
    torch.save(model.state_dict(), out / "model.pt")
    spec.save(out / "spec.yaml")
    metrics = {"spec": str(spec), "dataset": data.name, "split": "test", "budget": cfg.budget, **retrieval_metrics(ranks),
               "train_seconds": result.seconds, "train_steps": result.steps, "epoch_losses": result.epoch_losses,
               "device": cfg.device.type}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"test mAP={ranks.mAP:.4f} rank1={ranks.rank(1):.4f} mINP={ranks.mINP:.4f} after {result.steps} steps "
          f"({result.seconds:.0f} s); wrote {out}/model.pt, spec.yaml, metrics.json")
    if record_training(Path(cfg.spec), out / "model.pt", metrics):
        print(f"recorded the test metrics in {cfg.spec} beside the search's validation metrics")


def record_training(spec_file: Path, weights: Path, metrics: dict) -> bool:
    """When the spec came from attnas-export, write the trained weights and their TEST metrics
    into its architecture files (yaml and json), beside the search's validation metrics."""
    if spec_file.suffix not in SPEC_FILES or not spec_file.exists():
        return False
    import yaml

    updated = False
    for path in (spec_file.with_suffix(".yaml"), spec_file.with_suffix(".json")):
        if not path.exists():
            continue
        record = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        if not isinstance(record, dict) or "provenance" not in record:
            continue
        trained = {"weights": str(weights.resolve()), **{k: v for k, v in metrics.items() if k != "spec"}}
        record["trained"] = json.loads(json.dumps(trained, default=float))  # plain floats for YAML
        text = json.dumps(record, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(record, sort_keys=False)
        atomic_write_text(path, text)
        updated = True
    return updated


def quote_spec(arg: str) -> str:
    """`spec=resnet50:layer3.5=cnl,layer4.0=se` as Hydra can read it: the value quoted (its `=`
    and `,` are Hydra's own syntax otherwise)."""
    key, sep, value = arg.partition("=")
    if key == "spec" and sep and not value.startswith(("'", '"')):
        return f"spec='{value}'"
    return arg


_app = hydra_app(run, "train", "attnas-train")


def main() -> None:
    sys.argv = [sys.argv[0], *(quote_spec(arg) for arg in sys.argv[1:])]
    _app()


if __name__ == "__main__":
    main()
