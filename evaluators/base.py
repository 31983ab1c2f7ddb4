"""What the search asks of an evaluator and of a latency source: small protocols, as Optuna's
samplers share `BaseSampler`. The search driver does not care whether a number came from
training, from a stopwatch or from a device profile.

An evaluator splits its metrics in two, because they behave differently:

* `measure_cost(spec)`: what the spec costs (latency, FLOPs, params). The same for every seed
  and cheap (seconds, no training), so the search measures it first and can refuse a spec that
  breaks a latency constraint before paying for its training.
* `score(spec, seed)`: how well the spec re-identifies after training under `seed`. Seed noise
  is real at search budgets, so the search may ask for several seeds and keeps each one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable

from attnas.space import ArchSpec, SearchSpace


@runtime_checkable
class Evaluator(Protocol):
    def prepare(self, space: "SearchSpace | str | None" = None) -> None:
        """One-time work before the first spec of a search space (or of a backbone, by name):
        load and check data, train a parent or a supernet; idempotent."""

    def produces(self) -> tuple[str, ...]:
        """Names (from the metric registry) of every metric `measure_cost` and `score` return."""

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        """Seed-independent metrics of `spec`."""

    def score(self, spec: ArchSpec, seed: int, fidelity: float = 1.0) -> dict[str, float]:
        """Seed-dependent metrics of `spec` trained under `seed` ({} when the evaluator trains
        nothing), with a fraction `fidelity` of the training budget (multi-fidelity search)."""

    def fingerprint(self) -> str:
        """Short digest of every setting that shapes the numbers: results with another
        fingerprint are not comparable."""

    def context(self) -> dict[str, Any]:
        """Where the numbers were measured (device, threads, torch version, ...), stored with them."""

    def provenance(self) -> dict[str, Any]:
        """What shaped the numbers beyond the settings (after `prepare`): data folder, validation
        protocol and identities; exported with an architecture."""

    def predictors(self) -> dict[str, Any]:
        """Metrics it can predict for any spec without measuring (a device profile's latency), as
        metric -> function(spec); a structure-aware sampler scores candidates with them."""


@runtime_checkable
class LatencySource(Protocol):
    def measure(self, spec: ArchSpec) -> dict[str, float]:
        """`latency_ratio` (to the plain backbone) and whatever else the source knows."""

    def produces(self) -> tuple[str, ...]: ...

    def predictors(self) -> dict[str, Any]: ...

    def fingerprint(self) -> str: ...

    def context(self) -> dict[str, Any]: ...


def digest(settings: Any) -> str:
    """Stable 12-character digest of JSON-able settings."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
