"""Attention blocks, one small module each, looked up by the short name a spec uses."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from attnas.models.blocks.cbam import CBAMBlock
from attnas.models.blocks.cnl import ChannelNonLocalBlock
from attnas.models.blocks.eca import ECABlock
from attnas.models.blocks.gc import GCBlock
from attnas.models.blocks.nonlocal_block import NonLocalBlock
from attnas.models.blocks.se import SEBlock

#: spec name -> constructor taking (channels, **kwargs); keys equal `space.BLOCK_TYPES`
BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "se": SEBlock,
    "cbam": CBAMBlock,
    "nl": NonLocalBlock,
    "cnl": ChannelNonLocalBlock,
    "eca": ECABlock,
    "gc": GCBlock,
}


def create_block(name: str, channels: int, **kwargs: Any) -> nn.Module:
    if name not in BLOCKS:
        raise ValueError(f"unknown attention block {name!r}; valid blocks: {', '.join(BLOCKS)}")
    try:
        return BLOCKS[name](channels, **kwargs)
    except TypeError as error:
        raise TypeError(f"bad options {kwargs} for block {name!r}: {error}") from None


__all__ = [
    "BLOCKS",
    "create_block",
    "SEBlock",
    "CBAMBlock",
    "NonLocalBlock",
    "ChannelNonLocalBlock",
    "ECABlock",
    "GCBlock",
]
