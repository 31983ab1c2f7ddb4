"""Torch data plumbing for re-ID: transforms, the P x K identity sampler, loaders.

Built to keep an accelerator fed and a seed's numbers fixed:

* A training is one pass of one loader over exactly the batches it uses (`IdentitySampler` with
  `num_batches`: the sampler runs on over reshuffled passes of the data), so loader workers start
  once per training, not once per epoch, and no decoded batch is thrown away.
* Every sample's augmentation is seeded by (seed, its draw number), not by whichever worker
  happened to load it: a seed gives the same batches with 0, 1 or 8 loader workers, on any machine,
  and from the decoded-image cache (`image_cache`) or from disk.
* Worker counts come from the CPUs this process may run on (`os.sched_getaffinity`: a container's
  or a SLURM job's share), not from the machine's count.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms as T

from attnas.evaluators.reid.datasets.base import ImageRecord
from attnas.evaluators.reid.image_cache import decode_transform, decoded_images, read_image  # noqa: F401 - read_image re-exported

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tensor_transforms(height: int, width: int, train: bool, random_erasing: float = 0.5, flip: float = 0.5,
                      pad: int = 10) -> T.Compose:
    """The bag-of-tricks augmentation of a decoded uint8 image (already height x width): flip, pad +
    random crop, scale to [0, 1], normalise, random erasing. Evaluation only scales and normalises."""
    steps: list = []
    if train:
        steps.append(T.RandomHorizontalFlip(flip))
        if pad:
            steps += [T.Pad(pad), T.RandomCrop((height, width))]
    steps += [T.ConvertImageDtype(torch.float32), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and random_erasing:
        steps.append(T.RandomErasing(p=random_erasing, value="random"))
    return T.Compose(steps)


def build_transforms(height: int, width: int, train: bool, random_erasing: float = 0.5, flip: float = 0.5, pad: int = 10) -> T.Compose:
    """The whole pipeline from a PIL image: resize, then `tensor_transforms`."""
    return T.Compose([*decode_transform(height, width).transforms,
                      *tensor_transforms(height, width, train, random_erasing, flip, pad).transforms])


def draw_seed(seed: int, draw: int) -> int:
    """The seed of the `draw`-th sample a training loads."""
    return ((seed & 0x7FFFFFFF) << 32 | (draw & 0xFFFFFFFF)) & 0x7FFFFFFFFFFFFFFF


class ImageDataset(Dataset):
    """Records as (image tensor, pid, camid). With `decoded` (the set's uint8 images, from
    `image_cache`) `transform` starts from those pixels (`tensor_transforms`), otherwise from the PIL
    image read from disk (`build_transforms`). An index may be (index, seed): the sample's random
    augmentation is then drawn under that seed, and the process's random state is left as it was."""

    def __init__(self, records: Sequence[ImageRecord], transform, decoded: torch.Tensor | None = None) -> None:
        self.records = list(records)
        self.transform = transform
        self.decoded = decoded

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int | tuple[int, int]):
        index, seed = index if isinstance(index, tuple) else (index, None)
        record = self.records[index]
        image = self.decoded[index] if self.decoded is not None else read_image(record.path)
        if seed is None:
            return self.transform(image), record.pid, record.camid
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.transform(image), record.pid, record.camid
        finally:
            generator.set_state(state)


class IdentitySampler(Sampler[list[int]]):
    """Batches of P identities x K images (batch-hard triplet loss needs positives in the batch).

    Identities with fewer than K images are sampled with replacement. One pass visits every
    identity about len(images)/K times, reshuffled per pass with (seed, pass). Without
    `num_batches` it yields one pass; with it, exactly that many batches, over as many passes as
    they take (a training's batches, none drawn and dropped).
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, num_batches: int | None = None) -> None:
        if p < 2 or k < 2:
            raise ValueError(f"a P x K batch needs P >= 2 identities and K >= 2 images, got P={p}, K={k}")
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_by_pid[pid].append(index)
        if len(self.index_by_pid) < p:
            raise ValueError(f"P={p} identities per batch, but the training set has only {len(self.index_by_pid)}")
        self.p, self.k, self.seed = p, k, seed
        self.batches_per_pass = sum(max(len(v) // k, 1) for v in self.index_by_pid.values()) // p
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.batches_per_pass if self.num_batches is None else self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        if self.num_batches is None:
            yield from self._one_pass(0)
            return
        left, number = self.num_batches, 0
        while left > 0:
            for batch in self._one_pass(number):
                yield batch
                left -= 1
                if left == 0:
                    return
            number += 1

    def _one_pass(self, number: int) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, number))
        chunks: dict[int, list[list[int]]] = {}
        for pid, indices in self.index_by_pid.items():
            picked = rng.choice(indices, size=max(len(indices), self.k), replace=len(indices) < self.k)
            rng.shuffle(picked)
            chunks[pid] = [list(map(int, picked[i : i + self.k])) for i in range(0, len(picked) - self.k + 1, self.k)]
        available = [pid for pid in chunks if chunks[pid]]
        for _ in range(self.batches_per_pass):
            available = [pid for pid in available if chunks[pid]]
            if len(available) < self.p:
                return
            batch = []
            for pid in rng.choice(available, size=self.p, replace=False):
                batch.extend(chunks[int(pid)].pop())
            yield batch


class SeededDraws(Sampler[list[tuple[int, int]]]):
    """A batch sampler's batches with each index paired with the seed of its draw (`draw_seed`)."""

    def __init__(self, batches: Sampler[list[int]], seed: int) -> None:
        self.batches, self.seed = batches, seed

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        draw = 0
        for batch in self.batches:
            yield [(index, draw_seed(self.seed, draw + i)) for i, index in enumerate(batch)]
            draw += len(batch)


def allotted_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Loader processes: one CPU left to the training process, at most 8."""
    return min(8, max(allotted_cpus() - 1, 0))


def train_loader(records: Sequence[ImageRecord], height: int, width: int, p: int, k: int, seed: int = 0,
                 workers: int | None = None, num_batches: int | None = None, pin_memory: bool = False,
                 cache_mb: float = 0, **augment) -> DataLoader:
    """P x K batches of augmented images: one pass, or exactly `num_batches`. With `cache_mb` the
    set is decoded once into memory when it fits (`image_cache`)."""
    workers = default_workers() if workers is None else workers
    sampler = SeededDraws(IdentitySampler([r.pid for r in records], p, k, seed, num_batches), seed)
    decoded = decoded_images(records, height, width, cache_mb, workers) if cache_mb else None
    transform = tensor_transforms(height, width, True, **augment) if decoded is not None else build_transforms(height, width, True, **augment)
    return DataLoader(ImageDataset(records, transform, decoded), batch_sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory)


def eval_loader(records: Sequence[ImageRecord], height: int, width: int, batch_size: int = 128, workers: int | None = None,
                pin_memory: bool = False, cache_mb: float = 0) -> DataLoader:
    """Images in order, resized and normalised. From the decoded-image cache (`cache_mb`) only
    normalising is left, done here: no worker processes to start for it."""
    workers = default_workers() if workers is None else workers
    decoded = decoded_images(records, height, width, cache_mb, workers) if cache_mb else None
    transform = tensor_transforms(height, width, False) if decoded is not None else build_transforms(height, width, False)
    return DataLoader(ImageDataset(records, transform, decoded), batch_size=batch_size, shuffle=False,
                      num_workers=0 if decoded is not None else workers, pin_memory=pin_memory)
