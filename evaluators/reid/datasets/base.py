"""What every re-ID dataset loader returns: train / query / gallery lists of (path, pid, camid)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple


class ImageRecord(NamedTuple):
    path: str
    pid: int
    camid: int


@dataclass
class SplitStats:
    ids: int
    images: int
    cameras: int

    def __str__(self) -> str:
        return f"{self.ids} ids, {self.images} images, {self.cameras} cameras"


def stats(records: Iterable[ImageRecord]) -> SplitStats:
    records = list(records)
    return SplitStats(len({r.pid for r in records}), len(records), len({r.camid for r in records}))


def relabel(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Training ids become 0..N-1 (classifier targets), in sorted order of the original ids."""
    records = list(records)
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [ImageRecord(r.path, mapping[r.pid], r.camid) for r in records]


@dataclass
class ReIDDataset:
    name: str
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    root: str = ""
    extra: dict = field(default_factory=dict)
    #: the person id of each training label, as in the file names: label i is train_ids[i] (reports and
    #: exports name identities by these, not by the 0..N-1 labels the classifier needs)
    train_ids: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.train_ids = sorted({r.pid for r in self.train})
        self.train = relabel(self.train)
        for split in ("train", "query", "gallery"):
            if not getattr(self, split):
                raise ValueError(
                    f"{self.name} at {self.root!r}: the {split} split is empty; check the folder layout "
                    f"(see the loader's docstring for what it expects)"
                )

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def summary(self) -> str:
        return (
            f"{self.name}: train {stats(self.train)} | query {stats(self.query)} | "
            f"gallery {stats(self.gallery)}"
        )


def require_dir(path: Path, dataset: str, hint: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: expected the folder {str(path)!r}; {hint}")
    return path


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def image_names(folder: Path) -> list[str]:
    """The image file names in `folder`, sorted (as strings: sorting 100,000 Paths takes seconds)."""
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES)


def list_images(folder: Path) -> list[Path]:
    return [folder / name for name in image_names(folder)]
