"""Market-1501 and the datasets that share its layout and file names.

`ROOT/bounding_box_train`, `ROOT/query`, `ROOT/bounding_box_test`; file names start with the
person id and the camera: `0002_c1s1_000451_03.jpg` (Market), `0001_c2_f0046182.jpg` (Duke),
`0001_c1_1.png` (CUHK03-NP). Person id -1 is junk and dropped; id 0 are distractors, kept in
the gallery (they are never a true match). Cameras are 1-based in file names, 0-based here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from attnas.evaluators.progress import progress
from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, image_names, require_dir

_NAME = re.compile(r"^(-?\d+)_c(\d+)")
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def parse_market_name(name: str) -> tuple[int, int]:
    """(pid, camid) from a Market-style file name; camid is 0-based."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(
            f"cannot read person id and camera from file name {name!r}; expected e.g. '0002_c1s1_000451_03.jpg'"
        )
    return int(match[1]), int(match[2]) - 1


def read_market_split(folder: Path, keep_distractors: bool) -> list[ImageRecord]:
    records = []
    names = image_names(folder)
    for name in progress(names, f"reading the file names of {folder}", unit="files"):
        pid, camid = parse_market_name(name)
        if pid == -1 or (pid == 0 and not keep_distractors):
            continue
        records.append(ImageRecord(os.path.join(folder, name), pid, camid))
    return records


def _find_root(root: Path, candidates: tuple[str, ...]) -> Path:
    """Accept the dataset folder itself or its parent (torchreid's `root` convention)."""
    for candidate in (root, *(root / c for c in candidates)):
        if (candidate / "bounding_box_train").is_dir():
            return candidate
    return root


def load_market_layout(root: str | Path, name: str = "folder", candidates: tuple[str, ...] = ()) -> ReIDDataset:
    base = _find_root(Path(root), candidates)
    hint = "the Market-1501 layout has bounding_box_train/, query/ and bounding_box_test/"
    splits = {
        split: read_market_split(require_dir(base / folder, name, hint), keep_distractors=split == "gallery")
        for split, folder in SPLIT_DIRS.items()
    }
    return ReIDDataset(name, splits["train"], splits["query"], splits["gallery"], root=str(base))


def load_market1501(root: str | Path) -> ReIDDataset:
    return load_market_layout(root, "market1501", ("Market-1501-v15.09.15", "market1501", "Market-1501"))


def load_duke(root: str | Path) -> ReIDDataset:
    return load_market_layout(root, "dukemtmcreid", ("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID"))


def load_cuhk03_np(root: str | Path, variant: str = "detected") -> ReIDDataset:
    """CUHK03 with the new protocol (767/700 ids), `detected` or `labeled` boxes."""
    if variant not in ("detected", "labeled"):
        raise ValueError(f"unknown CUHK03-NP variant {variant!r}; valid: detected, labeled")
    root = Path(root)
    for candidate in (root / variant, root / "cuhk03-np" / variant, root):
        if (candidate / "bounding_box_train").is_dir():
            return load_market_layout(candidate, f"cuhk03np-{variant}")
    raise FileNotFoundError(f"cuhk03np-{variant}: no bounding_box_train/ under {str(root)!r}/[cuhk03-np/]{variant}")
