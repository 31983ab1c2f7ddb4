"""Re-ID datasets: loaders for the standard layouts, a synthetic generator, torch data plumbing."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from attnas.evaluators.reid.datasets.config import CUHK03Config, DatasetConfig, SplitDatasetConfig, SyntheticDatasetConfig
from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, relabel, stats
from attnas.evaluators.reid.datasets.images import warn_about_wide_images
from attnas.evaluators.reid.datasets.market import load_cuhk03_np, load_duke, load_market1501, load_market_layout
from attnas.evaluators.reid.datasets.msmt17 import load_msmt17
from attnas.evaluators.reid.datasets.small import load_cuhk01, load_viper
from attnas.models.registry import Registry


def load_synthetic(root: str | Path) -> ReIDDataset:
    """A set written by `attnas-synth` (the Market-1501 layout)."""
    return load_market_layout(root, "synthetic")


def load_folder(root: str | Path) -> ReIDDataset:
    """Your own data in the Market-1501 layout: bounding_box_train/, query/, bounding_box_test/."""
    return load_market_layout(root, "folder")


@dataclass(frozen=True)
class DatasetEntry:
    """A data set: its loader, what it expects under its root (for the error when that is
    missing) and the schema of its `conf/dataset/<name>.yaml` (its fields beyond `name` and
    `root` are the loader's keyword arguments)."""

    loader: Callable[..., ReIDDataset]
    layout: str
    config_class: type = DatasetConfig


def _check_entry(name: str, entry: DatasetEntry) -> None:
    if not isinstance(entry, DatasetEntry):
        raise TypeError(f"dataset {name!r} must be registered as a DatasetEntry(loader, layout, config_class), got {entry!r}")
    accepted = set(inspect.signature(entry.loader).parameters) - {"root"}
    options = {f.name for f in dataclasses.fields(entry.config_class)} - {"name", "root", "synth"}
    if options - accepted:
        raise TypeError(f"dataset {name!r}: {entry.config_class.__name__} has {sorted(options - accepted)}, which its loader "
                        f"{entry.loader.__name__} does not take")


#: config name -> data set; every loader returns a `ReIDDataset`
DATASETS: Registry[DatasetEntry] = Registry("dataset", {
    "market1501": DatasetEntry(load_market1501, "bounding_box_train/, query/, bounding_box_test/ (Market-1501-v15.09.15)"),
    "duke": DatasetEntry(load_duke, "bounding_box_train/, query/, bounding_box_test/ (DukeMTMC-reID)"),
    "msmt17": DatasetEntry(load_msmt17, "train/, test/, list_train.txt, list_val.txt, list_query.txt, list_gallery.txt"),
    "cuhk03": DatasetEntry(load_cuhk03_np, "detected/ and labeled/, each with bounding_box_train/, query/, "
                                           "bounding_box_test/ (CUHK03-NP)", CUHK03Config),
    "viper": DatasetEntry(load_viper, "cam_a/ and cam_b/ with NNN_ANGLE.bmp files", SplitDatasetConfig),
    "cuhk01": DatasetEntry(load_cuhk01, "campus/ with NNNNKKK.png files", SplitDatasetConfig),
    "folder": DatasetEntry(load_folder, "bounding_box_train/, query/, bounding_box_test/ with PID_cCAM... file names"),
    "synthetic": DatasetEntry(load_synthetic, "a set written by attnas-synth (generated on first use)", SyntheticDatasetConfig),
}, check=_check_entry, valid="datasets")


def load_dataset(name: str, root: str | Path, **options: Any) -> ReIDDataset:
    entry = DATASETS.get_entry(name)
    if root is None or str(root) in ("", "???"):
        raise ValueError(f"dataset {name!r} needs its folder: set dataset.root=/path/to/{name}, the folder holding "
                         f"{entry.layout}")
    valid = [p for p in inspect.signature(entry.loader).parameters if p != "root"]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; valid options: {', '.join(valid) or 'none'}")
    folder = Path(root).expanduser()
    if not folder.exists():
        relative = "" if folder.is_absolute() else f" (relative to {Path.cwd()})"
        raise FileNotFoundError(f"dataset {name!r}: dataset.root={root} does not exist{relative}; set it to the folder "
                                f"holding {entry.layout}")
    dataset = entry.loader(folder, **options)
    warn_about_wide_images(dataset.name, {"train": dataset.train, "query": dataset.query, "gallery": dataset.gallery})
    return dataset


__all__ = ["DATASETS", "DatasetEntry", "ImageRecord", "ReIDDataset", "load_dataset", "relabel", "stats"]
