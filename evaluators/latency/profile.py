"""Device latency profiles: measure once on the target device, predict every spec.

A profile holds, for one backbone on one device (threads, batch, input size, torch version), the
latency of the plain backbone and, for every (position, block, placement) of a space, the ratio
of the single-block model to the plain one, timed interleaved as the search's timer does, with
its standard error and spread. A spec's latency ratio is then predicted additively:

    ratio(spec) = 1 + sum over its blocks of (ratio(single block) - 1)

with the standard errors added in quadrature. `bench/latency_profile.py` checks the prediction
against end-to-end timings of random specs; a profile is validated, not assumed.

Measuring writes the file after every entry (atomically), so a killed run resumes where it
stopped without measuring an entry twice.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from tqdm.auto import tqdm

from attnas.evaluators.artefacts import atomic_write_text
from attnas.evaluators.device import DEVICE_LOCK
from attnas.evaluators.latency.timing import LatencyConfig, device_name, measure_latency, measure_latency_ratio
from attnas.models import build_model
from attnas.space import ArchSpec, BlockChoice, SearchSpace, as_spec

FORMAT = 1


@dataclass
class ProfileEntry:
    ratio: float  # single-block model / plain backbone (median of interleaved pair ratios)
    se: float  # standard error of that ratio
    spread: float  # (p90 - p10) / median of the single-block model's samples
    ms: float  # median latency of the single-block model


@dataclass
class LatencyProfile:
    backbone: str
    device: str
    device_name: str
    threads: int
    batch_size: int
    input_size: list[int]
    torch: str
    created: str
    repeats: int
    plain_ms: float = math.nan
    entries: dict[str, ProfileEntry] = field(default_factory=dict)  # "layer3.5=cnl(r=8)@pre" -> entry
    format: int = FORMAT

    # -- identity ---------------------------------------------------------------------------
    @staticmethod
    def key(position: str, choice: BlockChoice) -> str:
        return f"{position}={choice}"

    @property
    def digest(self) -> str:
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        return (f"{self.device_name} ({self.device}, {self.threads} threads, batch {self.batch_size}, "
                f"{self.input_size[0]}x{self.input_size[1]}, torch {self.torch}, measured {self.created[:10]})")

    def check(self, backbone: str, batch_size: int | None = None, input_size: Iterable[int] | None = None,
              torch_version: str | None = torch.__version__) -> None:
        """Refuse a profile that does not describe these conditions (one line, saying what differs)."""
        differences = []
        if backbone != self.backbone:
            differences.append(f"backbone {self.backbone}, not {backbone}")
        if batch_size is not None and batch_size != self.batch_size:
            differences.append(f"batch {self.batch_size}, not {batch_size}")
        if input_size is not None and list(input_size) != list(self.input_size):
            differences.append(f"input {self.input_size[0]}x{self.input_size[1]}, not {'x'.join(map(str, input_size))}")
        if torch_version is not None and torch_version != self.torch:
            differences.append(f"torch {self.torch}, not {torch_version}")
        if differences:
            raise ValueError(f"the latency profile ({self.describe()}) is stale: it was measured for {'; '.join(differences)}; "
                             f"measure it again with attnas-profile")

    # -- prediction -------------------------------------------------------------------------
    def predict(self, spec: ArchSpec | str) -> tuple[float, float]:
        """(latency ratio, its standard error) of `spec`, from the single-block deltas."""
        spec = as_spec(spec)
        self.check(spec.backbone, torch_version=None)
        ratio, variance = 1.0, 0.0
        for position, choice in spec.blocks.items():
            key = self.key(position, choice)
            if key not in self.entries:
                raise ValueError(f"the latency profile has no entry {key}; profile a space that holds it "
                                 f"(attnas-profile space.blocks=... space.placements=...)")
            entry = self.entries[key]
            ratio += entry.ratio - 1.0
            variance += entry.se ** 2
        return ratio, math.sqrt(variance)

    # -- file -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")  # a killed writer leaves the old file

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyProfile":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no latency profile at {str(path)!r}; measure one with attnas-profile")
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not an attnas latency profile (format {data.get('format')!r}, expected {FORMAT})")
        data["entries"] = {k: ProfileEntry(**v) for k, v in data["entries"].items()}
        return cls(**data)


def single_block_specs(space: SearchSpace) -> list[ArchSpec]:
    """One spec per (position, block variant, placement) of the space: what a profile times."""
    return [ArchSpec(space.backbone, {position: BlockChoice.parse(f"{block}@{placement}")})
            for position in space.allowed_positions for block in space.blocks for placement in space.placements]


def measure_profile(space: SearchSpace, config: LatencyConfig, path: str | os.PathLike, progress: bool = True,
                    resume: bool = True) -> LatencyProfile:
    """Time every single-block spec of `space` against the plain backbone; resumable."""
    path = Path(path)
    device = torch.device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    fresh = LatencyProfile(space.backbone, str(device), device_name(device), torch.get_num_threads(), config.batch_size,
                           list(config.input_size), torch.__version__, datetime.datetime.now().isoformat(timespec="seconds"),
                           config.repeats)
    profile = fresh
    if resume and path.exists():
        profile = LatencyProfile.load(path)
        profile.check(space.backbone, config.batch_size, config.input_size)
        if (profile.device, profile.threads, profile.repeats) != (fresh.device, fresh.threads, fresh.repeats):
            raise ValueError(f"{str(path)!r} was measured with {profile.device}, {profile.threads} threads, {profile.repeats} "
                             f"repeats; this run has {fresh.device}, {fresh.threads}, {fresh.repeats}: use another file")
    plain = build_model(space.backbone, num_classes=1)
    if math.isnan(profile.plain_ms):
        with DEVICE_LOCK.exclusive():
            profile.plain_ms = measure_latency(plain, config).median_ms
        profile.save(path)
    todo = [s for s in single_block_specs(space) if LatencyProfile.key(*next(iter(s.blocks.items()))) not in profile.entries]
    bar = tqdm(todo, desc="profile", disable=not progress, unit="entry")
    for spec in bar:
        position, choice = next(iter(spec.blocks.items()))
        with DEVICE_LOCK.exclusive():
            timing = measure_latency_ratio(build_model(spec, num_classes=1), plain, config)
        profile.entries[LatencyProfile.key(position, choice)] = ProfileEntry(timing.ratio, timing.ratio_se,
                                                                            timing.model.spread, timing.model.median_ms)
        profile.save(path)
        bar.set_postfix(last=f"{position}={choice}", ratio=f"{timing.ratio:.3f}")
    return profile
