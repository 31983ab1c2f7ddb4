"""Search space: architecture specs (which attention block where) and the sets they are drawn from."""

from attnas.space.backbones import BACKBONE_STAGES, positions, stage_channels
from attnas.space.blocks import BLOCK_TYPES, DEFAULT_PLACEMENT, NO_BLOCK, PLACEMENTS
from attnas.space.search_space import SearchSpace
from attnas.space.spec import ArchSpec, BlockChoice, as_spec

__all__ = [
    "ArchSpec",
    "BlockChoice",
    "SearchSpace",
    "as_spec",
    "positions",
    "stage_channels",
    "BACKBONE_STAGES",
    "BLOCK_TYPES",
    "DEFAULT_PLACEMENT",
    "NO_BLOCK",
    "PLACEMENTS",
]
