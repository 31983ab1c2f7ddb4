"""Images decoded once: a data set that fits in memory is read, resized and kept as one uint8 tensor.

Reading and decoding the same files every epoch, for every candidate and every validation, is most
of a small set's data loading. A process keeps the sets it decoded last within a memory budget
(`budget_mb`; the oldest set goes first); a set that does not fit is read from disk sample by sample,
as before. Loader workers forked from the process read the tensor without copying it (it is never
written after decoding). Decoding stops at the resize, which is deterministic; the random
augmentation runs on the cached pixels, so cached and uncached loading give the same tensors.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from attnas.evaluators.reid.datasets.base import ImageRecord
from attnas.evaluators.reid.datasets.images import to_rgb

#: below this many images, decoding in worker processes costs more than it saves (their start-up)
_PARALLEL_FROM = 512

_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def read_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return to_rgb(img)  # 16-bit grayscale scaled, not clipped to white
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise OSError(f"cannot read image {path!r}: {error}; the file is corrupt or not an image") from None


def decode_transform(height: int, width: int) -> T.Compose:
    """PIL image -> uint8 tensor (3, height, width): the deterministic part of every pipeline."""
    return T.Compose([T.Resize((height, width)), T.PILToTensor()])


class _Files(Dataset):
    def __init__(self, records: Sequence[ImageRecord], height: int, width: int) -> None:
        self.paths, self.decode = [r.path for r in records], decode_transform(height, width)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.decode(read_image(self.paths[index]))


def cache_key(records: Sequence[ImageRecord], height: int, width: int) -> tuple:
    paths = hashlib.sha1("\n".join(r.path for r in records).encode()).hexdigest()
    return height, width, len(records), paths


def decoded_images(records: Sequence[ImageRecord], height: int, width: int, budget_mb: float,
                   workers: int = 0) -> torch.Tensor | None:
    """`records`' images at height x width as one uint8 tensor (N, 3, H, W), decoded on first use
    and kept; None when they need more than `budget_mb` (or the budget is 0)."""
    size = len(records) * 3 * height * width
    budget = budget_mb * 2**20
    if size == 0 or size > budget:
        return None
    key = cache_key(records, height, width)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    while _CACHE and sum(t.numel() for t in _CACHE.values()) + size > budget:
        _CACHE.popitem(last=False)
    images = torch.empty((len(records), 3, height, width), dtype=torch.uint8)
    loader = DataLoader(_Files(records, height, width), batch_size=256,
                        num_workers=workers if len(records) >= _PARALLEL_FROM else 0)
    start = 0
    for batch in loader:
        images[start:start + len(batch)] = batch
        start += len(batch)
    _CACHE[key] = images
    return images


def clear() -> None:
    """Forget every decoded set (tests; a process that moves on to other data frees it by itself)."""
    _CACHE.clear()
