"""A data set's images as the 8-bit RGB the networks are trained on.

Pillow turns a 16-bit grayscale PNG (mode I;16, or I) into RGB by clipping every value above 255:
an all-white image, and a search that learns nothing without a word said. Here such an image is
scaled to 8 bits (value / 257 maps 0..65535 onto 0..255), and loading a data set whose images are
16-bit says so once, with an example file.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger("attnas.datasets")

#: Pillow's modes of 16- and 32-bit integer grayscale images (a 16-bit PNG opens as I;16)
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB; 16-bit grayscale is scaled (value / 257), not clipped to white."""
    if image.mode in WIDE_MODES:
        values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        image = Image.fromarray((values // 257).astype(np.uint8))  # 8-bit grayscale (L)
    return image.convert("RGB")


def warn_about_wide_images(name: str, splits: dict[str, list]) -> None:
    """Look at the first image of each split (its header only) and say when the set is 16-bit."""
    for split, records in splits.items():
        if not records:
            continue
        try:
            with Image.open(records[0].path) as image:
                mode = image.mode
        except (OSError, UnidentifiedImageError):  # a missing or corrupt file is reported, with its name, when read
            continue
        if mode in WIDE_MODES:
            log.warning("%s: the %s images are 16-bit grayscale (mode %s, e.g. %s); they are read scaled to 8 bits "
                        "(value / 257) and as RGB", name, split, mode, records[0].path)
            return
