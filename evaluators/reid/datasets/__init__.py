"""Re-ID datasets: loaders for the standard layouts, a synthetic generator, torch data plumbing."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, relabel, stats
from attnas.evaluators.reid.datasets.market import load_cuhk03_np, load_duke, load_market1501, load_market_layout
from attnas.evaluators.reid.datasets.msmt17 import load_msmt17
from attnas.evaluators.reid.datasets.small import load_cuhk01, load_viper


def load_synthetic(root: str | Path) -> ReIDDataset:
    """A set written by `attnas-synth` (the Market-1501 layout)."""
    return load_market_layout(root, "synthetic")


def load_folder(root: str | Path) -> ReIDDataset:
    """Your own data in the Market-1501 layout: bounding_box_train/, query/, bounding_box_test/."""
    return load_market_layout(root, "folder")


#: config name -> loader(root, **options); every loader returns a `ReIDDataset`
DATASETS: dict[str, Callable[..., ReIDDataset]] = {
    "market1501": load_market1501,
    "duke": load_duke,
    "msmt17": load_msmt17,
    "cuhk03": load_cuhk03_np,
    "viper": load_viper,
    "cuhk01": load_cuhk01,
    "folder": load_folder,
    "synthetic": load_synthetic,
}


#: what each loader expects under its root, for the error when the root is missing
LAYOUTS: dict[str, str] = {
    "market1501": "bounding_box_train/, query/, bounding_box_test/ (Market-1501-v15.09.15)",
    "duke": "bounding_box_train/, query/, bounding_box_test/ (DukeMTMC-reID)",
    "msmt17": "train/, test/, list_train.txt, list_val.txt, list_query.txt, list_gallery.txt",
    "cuhk03": "detected/ and labeled/, each with bounding_box_train/, query/, bounding_box_test/ (CUHK03-NP)",
    "viper": "cam_a/ and cam_b/ with NNN_ANGLE.bmp files",
    "cuhk01": "campus/ with NNNNKKK.png files",
    "folder": "bounding_box_train/, query/, bounding_box_test/ with PID_cCAM... file names",
    "synthetic": "a set written by attnas-synth (generated on first use)",
}


def load_dataset(name: str, root: str | Path, **options: Any) -> ReIDDataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if root is None or str(root) in ("", "???"):
        raise ValueError(f"dataset {name!r} needs its folder: set dataset.root=/path/to/{name}, the folder holding "
                         f"{LAYOUTS.get(name, 'the data set')}")
    valid = [p for p in inspect.signature(DATASETS[name]).parameters if p != "root"]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; valid options: {', '.join(valid) or 'none'}")
    return DATASETS[name](root, **options)


__all__ = ["DATASETS", "ImageRecord", "ReIDDataset", "load_dataset", "relabel", "stats"]
