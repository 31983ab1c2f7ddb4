"""A tabulated search problem with the shape of the real one, for measuring samplers.

Latency: each block's measured cost at each position on this machine, from a device profile
(`attnas-profile`; additive, as `bench/latency_profile.py` validates), a negative delta (timing
noise: a block adds work) counting as zero. Accuracy: a documented
synthetic landscape in mAP points over the plain backbone, with the paper's shape:

* a gain per block type and stage (`GAIN`): C-NL best in stages 3-4, NL good in stages 2-3
  but harmful in stage 1, channel-wise blocks small but positive; within a stage a block later
  in the stage counts more (x0.8 at the first block .. x1.2 at the last);
* diminishing returns: the positive gains of a spec, largest first, count 1, 0.7, 0.49 ...;
  harmful ones count in full;
* pairwise interactions: -0.3 for two blocks in one stage, -0.4 for two NL blocks, +0.2 for
  C-NL in both stage 3 and stage 4;
* seed noise: every evaluation adds Normal(0, `NOISE`) points; lower fidelities (a fraction f of
  the training budget) show only f^0.5 of a spec's effect and add noise / f^0.25.

The truth (noise-free) is what hypervolumes are computed on: a search is credited with the true
value of every spec it evaluated, as a user re-evaluating its front would find.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from attnas.evaluators.latency.profile import LatencyProfile
from attnas.models import layout
from attnas.space import ArchSpec

STAGES = ("layer1", "layer2", "layer3", "layer4")
GAIN = {  # mAP points per block, by stage
    "se": (0.1, 0.3, 0.6, 0.4),
    "cbam": (-0.3, 0.2, 0.5, 0.3),
    "nl": (-0.5, 0.6, 0.8, 0.2),
    "cnl": (0.1, 0.5, 1.0, 0.9),
    "eca": (0.0, 0.2, 0.4, 0.3),
    "gc": (0.0, 0.3, 0.5, 0.4),
}
NOISE = 0.3  # points, one evaluation
BASE = 80.0  # the plain backbone's mAP, in points


def true_map(spec: ArchSpec) -> float:
    """The landscape's noise-free mAP (points) of `spec`."""
    return _true_map(str(spec))


@lru_cache(maxsize=None)
def _true_map(text: str) -> float:
    spec = ArchSpec.parse(text)
    where = layout(spec.backbone)
    gains, stages, blocks = [], [], []
    for position, choice in spec.blocks.items():
        stage_index, index = where.key(position)
        depth = where.stages[stage_index].depth
        weight = 0.8 + 0.4 * index / max(depth - 1, 1)
        gains.append(GAIN[choice.block][stage_index] * weight)
        stages.append(stage_index)
        blocks.append(choice.block)
    positive = sorted((g for g in gains if g > 0), reverse=True)
    value = sum(g * 0.7 ** i for i, g in enumerate(positive)) + sum(g for g in gains if g <= 0)
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            value -= 0.3 * (stages[i] == stages[j]) + 0.4 * (blocks[i] == blocks[j] == "nl")
    cnl_stages = {s for s, b in zip(stages, blocks) if b == "cnl"}
    value += 0.2 * ({2, 3} <= cnl_stages)
    return BASE + value


def observed_map(spec: ArchSpec, rng: np.random.Generator, fidelity: float = 1.0) -> float:
    """What one evaluation at a fraction `fidelity` of the budget shows."""
    effect = true_map(spec) - BASE
    return BASE + effect * math.sqrt(fidelity) + rng.normal(0.0, NOISE / fidelity ** 0.25)


def latency(spec: ArchSpec, profile: LatencyProfile) -> float:
    return 1.0 + sum(max(profile.entries[LatencyProfile.key(p, c)].ratio - 1.0, 0.0) for p, c in spec.blocks.items())
