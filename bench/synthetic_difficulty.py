"""How hard is the synthetic set? ResNet-18 proxy mAP vs random features, same split, same run.

Generates the default synthetic set (or reads `--root`), trains plain ResNet-18 with the proxy
budget on the training ids and scores the test split; the random-feature row is the floor.

    python -m bench.synthetic_difficulty [--root DIR] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from attnas.evaluators.reid.distance import compute_distance_matrix
from attnas.evaluators.reid.metrics import rank_metrics
from attnas.evaluators.reid.training import budget, evaluate_model, subset_ids, train
from attnas.models import build_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = args.root or generate(tempfile.mkdtemp(prefix="attnas-synth-"), SynthConfig())
    data = load_dataset("synthetic", root)
    print(f"# {data.summary()}")
    q, g = data.query, data.gallery
    ids = lambda rs: ([r.pid for r in rs], [r.camid for r in rs])  # noqa: E731
    rng = np.random.default_rng(0)
    floor = rank_metrics(compute_distance_matrix(rng.normal(size=(len(q), 512)), rng.normal(size=(len(g), 512))),
                         ids(q)[0], ids(g)[0], ids(q)[1], ids(g)[1])
    print(f"case=random_features mAP={floor.mAP:.4f} rank1={floor.rank(1):.4f}")
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = budget("proxy", seed=seed)
        records = subset_ids(data.train, cfg.max_ids, seed)
        model = build_model("resnet18", len({r.pid for r in records}))
        result = train(model, records, cfg)
        test = evaluate_model(model, q, g, cfg)
        print(f"case=resnet18_proxy seed={seed} mAP={test.mAP:.4f} rank1={test.rank(1):.4f} mINP={test.mINP:.4f} "
              f"train_s={result.seconds:.0f} ratio_to_random={test.mAP / floor.mAP:.1f}x")


if __name__ == "__main__":
    main()
