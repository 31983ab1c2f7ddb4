"""Torch data plumbing for re-ID: image reading, transforms, the P x K identity sampler, loaders."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms as T

from attnas.evaluators.reid.datasets.base import ImageRecord
from attnas.evaluators.reid.datasets.images import to_rgb

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return to_rgb(img)  # 16-bit grayscale scaled, not clipped to white
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise OSError(f"cannot read image {path!r}: {error}; the file is corrupt or not an image") from None


def build_transforms(height: int, width: int, train: bool, random_erasing: float = 0.5, flip: float = 0.5, pad: int = 10) -> T.Compose:
    """The bag-of-tricks augmentation: resize, flip, pad + random crop, normalise, random erasing."""
    if not train:
        return T.Compose([T.Resize((height, width)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    steps = [T.Resize((height, width)), T.RandomHorizontalFlip(flip)]
    if pad:
        steps += [T.Pad(pad), T.RandomCrop((height, width))]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing:
        steps.append(T.RandomErasing(p=random_erasing, value="random"))
    return T.Compose(steps)


class ImageDataset(Dataset):
    def __init__(self, records: Sequence[ImageRecord], transform) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        return self.transform(read_image(record.path)), record.pid, record.camid


class IdentitySampler(Sampler[list[int]]):
    """Batches of P identities x K images (batch-hard triplet loss needs positives in the batch).

    Identities with fewer than K images are sampled with replacement. One epoch visits every
    identity about len(images)/K times; seeded per epoch so runs are repeatable.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        if p < 2 or k < 2:
            raise ValueError(f"a P x K batch needs P >= 2 identities and K >= 2 images, got P={p}, K={k}")
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_by_pid[pid].append(index)
        if len(self.index_by_pid) < p:
            raise ValueError(f"P={p} identities per batch, but the training set has only {len(self.index_by_pid)}")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self._num_batches = sum(max(len(v) // k, 1) for v in self.index_by_pid.values()) // p

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        chunks: dict[int, list[list[int]]] = {}
        for pid, indices in self.index_by_pid.items():
            picked = rng.choice(indices, size=max(len(indices), self.k), replace=len(indices) < self.k)
            rng.shuffle(picked)
            chunks[pid] = [list(map(int, picked[i : i + self.k])) for i in range(0, len(picked) - self.k + 1, self.k)]
        available = [pid for pid in chunks if chunks[pid]]
        for _ in range(self._num_batches):
            available = [pid for pid in available if chunks[pid]]
            if len(available) < self.p:
                return
            batch = []
            for pid in rng.choice(available, size=self.p, replace=False):
                batch.extend(chunks[int(pid)].pop())
            yield batch


def default_workers() -> int:
    return min(4, max((os.cpu_count() or 1) - 1, 0))


def train_loader(records: Sequence[ImageRecord], height: int, width: int, p: int, k: int, seed: int = 0,
                 workers: int | None = None, **augment) -> DataLoader:
    sampler = IdentitySampler([r.pid for r in records], p, k, seed)
    return DataLoader(ImageDataset(records, build_transforms(height, width, True, **augment)), batch_sampler=sampler,
                      num_workers=default_workers() if workers is None else workers, persistent_workers=False)


def eval_loader(records: Sequence[ImageRecord], height: int, width: int, batch_size: int = 128, workers: int | None = None) -> DataLoader:
    return DataLoader(ImageDataset(records, build_transforms(height, width, False)), batch_size=batch_size, shuffle=False,
                      num_workers=default_workers() if workers is None else workers)
