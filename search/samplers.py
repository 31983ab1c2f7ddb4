"""Optuna samplers by config name, each with its typed config (one default per knob)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import optuna

from attnas.models.registry import Registry
from attnas.search.frontier import FrontierContext, make_frontier

log = logging.getLogger("attnas.search")


@dataclass
class SamplerConfig:
    name: str = "nsga2"


@dataclass
class NSGA2Config(SamplerConfig):
    name: str = "nsga2"
    population_size: int = 20
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9


@dataclass
class TPEConfig(SamplerConfig):
    name: str = "tpe"
    multivariate: bool = True  # independent TPE re-proposes far more duplicates on categorical spaces
    group: bool = True
    n_startup_trials: int = 10
    constant_liar: bool = True


@dataclass
class GPConfig(SamplerConfig):
    name: str = "gp"
    n_startup_trials: int = 10


@dataclass
class RandomConfig(SamplerConfig):
    name: str = "random"


@dataclass
class BruteForceConfig(SamplerConfig):
    name: str = "bruteforce"  # exhaustive; for small spaces (the study stops when every spec was tried)


@dataclass
class FrontierConfig(SamplerConfig):
    """attnas's own (search/frontier/): models of every objective over block, position and pair
    features whose spreads the study fits, seed effects apart, known costs from a device profile,
    hypervolume improvement averaged over joint posterior draws."""

    name: str = "frontier"
    n_startup_trials: int = 10
    candidates: int = 1500  # specs scored per proposal
    draws: int = 4  # posterior draws a proposal's expected gain averages over (1: Thompson sampling)
    explore: float = 0.0  # share of proposals drawn at random from the candidates (measured: no gain; README, issue 23)


def _check_sampler(name: str, entry: tuple) -> None:
    schema, factory = entry
    if not (dataclasses.is_dataclass(schema) and issubclass(schema, SamplerConfig)) or not callable(factory):
        raise TypeError(f"sampler {name!r} must be registered as (SamplerConfig subclass, factory(config, seed, context))")
    if schema().name != name:
        raise ValueError(f"sampler {name!r}: {schema.__name__}.name defaults to {schema().name!r}, not {name!r}")


#: sampler name -> (config class, factory(config, seed, context)); the context (search space,
#: objectives, costs a profile predicts) is for samplers that use the problem's structure
SAMPLERS: Registry[tuple[type[SamplerConfig], Callable[..., optuna.samplers.BaseSampler]]] = Registry("sampler", {
    "nsga2": (NSGA2Config, lambda c, seed, context=None: optuna.samplers.NSGAIISampler(
        population_size=c.population_size, mutation_prob=c.mutation_prob, crossover_prob=c.crossover_prob, seed=seed)),
    "tpe": (TPEConfig, lambda c, seed, context=None: optuna.samplers.TPESampler(
        multivariate=c.multivariate, group=c.group, n_startup_trials=c.n_startup_trials, constant_liar=c.constant_liar,
        seed=seed)),
    "gp": (GPConfig, lambda c, seed, context=None: optuna.samplers.GPSampler(n_startup_trials=c.n_startup_trials, seed=seed)),
    "random": (RandomConfig, lambda c, seed, context=None: optuna.samplers.RandomSampler(seed=seed)),
    "bruteforce": (BruteForceConfig, lambda c, seed, context=None: optuna.samplers.BruteForceSampler(seed=seed)),
    "frontier": (FrontierConfig, lambda c, seed, context=None: make_frontier(c, seed, context)),
}, check=_check_sampler)


def sized_for(cfg: SamplerConfig, n_trials: int | None) -> SamplerConfig:
    """The settings a budget of `n_trials` can use: NSGA-II's population and the model-based
    samplers' random start-up are at most a fifth of the budget (at least 4 and 2), so a short
    study leaves its random first generation and its model has trials to learn from."""
    if n_trials is None:
        return cfg
    changes = {}
    if hasattr(cfg, "population_size") and cfg.population_size > max(n_trials // 5, 4):
        changes["population_size"] = max(n_trials // 5, 4)
    if hasattr(cfg, "n_startup_trials") and cfg.n_startup_trials > max(n_trials // 5, 2):
        changes["n_startup_trials"] = max(n_trials // 5, 2)
    if changes:
        log.info("sampler %s sized for %d trials: %s", cfg.name, n_trials, ", ".join(f"{k}={v}" for k, v in changes.items()))
    return dataclasses.replace(cfg, **changes)


def make_sampler(cfg: SamplerConfig, seed: int | None, n_trials: int | None = None,
                 context: FrontierContext | None = None) -> optuna.samplers.BaseSampler:
    config_class, factory = SAMPLERS.get_entry(cfg.name)
    if not isinstance(cfg, config_class):  # a plain SamplerConfig naming a sampler: its defaults
        cfg = config_class()
    return factory(sized_for(cfg, n_trials), seed, context)
