"""Families of tabulated landscapes over one search space, to measure samplers on problems they
were not built for.

`bench/landscape.py` is one landscape, additive in block x stage, and `frontier` models exactly
that; a sampler tuned there can lose where the truth has another shape (issue 23). Each family
here is a generator: `make_landscape(space, family, seed, noise, latency)` draws one landscape
of that structure from `seed`, so a benchmark can tune on some seeds and report others held out.

Accuracy (mAP points over the plain backbone; the plain backbone is 0), by family:

* `additive`: the paper's shape (`bench/landscape.py`: gain per block type and stage, a
  position weight within the stage, diminishing returns, a few interactions), every gain
  jittered by Normal(0, 0.3) points and the within-stage slope drawn from U(0, 0.8);
* `position`: a gain per (block type, position), drawn independently around a per-block mean
  (Normal(0.3, 0.2) points, spread 0.6): not smooth in stage; diminishing returns as above;
* `pairs`: single blocks near zero (Normal(0, 0.05)); the effect is carried by pairs: for each
  unordered pair of (block type, stage) cells, with probability 0.08 a gain U(1, 2.5), else
  Normal(0, 0.15), times a position jitter U(0.6, 1.4) for each pair of positions;
* `needle`: an `additive` background plus one hidden spec (two blocks, latency below the median)
  at 3 architecture SDs above the best of the background.

Every landscape is scaled so the SD of the true mAP over the space is `ARCH_SD`: the spread of
architectures `bench/noise.py` measured (0.11 of one run's variance at 1.52 points of pooled
seed noise). Noise levels (`NOISES`): `measured` (a training seed's effect, shared by every
architecture trained under it, SD 1.26; residual SD 0.85: together the pooled 1.52) and `low`
(residual SD 0.3, no seed effect).

Latency ratio, additive over blocks (`latency_table`), a negative delta (timing noise) counting
as zero, from one of:

* `profile`: a device profile file (`attnas-profile`), when one exists on the machine;
* `measured`: `MEASURED_DELTAS`, the 2-thread CPU profile of ResNet-50 that the README's cost
  table prints (`python -m bench.block_cost`, % of the plain backbone, rounded to 0.1): the
  profile `bench/search_efficiency.py` uses, for machines that lack the file;
* `flops`: 1 + (FLOPs the block adds at its position) / (plain backbone FLOPs), counted with
  torch's FLOP counter and cached in `bench/out/`. FLOPs count memory-bound work (SE's pooling,
  C-NL's projections at batch 1) as nearly free, so on that table only NL costs anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from attnas.models import layout
from attnas.space import ArchSpec, BlockChoice, SearchSpace
from bench.landscape import GAIN

FAMILIES = ("additive", "position", "pairs", "needle")
POOLED_SD, SEED_SD, ARCH_SHARE = 1.52, 1.26, 0.11  # bench/noise.py, on real training
ARCH_SD = POOLED_SD * math.sqrt(ARCH_SHARE / (1 - ARCH_SHARE))  # 0.53 points


@dataclass(frozen=True)
class Noise:
    seed_sd: float  # a training seed's effect, shared by every architecture trained under it
    residual_sd: float  # what is left of one run


#: latency added by one block at each ResNet-50 position (layer1.0 .. layer4.2), % of the plain backbone
MEASURED_DELTAS = {
    "se": (2.2, -1.8, -0.3, 4.5, 1.0, 0.6, 0.8, 1.0, 2.9, 0.7, 1.0, 0.2, -1.5, 0.9, 1.0, 2.0),
    "cbam": (-0.1, 2.6, 0.5, 1.2, -0.3, 2.4, 1.0, 1.6, 2.0, 3.0, -0.5, 0.5, 1.5, 1.0, 2.4, 2.6),
    "nl": (51.2, 50.1, 47.7, 10.7, 10.2, 9.4, 10.1, 9.3, 6.3, 7.4, 8.6, 6.1, 9.6, 24.1, 26.1, 20.0),
    "cnl": (0.9, 1.5, -0.4, 0.8, 2.3, 1.1, 2.0, 3.5, 2.6, 3.4, 2.9, 2.7, 1.8, 6.8, 5.9, 5.3),
    "eca": (0.7, 1.3, 1.2, 1.5, 1.5, 0.9, 0.8, 0.9, 2.3, 0.6, -1.5, 0.7, 0.5, 0.2, 2.8, 1.6),
    "gc": (0.7, 1.8, 0.2, 2.1, 3.2, 1.0, 1.3, 0.7, -0.4, 3.0, 1.8, -3.5, -0.5, 2.0, 0.9, 1.5),
}
NOISES = {"measured": Noise(SEED_SD, math.sqrt(POOLED_SD**2 - SEED_SD**2)), "low": Noise(0.0, 0.3)}


@dataclass
class Landscape:
    """One tabulated problem: every spec of the space with its true (mAP points, latency ratio)."""

    name: str  # family/noise/seed
    specs: list[str]
    truth: np.ndarray  # (specs, 2): true mAP points over the plain backbone, latency ratio
    noise: Noise

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(self.specs)}


class Encoded:
    """The specs of a space as arrays: block type, position and stage index of each block."""

    def __init__(self, space: SearchSpace) -> None:
        where = layout(space.backbone)
        self.space, self.blocks, self.positions = space, [str(c) for c in space.choices], list(space.allowed_positions)
        self.specs = [str(s) for s in space.enumerate(limit=200_000)]
        self.stage_of = np.array([where.key(p)[0] for p in self.positions])
        self.depth_of = np.array([where.stages[where.key(p)[0]].depth for p in self.positions])
        self.index_in_stage = np.array([where.key(p)[1] for p in self.positions])
        self.members: list[list[tuple[int, int]]] = []  # per spec: (block, position) of each block
        for text in self.specs:
            spec = ArchSpec.parse(text)
            self.members.append([(self.blocks.index(str(c)), self.positions.index(p)) for p, c in spec.blocks.items()])


def _diminishing(gains: list[float]) -> float:
    """Positive gains, largest first, count 1, 0.7, 0.49 ...; harmful ones in full."""
    positive = sorted((g for g in gains if g > 0), reverse=True)
    return sum(g * 0.7**i for i, g in enumerate(positive)) + sum(g for g in gains if g <= 0)


def _additive(enc: Encoded, rng: np.random.Generator) -> np.ndarray:
    names = [BlockChoice.parse(b).block for b in enc.blocks]
    gain = np.array([GAIN[n] for n in names]) + rng.normal(0.0, 0.3, (len(names), 4))
    slope = rng.uniform(0.0, 0.8)
    weight = 1 - slope / 2 + slope * enc.index_in_stage / np.maximum(enc.depth_of - 1, 1)
    values = np.zeros(len(enc.specs))
    for row, members in enumerate(enc.members):
        stages = [enc.stage_of[p] for _, p in members]
        value = _diminishing([gain[b, enc.stage_of[p]] * weight[p] for b, p in members])
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                value -= 0.3 * (stages[i] == stages[j]) + 0.4 * (names[members[i][0]] == names[members[j][0]] == "nl")
        cnl_stages = {s for (b, _), s in zip(members, stages) if names[b] == "cnl"}
        values[row] = value + 0.2 * ({2, 3} <= cnl_stages)
    return values


def _position(enc: Encoded, rng: np.random.Generator) -> np.ndarray:
    mean = rng.normal(0.3, 0.2, len(enc.blocks))
    gain = mean[:, None] + rng.normal(0.0, 0.6, (len(enc.blocks), len(enc.positions)))
    return np.array([_diminishing([gain[b, p] for b, p in members]) for members in enc.members])


def _pairs(enc: Encoded, rng: np.random.Generator) -> np.ndarray:
    single = rng.normal(0.0, 0.05, (len(enc.blocks), len(enc.positions)))
    cells = len(enc.blocks) * 4
    pair = np.where(rng.random((cells, cells)) < 0.08, rng.uniform(1.0, 2.5, (cells, cells)), rng.normal(0.0, 0.15, (cells, cells)))
    pair = np.triu(pair) + np.triu(pair, 1).T  # symmetric: one effect per unordered pair
    jitter = rng.uniform(0.6, 1.4, (len(enc.positions),) * 2)
    jitter = np.triu(jitter) + np.triu(jitter, 1).T
    values = np.zeros(len(enc.specs))
    for row, members in enumerate(enc.members):
        cell = [b * 4 + enc.stage_of[p] for b, p in members]
        value = sum(single[b, p] for b, p in members)
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                value += pair[cell[i], cell[j]] * jitter[members[i][1], members[j][1]]
        values[row] = value
    return values


def _scaled(values: np.ndarray) -> np.ndarray:
    return values * ARCH_SD / values.std()


def make_landscape(enc: Encoded, family: str, seed: int, noise: str, latency: Callable[[ArchSpec], float]) -> Landscape:
    """The landscape of `family` drawn from `seed`, observed with the `noise` level."""
    if family not in FAMILIES:
        raise ValueError(f"unknown landscape family {family!r}; valid: {', '.join(FAMILIES)}")
    if noise not in NOISES:
        raise ValueError(f"unknown noise level {noise!r}; valid: {', '.join(NOISES)}")
    rng = np.random.default_rng([FAMILIES.index(family), seed])
    generate = {"additive": _additive, "position": _position, "pairs": _pairs, "needle": _additive}[family]
    values = _scaled(generate(enc, rng))
    values -= values[enc.specs.index(enc.space.backbone)]  # the plain backbone is 0
    latencies = np.array([latency(ArchSpec.parse(s)) for s in enc.specs])
    if family == "needle":
        candidates = [i for i, m in enumerate(enc.members) if len(m) == 2 and latencies[i] < np.median(latencies)]
        values[candidates[int(rng.integers(len(candidates)))]] = values.max() + 3 * ARCH_SD
    return Landscape(f"{family}/{noise}/{seed}", enc.specs, np.column_stack([values, latencies]), NOISES[noise])


class Observer:
    """What a study sees: a training seed's effect shared across architectures, a residual per
    run, and a spec seen again copied from its first runs (as a study reuses what it holds)."""

    def __init__(self, landscape: Landscape, rng: np.random.Generator) -> None:
        self.landscape, self.rng = landscape, rng
        self.seed_effects: dict[int, float] = {}
        self.runs: dict[tuple[int, int], float] = {}

    def run(self, row: int, seed: int) -> float:
        if seed not in self.seed_effects:
            self.seed_effects[seed] = float(self.rng.normal(0.0, self.landscape.noise.seed_sd))
        if (row, seed) not in self.runs:
            self.runs[(row, seed)] = (float(self.landscape.truth[row, 0]) + self.seed_effects[seed]
                                      + float(self.rng.normal(0.0, self.landscape.noise.residual_sd)))
        return self.runs[(row, seed)]


def latency_table(space: SearchSpace, source: str, profile_path: Path, cache: Path) -> tuple[Callable[[ArchSpec], float], str]:
    """(latency ratio of a spec, a line saying where it comes from) for `source` in
    `profile` (the file, else `measured`), `measured` or `flops`."""
    if source not in ("profile", "measured", "flops"):
        raise ValueError(f"unknown latency source {source!r}; valid: profile, measured, flops")
    if source == "profile" and profile_path.is_file():
        from attnas.evaluators.latency.profile import LatencyProfile

        profile = LatencyProfile.load(profile_path)
        delta = {LatencyProfile.key(p, c): profile.entries[LatencyProfile.key(p, c)].ratio - 1.0
                 for p in space.allowed_positions for c in space.choices}
        described = f"device profile {profile_path} ({profile.describe()})"
    elif source in ("profile", "measured"):
        unknown = [str(c) for c in space.choices if str(c) not in MEASURED_DELTAS]
        if space.backbone != "resnet50" or unknown:
            raise ValueError(f"the measured table holds ResNet-50 with {', '.join(MEASURED_DELTAS)} after the block; "
                             f"for {space.describe()} use --latency flops or a profile")
        where = layout("resnet50").positions
        delta = {f"{p}={c}": MEASURED_DELTAS[str(c)][where.index(p)] / 100 for p in space.allowed_positions for c in space.choices}
        described = "the README's measured 2-thread CPU profile (bench.block_cost), " + (
            f"{profile_path} absent" if source == "profile" else "asked for")
    else:
        delta, described = _flops_deltas(space, cache), f"FLOPs (added FLOPs / plain FLOPs, {cache})"

    def ratio(spec: ArchSpec) -> float:
        return 1.0 + sum(max(delta[f"{p}={c}"], 0.0) for p, c in spec.blocks.items())

    return ratio, described


def _flops_deltas(space: SearchSpace, cache: Path) -> dict[str, float]:
    if cache.is_file():
        table = json.loads(cache.read_text())
    else:
        table = _count_block_flops(space)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    missing = [f"{p}={c}" for p in space.allowed_positions for c in space.choices if f"{p}={c}" not in table["delta"]]
    if missing:
        raise ValueError(f"{cache} lacks {len(missing)} entries ({missing[0]}, ...); delete it to count them again")
    return {key: value / table["plain"] for key, value in table["delta"].items()}


def _count_block_flops(space: SearchSpace) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from attnas.evaluators.cost import count_flops
    from attnas.models import INPUT_SIZE, build_model

    plain = count_flops(build_model(space.backbone, 1))
    delta = {}
    for choice in space.choices:  # one model with the block at every position; each block's own count
        model = build_model(ArchSpec(space.backbone, {p: choice for p in space.allowed_positions}), 1).eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, *INPUT_SIZE))
        counts = counter.get_flop_counts()
        for position in space.allowed_positions:
            delta[f"{position}={choice}"] = float(sum(counts.get(f"ReIDNet.backbone.{position}.attention", {}).values()))
    return {"plain": plain, "delta": delta}
