"""Attention blocks, one small module each, looked up by the short name a spec uses.

Adding a block type = its module + one line in `BLOCKS`. A block class is built as
`Block(channels, **options)`, starts as the identity (so a trained network survives insertion)
and may declare `spec_options`, the constructor arguments a spec can set by a short key:
`cnl(r=8)` builds `ChannelNonLocalBlock(channels, reduction=8)`. An option's default and type
come from the constructor's signature, so there is one default per knob.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnas.models.blocks.cbam import CBAMBlock
from attnas.models.blocks.cnl import ChannelNonLocalBlock
from attnas.models.blocks.eca import ECABlock
from attnas.models.blocks.gc import GCBlock
from attnas.models.blocks.nonlocal_block import NonLocalBlock
from attnas.models.blocks.se import SEBlock
from attnas.models.registry import Registry



def _check_block_class(name: str, cls: type[nn.Module]) -> None:
    """A block class is built as `cls(channels, **options)`; its `spec_options` name real arguments."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"attention block {name!r} must be an nn.Module class, got {cls!r}")
    parameters = inspect.signature(cls.__init__).parameters
    missing = [arg for arg in getattr(cls, "spec_options", {}).values() if arg not in parameters]
    if missing:
        raise TypeError(f"attention block {name!r}: spec_options name {missing}, which {cls.__name__}.__init__ does not take")


#: spec name -> block class; the order is the display order of reports
BLOCKS: Registry[type[nn.Module]] = Registry("attention block", {
    "se": SEBlock,
    "cbam": CBAMBlock,
    "nl": NonLocalBlock,
    "cnl": ChannelNonLocalBlock,
    "eca": ECABlock,
    "gc": GCBlock,
}, check=_check_block_class, valid="blocks")


@dataclass(frozen=True)
class BlockOption:
    """An option a spec may set: `key` in the spec text, `argument` of the constructor."""

    key: str
    argument: str
    default: Any  # from the constructor's signature (None: the block chooses, e.g. ECA's adaptive kernel)


def check_block(name: str) -> type[nn.Module]:
    return BLOCKS.get_entry(name)


def block_options(name: str) -> dict[str, BlockOption]:
    """The options block `name` accepts in a spec, by key."""
    return dict(_options_of(check_block(name)))


@functools.lru_cache(maxsize=None)
def _options_of(cls: type[nn.Module]) -> dict[str, BlockOption]:
    """Read off the class once (`inspect.signature` made parsing specs a third of a report's time)."""
    signature = inspect.signature(cls.__init__).parameters
    return {key: BlockOption(key, argument, signature[argument].default)
            for key, argument in getattr(cls, "spec_options", {}).items()}


#: largest value a spec option may take: no backbone here has a stage wider than 2048 channels,
#: so a larger reduction or kernel is a typo (and a 20-digit one would not build)
MAX_OPTION = 4096


def check_options(name: str, options: dict[str, Any]) -> dict[str, int]:
    """Validated options (integers 1..MAX_OPTION) with the defaults dropped: the canonical set.

    The values are also tried on a block of MAX_OPTION channels on the `meta` device, so a value
    the block refuses whatever its width (an even ECA kernel, say) is reported when a spec is
    read, not when a trial trains; limits that depend on the width (a reduction beyond the
    channels at a position) are `check_fits`'s, where the position is known.
    """
    known = block_options(name)
    canonical = {}
    for key, value in options.items():
        if key not in known:
            valid = ", ".join(f"{k} ({o.argument})" for k, o in known.items()) or "none"
            raise ValueError(f"block {name!r} has no option {key!r}; its options: {valid}")
        if isinstance(value, str):
            value = value.strip()
            if not value.lstrip("-").isdigit():
                raise ValueError(f"option {key}={value!r} of block {name!r} must be an integer >= 1")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option {key}={value!r} of block {name!r} must be an integer >= 1")
        if value > MAX_OPTION:
            raise ValueError(f"option {key}={value!r} of block {name!r} must be an integer >= 1 and at most {MAX_OPTION}")
        if value != known[key].default:
            canonical[key] = value
    canonical = dict(sorted(canonical.items()))
    if canonical:
        _try_options(name, tuple(canonical.items()), MAX_OPTION)
    return canonical


def check_fits(name: str, options: tuple[tuple[str, int], ...], channels: int, where: str, hint: str = "") -> None:
    """Refuse options block `name` cannot take at `channels` channels (`where` and `hint` go
    into the message)."""
    if options:
        try:
            _try_options(name, tuple(options), channels)
        except ValueError as error:
            text = str(error).replace(": ", f" does not fit the {channels} channels at {where}: ", 1)
            raise ValueError(f"{text}{'; ' + hint if hint else ''}") from None


@functools.lru_cache(maxsize=None)
def _try_options(name: str, options: tuple[tuple[str, int], ...], channels: int) -> None:
    try:
        with torch.device("meta"):
            create_block(name, channels, **dict(options))
    except ValueError as error:
        raise ValueError(f"block {name}({','.join(f'{k}={v}' for k, v in options)}): {error}") from None


def create_block(name: str, channels: int, **options: Any) -> nn.Module:
    """Build block `name` for `channels` channels; `options` by spec key (`r=8`) or argument name."""
    cls = check_block(name)
    known = block_options(name)
    kwargs = {known[k].argument if k in known else k: v for k, v in options.items()}
    try:
        return cls(channels, **kwargs)
    except TypeError as error:
        raise TypeError(f"bad options {options} for block {name!r}: {error}") from None


__all__ = [
    "BLOCKS",
    "BlockOption",
    "block_options",
    "check_block",
    "check_fits",
    "check_options",
    "create_block",
    "SEBlock",
    "CBAMBlock",
    "NonLocalBlock",
    "ChannelNonLocalBlock",
    "ECABlock",
    "GCBlock",
]
