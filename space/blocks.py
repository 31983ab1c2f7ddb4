"""Names of the attention blocks a spec may place, and where they may sit.

The classes live in `models.blocks`; the names live here so that a spec can be parsed and
validated without importing torch. `tests/test_blocks.py` checks both lists agree.
"""

from __future__ import annotations

#: short spec names, as in the paper and the issue tracker; order is the display order
BLOCK_TYPES: tuple[str, ...] = ("se", "cbam", "nl", "cnl", "eca", "gc")

#: `post`: after the residual add, between two blocks (how NL blocks are inserted in AGW and
#: how the paper inserts its blocks); `pre`: inside the residual branch before the add (SE-Net).
PLACEMENTS: tuple[str, ...] = ("post", "pre")

#: paper.md: the paper inserts blocks after bottlenecks, so `post` is the default and is
#: omitted from the canonical text form.
DEFAULT_PLACEMENT = "post"

#: what a search space uses for "no block here" in samplers' categorical choices
NO_BLOCK = "none"


def check_block(name: str) -> None:
    if name not in BLOCK_TYPES:
        raise ValueError(f"unknown attention block {name!r}; valid blocks: {', '.join(BLOCK_TYPES)}")


def check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; valid placements: {', '.join(PLACEMENTS)}")
