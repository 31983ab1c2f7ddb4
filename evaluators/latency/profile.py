"""Device latency profiles: measure once on the target device, predict every spec.

A profile holds, for one backbone on one device (runtime, precision, threads, batch, input size),
the latency of the plain backbone and, for every (position, block, placement) of a space, the
ratio of the single-block model to the plain one, timed interleaved as the search's timer does,
with its standard error and spread. A spec's latency ratio is then predicted additively:

    ratio(spec) = 1 + sum over its blocks of (ratio(single block) - 1)

with the standard errors added in quadrature. `bench/latency_profile.py` checks the prediction
against end-to-end timings of random specs; a profile is validated, not assumed.

Profiles travel: one measured on the robot is used on the search server. What must match is
what the numbers are *of*: backbone, input size, batch, precision and runtime (`check`). The
torch build, CUDA, driver and device name are recorded, shown and warned about when they differ
from this machine's, never refused (a Jetson's torch is never the server's).

An entry whose timing stays disturbed after its retries (`Disturbance`) is not saved: the file
lists it under `disturbed` with the reason, and running attnas-profile again measures only what
is missing. Measuring writes the file after every entry (atomically), so a killed run resumes
where it stopped without measuring an entry twice.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from tqdm.auto import tqdm

from attnas.evaluators.artefacts import atomic_write_text
from attnas.evaluators.device_lock import DEVICE_LOCK
from attnas.evaluators.latency.disturbance import Disturbance
from attnas.evaluators.latency.environment import differences, software
from attnas.evaluators.latency.timing import LatencyConfig, device_name, measure_latency, measure_latency_ratio
from attnas.models import build_model
from attnas.space import ArchSpec, BlockChoice, SearchSpace, as_spec

log = logging.getLogger("attnas.latency")

FORMAT = 2  # 2: runtime, precision, software versions, disturbed entries (1 is read as eager fp32)
#: fields added by format 2, with the value a format-1 profile had; left out of the digest at that value
_ADDED = {"runtime": "eager", "precision": "fp32", "channels_last": False, "cuda_graphs": False, "software": {}, "disturbed": {}}


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
    runtime: str = "eager"
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    software: dict[str, str] = field(default_factory=dict)  # cuda, cudnn, driver, onnxruntime, tensorrt versions
    disturbed: dict[str, str] = field(default_factory=dict)  # entry key -> why its timing was not saved

    # -- identity ---------------------------------------------------------------------------
    @staticmethod
    def key(position: str, choice: BlockChoice) -> str:
        return f"{position}={choice}"

    @property
    def digest(self) -> str:
        """Of what predicts: the entries and the conditions (a format-1 profile keeps its digest; the
        list of disturbed entries is not part of it)."""
        identity = {k: v for k, v in self.to_dict().items() if k not in _ADDED or (k != "disturbed" and v != _ADDED[k])}
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in {"torch": self.torch, **self.software}.items())
        return (f"{self.device_name} ({self.device}, {self.runtime} {self.precision}, {self.threads} threads, batch "
                f"{self.batch_size}, {self.input_size[0]}x{self.input_size[1]}, {versions}, measured {self.created[:10]})")

    def check(self, backbone: str, batch_size: int | None = None, input_size: Iterable[int] | None = None,
              torch_version: str | None = None, runtime: str | None = None, precision: str | None = None) -> None:
        """Refuse a profile that does not describe these conditions (one line, saying what differs).
        Backbone, batch, input size, runtime and precision decide; the torch build does not
        (`torch_version` is accepted for old callers and ignored: see `warn_about_versions`)."""
        differences_ = []
        if backbone != self.backbone:
            differences_.append(f"backbone {self.backbone}, not {backbone}")
        if batch_size is not None and batch_size != self.batch_size:
            differences_.append(f"batch {self.batch_size}, not {batch_size}")
        if input_size is not None and list(input_size) != list(self.input_size):
            differences_.append(f"input {self.input_size[0]}x{self.input_size[1]}, not {'x'.join(map(str, input_size))}")
        if runtime is not None and runtime != self.runtime:
            differences_.append(f"runtime {self.runtime}, not {runtime}")
        if precision is not None and precision != self.precision:
            differences_.append(f"precision {self.precision}, not {precision}")
        if differences_:
            raise ValueError(f"the latency profile ({self.describe()}) does not fit: it was measured for "
                             f"{'; '.join(differences_)}; measure one for these settings with attnas-profile")

    def version_differences(self) -> list[str]:
        """Versions the profile was measured under that differ from this machine's (shown, not refused)."""
        return differences({"torch": self.torch, **self.software}, software(self.device, self.runtime))

    def warn_about_versions(self) -> None:
        found = self.version_differences()
        if found:
            log.warning("the latency profile was measured under %s; its ratios are used as measured (they describe %s, "
                        "not this machine)", ", ".join(found), self.device_name)

    # -- prediction -------------------------------------------------------------------------
    def predict(self, spec: ArchSpec | str) -> tuple[float, float]:
        """(latency ratio, its standard error) of `spec`, from the single-block deltas."""
        spec = as_spec(spec)
        self.check(spec.backbone)
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
        if data.get("format") not in (1, FORMAT):
            raise ValueError(f"{str(path)!r} is not an attnas latency profile (format {data.get('format')!r}, expected 1 or {FORMAT})")
        data["entries"] = {k: ProfileEntry(**v) for k, v in data["entries"].items()}
        return cls(**data)


def single_block_specs(space: SearchSpace) -> list[ArchSpec]:
    """One spec per (position, block variant, placement) of the space: what a profile times."""
    return [ArchSpec(space.backbone, {position: BlockChoice.parse(f"{block}@{placement}")})
            for position in space.allowed_positions for block in space.blocks for placement in space.placements]


def _fresh(space: SearchSpace, config: LatencyConfig) -> LatencyProfile:
    device = torch.device(config.device)
    return LatencyProfile(space.backbone, str(device), device_name(device), torch.get_num_threads(), config.batch_size,
                          list(config.input_size), torch.__version__, datetime.datetime.now().isoformat(timespec="seconds"),
                          config.repeats, runtime=config.runtime, precision=config.precision,
                          channels_last=config.channels_last, cuda_graphs=config.cuda_graphs,
                          software={k: v for k, v in software(config.device, config.runtime).items() if k != "torch"})


def measure_profile(space: SearchSpace, config: LatencyConfig, path: str | os.PathLike, progress: bool = True,
                    resume: bool = True, retries: int = 2, disturbance: Disturbance | None = None,
                    wait_s: float | None = 60.0) -> LatencyProfile:
    """Time every single-block spec of `space` against the plain backbone; resumable. An entry
    still disturbed after `retries` re-measurements is left out (listed in `disturbed`)."""
    path = Path(path)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    fresh = profile = _fresh(space, config)
    disturbance = disturbance or Disturbance()
    if resume and path.exists():
        profile = LatencyProfile.load(path)
        profile.check(space.backbone, config.batch_size, config.input_size, runtime=config.runtime, precision=config.precision)
        if (profile.device, profile.threads, profile.repeats) != (fresh.device, fresh.threads, fresh.repeats):
            raise ValueError(f"{str(path)!r} was measured with {profile.device}, {profile.threads} threads, {profile.repeats} "
                             f"repeats; this run has {fresh.device}, {fresh.threads}, {fresh.repeats}: use another file")
        profile.format, profile.software = FORMAT, profile.software or fresh.software
    plain = build_model(space.backbone, num_classes=1)
    if math.isnan(profile.plain_ms):
        with DEVICE_LOCK.exclusive(config.device, wait_s):
            profile.plain_ms = measure_latency(plain, config).median_ms
        profile.save(path)
    todo = [s for s in single_block_specs(space) if LatencyProfile.key(*next(iter(s.blocks.items()))) not in profile.entries]
    bar = tqdm(todo, desc="profile", disable=not progress, unit="entry")
    for spec in bar:
        position, choice = next(iter(spec.blocks.items()))
        key = LatencyProfile.key(position, choice)
        model = build_model(spec, num_classes=1)
        for attempt in range(retries + 1):
            with DEVICE_LOCK.exclusive(config.device, wait_s) as alone:
                timing = measure_latency_ratio(model, plain, config)
            problems = disturbance.problems(spec.num_blocks, timing) + ([] if alone else ["the device stayed busy"])
            if not problems:
                break
        if problems:
            profile.disturbed[key] = "; ".join(problems)
            log.warning("%s stayed disturbed after %d timings (%s): not saved", key, retries + 1, profile.disturbed[key])
        else:
            profile.disturbed.pop(key, None)
            profile.entries[key] = ProfileEntry(timing.ratio, timing.ratio_se, timing.model.spread, timing.model.median_ms)
        profile.save(path)
        bar.set_postfix(last=key, ratio=f"{timing.ratio:.3f}")
    return profile
