"""`attnas-train SPEC`: train one architecture with a budget, score it on the TEST split, save it.

This is how a user trains the architecture a search exported:

    attnas-train resnet50:layer3.5=cnl --dataset market1501 --root /data/Market-1501-v15.09.15 --budget full --out runs/cnl
    attnas-train exported/best.yaml --dataset synthetic --root data/synth --budget proxy --out runs/best
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from attnas.evaluators.artefacts import atomic_write_text
from attnas.evaluators.metric_registry import retrieval_metrics
from attnas.evaluators.reid.datasets import DATASETS, load_dataset
from attnas.evaluators.reid.datasets.base import relabel
from attnas.evaluators.reid.training import BUDGETS, budget, evaluate_model, train
from attnas.models import build_model
from attnas.space import ArchSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnas-train", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="spec text (resnet50:layer3.5=cnl) or a .json/.yaml spec file")
    parser.add_argument("--dataset", default="synthetic", choices=list(DATASETS))
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--budget", default="proxy", choices=list(BUDGETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pretrained", default=None, help="'imagenet' or a torchvision state_dict path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder for model.pt and metrics.json")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        spec = ArchSpec.load(args.spec) if Path(args.spec).suffix in (".json", ".yaml", ".yml") else ArchSpec.parse(args.spec)
        data = load_dataset(args.dataset, args.root)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    overrides = {"device": args.device, "seed": args.seed, "progress": args.progress}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    cfg = budget(args.budget, **overrides, max_ids=None)  # the final model trains on every training id
    records = relabel(data.train)
    torch.manual_seed(args.seed)
    model = build_model(spec, len({r.pid for r in records}), pretrained=args.pretrained)
    print(f"training {spec} on {data.summary()} with budget {args.budget} ({cfg.epochs} epochs, {cfg.height}x{cfg.width})")
    result = train(model, records, cfg, validation=(data.query, data.gallery))
    ranks = evaluate_model(model, data.query, data.gallery, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    spec.save(out / "spec.yaml")
    metrics = {"spec": str(spec), "dataset": data.name, "split": "test", "budget": args.budget, **retrieval_metrics(ranks),
               "train_seconds": result.seconds, "epoch_losses": result.epoch_losses, "device": args.device}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"test mAP={ranks.mAP:.4f} rank1={ranks.rank(1):.4f} mINP={ranks.mINP:.4f}; wrote {out}/model.pt, metrics.json")
    if record_training(Path(args.spec), out / "model.pt", metrics):
        print(f"recorded the test metrics in {args.spec} beside the search's validation metrics")


def record_training(spec_file: Path, weights: Path, metrics: dict) -> bool:
    """When the spec came from attnas-export, write the trained weights and their TEST metrics
    into its architecture files (yaml and json), beside the search's validation metrics."""
    if spec_file.suffix not in (".json", ".yaml", ".yml") or not spec_file.exists():
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


if __name__ == "__main__":
    main()
