"""Specs as the frontier sampler's models see them: compact keys, feature columns in groups, and
the pool of candidates a proposal scores.

A key is a tuple of (position index, choice index) in network order: building an `ArchSpec`
validates every block's options, far too slow for the thousands of candidates scored per
proposal, so specs are built only for what is proposed or asked of a cost predictor.

Column groups (each gets its own prior spread, fitted to the study by the model):

* `stage`: count of each (block, stage) cell: what the paper's findings are stated in;
* `position`: an indicator per (block, position): effects that are not smooth in stage;
* `count`: a spec with k blocks sets columns 2..k, so each extra block has its own offset
  (diminishing returns);
* `block_pair`: count of each unordered pair of blocks in the spec, wherever they sit: blocks
  that only help (or hurt) together (21 for six blocks, so a few trials teach them);
* `pair`: the same per pair of (block, stage) cells, for pairs that work in some stages only.
  There are cells x (cells + 1) / 2 of them (300 for six blocks and four stages), far more than
  a study has trials, so they stay near zero unless the data asks for them (the spread of each
  group is fitted, see `model`).
"""

from __future__ import annotations

import itertools

import numpy as np

from attnas.models.backbones import layout
from attnas.space import ArchSpec, SearchSpace

Key = tuple[tuple[int, int], ...]
GROUPS = ("stage", "position", "count", "block_pair", "pair")


class SpecCoder:
    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.positions = list(space.allowed_positions)
        self._choice_objects = list(space.choices)  # parsed once: ArchSpec does not check them again
        self.choices = [str(c) for c in self._choice_objects]
        where = layout(space.backbone)
        self.stage_of = [where.key(p)[0] for p in self.positions]
        self._position_index = {p: i for i, p in enumerate(self.positions)}
        self._choice_index = {c: i for i, c in enumerate(self.choices)}
        n_stages, n_choices = len(where.stages), len(self.choices)
        cells = n_choices * n_stages
        pair_index = np.full((cells, cells), -1)
        upper = np.triu_indices(cells)
        pair_index[upper] = np.arange(len(upper[0]))
        self._pair_index = np.maximum(pair_index, pair_index.T)
        self._n_stages = n_stages
        block_pair = np.full((n_choices, n_choices), -1)
        block_upper = np.triu_indices(n_choices)
        block_pair[block_upper] = np.arange(len(block_upper[0]))
        self._block_pair_index = np.maximum(block_pair, block_pair.T)
        sizes = {"stage": cells, "position": n_choices * len(self.positions), "count": space.limit,
                 "block_pair": len(block_upper[0]), "pair": len(upper[0])}
        starts = np.cumsum([0] + [sizes[g] for g in GROUPS])
        self.groups = {g: np.arange(starts[i], starts[i + 1]) for i, g in enumerate(GROUPS)}
        self.width = int(starts[-1])
        self._columns: dict[Key, tuple[int, ...]] = {}

    # -- keys ----------------------------------------------------------------------------------
    def key(self, spec: ArchSpec) -> Key:
        return tuple(sorted((self._position_index[p], self._choice_index[str(c)]) for p, c in spec.blocks.items()))

    def spec(self, key: Key) -> ArchSpec:
        return ArchSpec(self.space.backbone, {self.positions[p]: self._choice_objects[c] for p, c in key})

    # -- features ------------------------------------------------------------------------------
    def columns(self, key: Key) -> tuple[int, ...]:
        """Columns set in the row of `key` (a column listed twice counts twice)."""
        if key not in self._columns:
            self._columns[key] = self._columns_of(key)
        return self._columns[key]

    def _columns_of(self, key: Key) -> tuple[int, ...]:
        g = self.groups
        cells = [c * self._n_stages + self.stage_of[p] for p, c in key]
        found = [int(g["stage"][cell]) for cell in cells]
        found += [int(g["position"][c * len(self.positions) + p]) for p, c in key]
        found += [int(g["count"][k]) for k in range(1, len(key))]
        found += [int(g["block_pair"][self._block_pair_index[a, b]]) for (_, a), (_, b) in itertools.combinations(key, 2)]
        found += [int(g["pair"][self._pair_index[a, b]]) for a, b in itertools.combinations(cells, 2)]
        return tuple(found)

    def matrix(self, keys: list[Key]) -> np.ndarray:
        rows = np.zeros((len(keys), self.width))
        for i, key in enumerate(keys):
            for column in self.columns(key):
                rows[i, column] += 1.0
        return rows

    # -- candidates ------------------------------------------------------------------------------
    def pool(self, rng: np.random.Generator, size: int, around: list[Key]) -> list[Key]:
        """The plain backbone, every one-block spec, random specs up to `size` in all, and every
        one-block move (add, swap, drop a block) from each key of `around`."""
        n_positions, n_choices, limit = len(self.positions), len(self.choices), self.space.limit
        found: dict[Key, None] = {(): None}
        if limit >= 1:
            found.update({((p, c),): None for p in range(n_positions) for c in range(n_choices)})
        for _ in range(3 * size):  # bounded: a small space holds fewer specs than `size`
            if len(found) >= size or limit < 2:
                break
            count = int(rng.integers(2, limit + 1))
            where = rng.choice(n_positions, size=count, replace=False)
            found[tuple(sorted((int(p), int(rng.integers(n_choices))) for p in where))] = None
        for key in around:
            held = dict(key)
            for p in range(n_positions):
                for c in range(n_choices):
                    moved = held | {p: c}
                    if len(moved) <= limit:
                        found[tuple(sorted(moved.items()))] = None
            for p in held:
                found[tuple(sorted((q, c) for q, c in held.items() if q != p))] = None
        return list(found)
