"""When a timing cannot be trusted: the machine was busy, or the numbers are physically impossible.

A busy machine (other processes, thermal throttling, another job on the GPU) widens the samples
and moves the ratio. Some of that shows in the samples themselves (spread, the ratio's standard
error); some only in what the ratio claims. Every spec of a search is the plain backbone plus
blocks, and a block only adds work, so a spec measured faster than the plain backbone beyond its
error is not a finding but a disturbed timing (issue 21 saw two SE blocks at 0.54x the plain
network, and the plain network at 0.80x itself). Such timings are flagged, never accepted: the
search marks them for re-timing (`retime=true`), a profile does not save them, and placement
rules do not state latency findings from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnas.evaluators.latency.timing import LatencyRatio


@dataclass
class Disturbance:
    max_spread: float = 0.25  # (p90 - p10) / median of either model's samples above this
    max_ratio_se: float = 0.02  # the ratio's standard error above this share of it
    plain_tolerance: float = 0.03  # the plain backbone timed against itself further from 1 than this
    impossible_z: float = 3.0  # a spec that adds blocks below 1 - plain_tolerance by more than this many standard errors

    def problems(self, num_blocks: int, timing: LatencyRatio) -> list[str]:
        """Why a timing of a spec with `num_blocks` blocks (against the plain backbone) looks
        disturbed; empty when it does not."""
        found = []
        spread = max(timing.model.spread, timing.baseline.spread)
        if spread > self.max_spread:
            found.append(f"spread {spread:.2f} > {self.max_spread}")
        if not timing.ratio_se <= self.max_ratio_se * timing.ratio:  # a NaN standard error (too few pairs) too
            found.append(f"ratio standard error {timing.ratio_se / timing.ratio:.1%} > {self.max_ratio_se:.0%}")
        if num_blocks == 0 and abs(timing.ratio - 1) > self.plain_tolerance:
            found.append(f"the plain backbone measured {timing.ratio:.3f}x itself")
        se = timing.ratio_se if timing.ratio_se == timing.ratio_se else 0.0
        if num_blocks > 0 and timing.ratio + self.impossible_z * se < 1 - self.plain_tolerance:
            found.append(f"measured {timing.ratio:.3f} ± {se:.3f} of the plain backbone, faster than it although it only "
                         f"adds blocks: physically impossible")
        return found
