"""Search space: architecture specs (which attention block where) and the sets they are drawn from.

Backbones and blocks are read from their registries in `attnas.models` (the adapters and the
block classes), so a spec is valid exactly when it can be built.
"""

from attnas.space.search_space import NO_BLOCK, SearchSpace, SpaceConfig, make_space, references
from attnas.space.spec import DEFAULT_PLACEMENT, PLACEMENTS, ArchSpec, BlockChoice, as_spec

__all__ = ["ArchSpec", "BlockChoice", "SearchSpace", "SpaceConfig", "make_space", "references", "as_spec", "DEFAULT_PLACEMENT", "NO_BLOCK", "PLACEMENTS"]
