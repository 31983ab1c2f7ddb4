"""VIPeR and CUHK01: small two-camera sets evaluated over random identity splits.

Both are read in torchreid's layouts (see ../shared/data/README.md). `split_index` picks one of
the `num_splits` random splits drawn from `seed`, so a split is reproducible by its number.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, list_images, require_dir


def _split_ids(pids: list[int], num_train: int, split_index: int, num_splits: int, seed: int) -> set[int]:
    if not 0 <= split_index < num_splits:
        raise ValueError(f"split_index must be in 0..{num_splits - 1}, got {split_index}")
    rng = np.random.default_rng(seed)
    permutations = [rng.permutation(sorted(pids)) for _ in range(num_splits)]
    return {int(p) for p in permutations[split_index][:num_train]}


def _assemble(name: str, records: list[ImageRecord], train_ids: set[int], query_cam: int, root: Path) -> ReIDDataset:
    train = [r for r in records if r.pid in train_ids]
    test = [r for r in records if r.pid not in train_ids]
    query = [r for r in test if r.camid == query_cam]
    gallery = [r for r in test if r.camid != query_cam]
    return ReIDDataset(name, train, query, gallery, root=str(root))


def load_viper(root: str | Path, split_index: int = 0, num_splits: int = 10, seed: int = 0, query_cam: int = 0) -> ReIDDataset:
    """632 ids, one image per camera; 316 train / 316 test ids; cam_a queries a cam_b gallery
    (`query_cam=1` gives the reverse direction the protocol averages with)."""
    root = Path(root)
    base = next((c for c in (root, root / "VIPeR", root / "viper" / "VIPeR") if (c / "cam_a").is_dir()), root)
    hint = "VIPeR has cam_a/ and cam_b/ with files NNN_ANGLE.bmp"
    records = []
    for camid, folder in enumerate(("cam_a", "cam_b")):
        for path in list_images(require_dir(base / folder, "viper", hint)):
            records.append(ImageRecord(str(path), int(path.name.split("_")[0]), camid))
    pids = sorted({r.pid for r in records})
    train_ids = _split_ids(pids, len(pids) // 2, split_index, num_splits, seed)
    return _assemble("viper", records, train_ids, query_cam, base)


_CUHK01 = re.compile(r"^(\d{4})(\d{3})\.\w+$")


def load_cuhk01(root: str | Path, split_index: int = 0, num_splits: int = 10, seed: int = 0, num_train_ids: int = 485) -> ReIDDataset:
    """971 ids, 4 images each (001-002 camera A, 003-004 camera B); 485 train / 486 test ids;
    camera A queries a camera B gallery."""
    root = Path(root)
    base = next((c for c in (root, root / "campus", root / "cuhk01" / "campus") if c.is_dir() and any(c.glob("*.png"))), root)
    require_dir(base, "cuhk01", "CUHK01 is a folder campus/ of NNNNKKK.png files")
    records = []
    for path in list_images(base):
        match = _CUHK01.match(path.name)
        if match is None:
            raise ValueError(f"cuhk01: unexpected file name {path.name!r}; expected NNNNKKK.png")
        records.append(ImageRecord(str(path), int(match[1]), 0 if int(match[2]) <= 2 else 1))
    pids = sorted({r.pid for r in records})
    if not 0 < num_train_ids < len(pids):
        raise ValueError(f"cuhk01: num_train_ids must be in 1..{len(pids) - 1}, got {num_train_ids}")
    train_ids = _split_ids(pids, num_train_ids, split_index, num_splits, seed)
    return _assemble("cuhk01", records, train_ids, 0, base)
