"""Small data sets as a user brings them: PRID- and GRID-like folders in the Market-1501 layout
(`dataset=folder`), few identities, two cameras, one image per camera, person ids as in the real
sets (not 1..N)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def market_folder(root: Path, train_ids: list[int], test_ids: list[int], cams: int = 2, size: tuple[int, int] = (32, 16),
                  seed: int = 0, bits: int = 8) -> Path:
    """One image per identity and camera: `train_ids` in bounding_box_train/, `test_ids` with
    camera 1 in query/ and the others in bounding_box_test/ (as PRID and GRID are single-shot).
    Each identity has its own colour, so a network can tell them apart. `bits=16` writes 16-bit
    grayscale PNGs."""
    rng = np.random.default_rng(seed)
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (root / split).mkdir(parents=True, exist_ok=True)
    for pid in [*train_ids, *test_ids]:
        colour = rng.uniform(30, 220, 3)
        for cam in range(1, cams + 1):
            pixels = np.clip(colour + rng.normal(0, 15, (*size, 3)), 0, 255)
            split = "bounding_box_train" if pid in train_ids else "query" if cam == 1 else "bounding_box_test"
            name = f"{pid:04d}_c{cam}s1_{pid * 10 + cam:06d}_00"
            if bits == 16:
                Image.fromarray((pixels.mean(axis=2) * 257).astype(np.uint16)).save(root / split / f"{name}.png")
            else:
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / f"{name}.jpg")
    return root


def prid_like(root: Path) -> Path:
    """12 training ids (PRID's numbering starts far from 1), 6 test ids."""
    return market_folder(root, list(range(201, 213)), list(range(301, 307)), seed=1)


def grid_like(root: Path) -> Path:
    """10 training ids, 5 test ids."""
    return market_folder(root, list(range(11, 21)), list(range(41, 46)), seed=2)
