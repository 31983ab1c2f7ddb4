"""`SearchSpace`: the set of specs a study may visit, and how a sampler visits it.

Encoding, and how `max_blocks` is kept (the spec never exceeds it, by construction):

* `positional` (no block limit, or a limit that is not below the number of positions): one
  categorical per position, choices `none` plus every `block@placement`. Every assignment is a
  valid spec and every spec has exactly one assignment, so NSGA-II, TPE, random and brute-force
  samplers all see the space as it is.
* `slots` (a block limit below the number of positions, the usual case: paper-style 1-3 blocks
  among 16 positions): `max_blocks` slots, each a categorical `slotI_position` over `none` plus
  the positions, and `slotI_block_if_used` (and `slotI_placement_if_used`), sampled even for an
  empty slot and then ignored, as their names say. Unconditional on purpose: NSGA-II's crossover and the GP sampler work on the search
  space that all trials share and draw the rest at random, so a `block` parameter that the plain
  backbone's trial lacks would never be evolved or modelled. Any assignment decodes to a spec
  with at most `max_blocks` blocks. Two slots that name the same
  position keep the first slot's block (the later one is recorded as dropped); slot order is
  irrelevant, so the search results cache (keyed by canonical spec) absorbs the symmetric
  duplicates. Rejection sampling in the positional encoding was not an option: with 7 choices
  per position, almost no random R50 draw has three or fewer blocks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Protocol, Sequence

from attnas.models.backbones import backbone_family, layout
from attnas.models.blocks import BLOCKS, check_fits
from attnas.space.spec import PLACEMENTS, ArchSpec, BlockChoice, check_placement, choice_at

#: what a search space uses for "no block here" in samplers' categorical choices
NO_BLOCK = "none"


class TrialLike(Protocol):
    """The part of `optuna.trial.Trial` a space needs; keeps `space/` free of an optuna import."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


ENCODINGS = ("auto", "positional", "slots")


@dataclass
class SearchSpace:
    """Backbone, where blocks may go, which blocks, which placements, and how many at most.

    `positions` is `"all"`, a list of stages (`["layer2", "layer3"]`), or explicit positions
    (`["layer3.5", "layer4.0"]`); the two kinds can be mixed. `blocks` are block types with
    optional options, each a separate choice: `["cnl", "cnl(r=8)", "se"]` (None: every
    registered block with its default options).
    """

    backbone: str = "resnet50"
    positions: str | Sequence[str] = "all"
    blocks: Sequence[str] | None = None
    placements: Sequence[str] = ("post",)
    max_blocks: int | None = 3
    encoding: str = "auto"
    _positions: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        backbone_family(self.backbone)
        self._positions = _resolve_positions(self.backbone, self.positions)
        if self.blocks is None:
            self.blocks = tuple(BLOCKS)
        if isinstance(self.blocks, str) or isinstance(self.placements, str):
            raise ValueError("blocks and placements are lists, e.g. blocks=[se, cnl] placements=[post]")
        # canonical variants: `cnl(r=2)` is `cnl`, options sorted; errors name the valid choices
        self.blocks = tuple(BlockChoice.parse(str(b)).variant for b in self.blocks)
        self.placements = tuple(self.placements)
        if not self.blocks:
            raise ValueError(f"a search space needs at least one block type; valid blocks: {', '.join(BLOCKS)}")
        if not self.placements:
            raise ValueError(f"a search space needs at least one placement; valid: {', '.join(PLACEMENTS)}")
        for placement in self.placements:
            check_placement(placement)
        for name, values in (("block", self.blocks), ("placement", self.placements)):
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate {name} in search space: {list(values)}")
        widths = {layout(self.backbone).stage_of(p).name: layout(self.backbone).channels_at(p) for p in self._positions}
        for variant in self.blocks:  # a variant must build at every position it may be drawn for
            choice = BlockChoice.parse(variant)
            for stage, channels in widths.items():
                check_fits(choice.block, choice.options, channels, stage, "leave that stage out of space.positions or change the option")
        if self.max_blocks is not None and self.max_blocks < 0:
            raise ValueError(f"max_blocks must be >= 0 or None (no limit), got {self.max_blocks}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; valid encodings: {', '.join(ENCODINGS)}")
        if self.encoding == "positional" and self.limit < len(self._positions):
            raise ValueError(
                f"the positional encoding cannot keep max_blocks={self.max_blocks} over "
                f"{len(self._positions)} positions; use encoding='slots' (or 'auto')"
            )

    @property
    def allowed_positions(self) -> tuple[str, ...]:
        return self._positions

    @property
    def limit(self) -> int:
        """Effective block limit: `max_blocks`, capped by the number of positions."""
        n = len(self._positions)
        return n if self.max_blocks is None else min(self.max_blocks, n)

    @property
    def resolved_encoding(self) -> str:
        if self.encoding != "auto":
            return self.encoding
        return "positional" if self.limit >= len(self._positions) else "slots"

    @property
    def choices(self) -> list[BlockChoice]:
        """Every (block variant, placement) a position of the space can hold."""
        return [BlockChoice.parse(f"{b}@{p}") for b in self.blocks for p in self.placements]

    def choices_at(self, position: str) -> list[BlockChoice]:
        """The distinct choices at `position`: fewer than `choices` where the block has no
        residual add (`pre` is `post` there)."""
        where = layout(self.backbone)
        return list(dict.fromkeys(choice_at(where, position, choice) for choice in self.choices))

    # -- counting and enumeration -------------------------------------------------------------
    def cardinality(self) -> int:
        """Number of distinct specs: over every set of at most `limit` positions, the product of
        their numbers of choices (sum over k of C(positions, k) * choices^k when every position
        has the same choices)."""
        by_size = [1] + [0] * self.limit  # by_size[k]: specs with k blocks among the positions so far
        for position in self._positions:
            count = len(self.choices_at(position))
            for k in range(self.limit, 0, -1):
                by_size[k] += by_size[k - 1] * count
        return sum(by_size)

    def enumerate(self, limit: int = 100_000) -> Iterator[ArchSpec]:
        """Every spec of the space, plain backbone first, then by number of blocks."""
        size = self.cardinality()
        if size > limit:
            raise ValueError(
                f"this space holds {size:,} specs, more than limit={limit:,}; restrict positions, blocks "
                f"or max_blocks, or raise the limit"
            )
        choices = {position: self.choices_at(position) for position in self._positions}
        for k in range(self.limit + 1):
            for where in itertools.combinations(self._positions, k):
                for what in itertools.product(*(choices[position] for position in where)):
                    yield ArchSpec(self.backbone, dict(zip(where, what)))

    def __contains__(self, spec: object) -> bool:
        if not isinstance(spec, ArchSpec) or spec.backbone != self.backbone:
            return False
        if spec.num_blocks > self.limit:
            return False
        return all(pos in self._positions and c in self.choices_at(pos) for pos, c in spec.blocks.items())

    # -- sampling --------------------------------------------------------------------------
    def sample(self, trial: TrialLike) -> ArchSpec:
        """Draw a spec through the trial's sampler (see the module docstring for the encoding)."""
        if self.resolved_encoding == "positional":
            blocks = {}
            for pos in self._positions:
                value = trial.suggest_categorical(pos, [NO_BLOCK] + [str(c) for c in self.choices_at(pos)])
                if value != NO_BLOCK:
                    blocks[pos] = BlockChoice.parse(value)
            return ArchSpec(self.backbone, blocks)
        blocks = {}
        for slot in range(self.limit):
            pos = trial.suggest_categorical(f"slot{slot}_position", [NO_BLOCK, *self._positions])
            block = trial.suggest_categorical(f"slot{slot}_block_if_used", list(self.blocks))
            placement = (
                trial.suggest_categorical(f"slot{slot}_placement_if_used", list(self.placements))
                if len(self.placements) > 1
                else self.placements[0]
            )
            if pos != NO_BLOCK:
                blocks.setdefault(pos, BlockChoice.parse(f"{block}@{placement}"))
        return ArchSpec(self.backbone, blocks)

    def params_for(self, spec: ArchSpec) -> dict[str, Any]:
        """Sampler parameters that decode to `spec`: what `study.enqueue_trial` needs."""
        if spec not in self:
            raise ValueError(f"spec {spec} is not in this search space ({self.describe()})")
        if self.resolved_encoding == "positional":
            return {pos: str(spec.blocks[pos]) if pos in spec.blocks else NO_BLOCK for pos in self._positions}
        params: dict[str, Any] = {}
        entries = list(spec.blocks.items())
        for slot in range(self.limit):
            # an empty slot still carries a block and placement (ignored), see the module docstring
            pos, choice = entries[slot] if slot < len(entries) else (NO_BLOCK, BlockChoice.parse(f"{self.blocks[0]}@{self.placements[0]}"))
            params[f"slot{slot}_position"] = pos
            params[f"slot{slot}_block_if_used"] = choice.variant
            if len(self.placements) > 1:  # `post` where the space draws only `pre`: drawn as `pre`, held as `post`
                params[f"slot{slot}_placement_if_used"] = choice.placement if choice.placement in self.placements \
                    else self.placements[0]
        return params

    def identity(self) -> dict[str, Any]:
        """Everything that decides which specs the space holds, for comparing two spaces."""
        return {"backbone": self.backbone, "positions": list(self._positions), "blocks": list(self.blocks),
                "placements": list(self.placements), "max_blocks": self.max_blocks}

    def describe(self) -> str:
        limit = "no limit" if self.max_blocks is None else f"max {self.max_blocks} blocks"
        return (
            f"{self.backbone}, {len(self._positions)} positions, blocks {'/'.join(self.blocks)}, "
            f"placements {'/'.join(self.placements)}, {limit}, {self.cardinality():,} specs"
        )


def _resolve_positions(backbone: str, wanted: str | Sequence[str]) -> tuple[str, ...]:
    where = layout(backbone)
    every = where.positions
    stages = {stage.name for stage in where.stages}
    if isinstance(wanted, str):
        wanted = [wanted]
    chosen: set[str] = set()
    for item in wanted:
        if item == "all":
            chosen.update(every)
        elif item in stages:
            chosen.update(p for p in every if where.stage_of(p).name == item)
        elif item in every:
            chosen.add(item)
        else:
            raise ValueError(
                f"position {item!r} does not exist in {backbone}; use 'all', a stage "
                f"({', '.join(s.name for s in where.stages)}) or a position such as {every[0]!r} .. {every[-1]!r}"
            )
    if not chosen:
        raise ValueError("a search space needs at least one position")
    return tuple(p for p in every if p in chosen)


@dataclass
class SpaceConfig:
    """The `space` config group; defaults are `SearchSpace`'s own."""

    backbone: str = SearchSpace.backbone
    positions: Any = SearchSpace.positions  # "all", or a list of stages and positions
    blocks: Optional[list[str]] = None  # None: every registered block
    placements: list[str] = field(default_factory=lambda: list(SearchSpace.placements))
    max_blocks: Optional[int] = SearchSpace.max_blocks
    encoding: str = SearchSpace.encoding
    # enqueued first so every study has its reference points (those outside the space are skipped)
    references: list[str] = field(default_factory=list)


def make_space(cfg: SpaceConfig) -> SearchSpace:
    positions = cfg.positions if isinstance(cfg.positions, str) else list(cfg.positions)
    return SearchSpace(cfg.backbone, positions, None if cfg.blocks is None else list(cfg.blocks), list(cfg.placements),
                       cfg.max_blocks, cfg.encoding)


def references(cfg: SpaceConfig, space: SearchSpace) -> list[ArchSpec]:
    """The configured reference specs that lie inside the space, in config order."""
    return [spec for spec in (ArchSpec.parse(text) for text in cfg.references) if spec in space]
