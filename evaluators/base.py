"""What the search asks of an evaluator and of a latency source: small base classes, as Optuna's
samplers share `BaseSampler`: the few methods every implementation must write are abstract (a new
evaluator cannot forget one), the rest have defaults. The search driver does not care whether a
number came from training, from a stopwatch or from a device profile.

An evaluator splits its metrics in two, because they behave differently:

* `measure_cost(spec)`: what the spec costs (latency, FLOPs, params). The same for every seed
  and cheap (seconds, no training), so the search measures it first and can refuse a spec that
  breaks a latency constraint before paying for its training.
* `score(spec, seed)`: how well the spec re-identifies after training under `seed`. Seed noise
  is real at search budgets, so the search may ask for several seeds and keeps each one.

The names an evaluator `produces()` are declared once and checked against what it returns
(`check_returned`): a metric returned but not declared, or declared but never returned, is an
error naming both lists, not a silent gap in the study.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from attnas.evaluators.metric_registry import METRICS, se_name
from attnas.space import ArchSpec, SearchSpace

if TYPE_CHECKING:
    from attnas.evaluators.device import DeviceConfig


class Evaluator(abc.ABC):
    """Base of every evaluator. Write `from_config`, `produces`, `measure_cost` and `fingerprint`;
    override `score` when the evaluator trains, and the others when they have something to say."""

    #: the dataclass that is the Hydra schema of this evaluator's `conf/evaluator/*.yaml` options
    config_class: ClassVar[type]

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Any, dataset: Any, device: "DeviceConfig", workdir: str | None) -> "Evaluator":
        """The evaluator a config describes (`dataset` may be None for evaluators that train nothing;
        `workdir` is the study's folder, for files made once such as a parent)."""

    @abc.abstractmethod
    def produces(self) -> tuple[str, ...]:
        """Names (from the metric registry) of every metric `measure_cost` and `score` return."""

    @abc.abstractmethod
    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        """Seed-independent metrics of `spec`."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Short digest of every setting that shapes the numbers: results with another
        fingerprint are not comparable."""

    def prepare(self, space: "SearchSpace | str | None" = None) -> None:
        """One-time work before the first spec of a search space (or of a backbone, by name):
        load and check data, train a parent or a supernet; idempotent. Nothing by default."""

    def score(self, spec: ArchSpec, seed: int, fidelity: float = 1.0) -> dict[str, float]:
        """Seed-dependent metrics of `spec` trained under `seed`, with a fraction `fidelity` of the
        training budget (multi-fidelity search). An evaluator that trains nothing returns {}."""
        return {}

    def context(self) -> dict[str, Any]:
        """Where the numbers were measured (device, threads, torch version, ...), stored with them."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """What shaped the numbers beyond the settings (after `prepare`): data folder, validation
        protocol and identities; exported with an architecture."""
        return {}

    def predictors(self) -> dict[str, Callable[[ArchSpec], float]]:
        """Metrics it can predict for any spec without measuring (a device profile's latency), as
        metric -> function(spec); a structure-aware sampler scores candidates with them."""
        return {}

    def seeded(self) -> tuple[str, ...]:
        """The produced metrics that move with the training seed (retrieval quality)."""
        return tuple(name for name in self.produces() if name in METRICS and METRICS[name].seeded)


def check_returned(evaluator: Any, kind: str, returned: dict[str, float]) -> None:
    """Refuse metrics an evaluator returns without declaring them in `produces()`."""
    declared = set(evaluator.produces())
    unknown = sorted(name for name in returned if name not in declared and name.removesuffix("_se") not in declared)
    if unknown:
        raise RuntimeError(f"{type(evaluator).__name__}.{kind} returned {unknown}, which its produces() does not declare "
                           f"({', '.join(sorted(declared))}); declare every metric it returns")


def check_complete(evaluator: Any, cost: dict[str, float], scores: dict[str, float]) -> None:
    """Refuse a declared metric that neither `measure_cost` nor `score` returned."""
    missing = sorted(name for name in evaluator.produces() if name not in cost and name not in scores)
    if missing:
        raise RuntimeError(f"{type(evaluator).__name__} declares {missing} in produces() but returned only "
                           f"{sorted({*cost, *scores} - {se_name(m) for m in evaluator.produces()})}; return them or "
                           f"stop declaring them")


def check_evaluator_class(name: str, cls: Any) -> None:
    """What registration checks: an `Evaluator` subclass with all its methods, and a dataclass
    schema whose `type` is the registered name (so `conf/evaluator/*.yaml` find it)."""
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        raise TypeError(f"evaluator {name!r} must subclass attnas.evaluators.Evaluator, got {cls!r}")
    if getattr(cls, "__abstractmethods__", None):
        raise TypeError(f"evaluator {name!r} ({cls.__name__}) does not implement {sorted(cls.__abstractmethods__)}")
    schema = getattr(cls, "config_class", None)
    if schema is None or not dataclasses.is_dataclass(schema):
        raise TypeError(f"evaluator {name!r} ({cls.__name__}) needs config_class, the dataclass of its config")
    declared = {f.name: f.default for f in dataclasses.fields(schema)}
    if declared.get("type") != name:
        raise ValueError(f"evaluator {name!r}: {schema.__name__}.type defaults to {declared.get('type')!r}; "
                         f"it must be {name!r}, the name it is registered under")


class LatencySource(abc.ABC):
    """Where a candidate's latency comes from: timed here, predicted from a device profile, ...
    Write `from_config`, `measure`, `produces` and `fingerprint`; `describe` says, from what a
    trial recorded (`context()`), where the numbers came from, for the dashboard."""

    #: the dataclass of this source's own settings (`evaluator.latency.<source>.*`), or None
    settings_class: ClassVar[type | None] = None
    #: the name it is registered under (`evaluator.latency.source=<name>`); the dashboard finds its
    #: `describe` by the name the trials recorded, so registration checks the two agree
    name: ClassVar[str] = ""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, settings: Any, device: "DeviceConfig") -> "LatencySource":
        """The source the latency settings describe, for this device."""

    @abc.abstractmethod
    def measure(self, spec: ArchSpec) -> dict[str, float]:
        """`latency_ratio` (to the plain backbone) and whatever else the source knows."""

    @abc.abstractmethod
    def produces(self) -> tuple[str, ...]:
        """Names of the metrics `measure` returns."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Digest of everything that shapes the numbers."""

    def predictors(self) -> dict[str, Callable[[ArchSpec], float]]:
        return {}

    def context(self) -> dict[str, Any]:
        """Where the numbers come from, recorded with every trial; at least the source's name."""
        return {"latency_source": self.name}

    @classmethod
    def describe(cls, context: dict[str, Any]) -> str:
        """Where latencies recorded with `context` come from, in words (the dashboard's line)."""
        return f"{context.get('latency_source', cls.__name__)} on {context.get('device_name') or context.get('device', '?')}"


def digest(settings: Any) -> str:
    """Stable 12-character digest of JSON-able settings."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
