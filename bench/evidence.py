"""Verdicts under selection: simulated studies with the measured noise structure, the evidence
method before issue 20 ("old") beside the current one ("new").

Each simulated study is shaped like attnas-search's: the plain ResNet-50 and the paper's three
references under seeds 0-2, N other candidates (random 1-3 block specs) under seed 0. A run's mAP
is 30 points + the architecture's effect + a seed effect shared by every architecture trained
under that seed (SD 1.26 points) + a residual (SD 0.89 points): `bench/noise.py`'s seed_sd and
paired_sd (the two-way residual SD) on synthetic data, whose pooled SD is 1.52. Latency is additive
per block and stage (every placement costs something) with a timing SE of 0.5%. Null studies: no
architecture changes mAP. Planted studies: one candidate gains g residual SDs (g = 1, 2, 3).

Per case, one line: the share of null studies claiming a winner (old: any candidate over 2 SE;
new: the family-wise max-t test over every candidate), the share stating any false mAP rule
(every mAP effect is zero), power (old: the planted candidate called significant; new: it is
confirmed on `--confirm-seeds` fresh seeds after being among the `--confirm-count` best of the
search, Holm over those), and the training runs spent. 95% Wilson intervals; seeds stated.
Searches with racing (`evaluator.racing`) run the loop's own policy on the simulated runs.

    python -m bench.evidence                               # all sizes, both methods (minutes)
    python -m bench.evidence --sizes 8,50 --studies 100    # quicker
    python -m bench.evidence --real bench/out/noise.jsonl  # also resample measured runs (bench/noise.py)
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from attnas.search.analysis.confirmation import decide
from attnas.search.analysis.evidence import verdict
from attnas.search.analysis.rules import discoveries, fit_effects
from attnas.search.analysis.view import rule_table, view
from attnas.search.noise import pooled_sd
from attnas.search.racing import next_race
from attnas.space import ArchSpec, SearchSpace
from bench import legacy_evidence

SEED_SD, RESIDUAL_SD, BASE = 1.26, 0.89, 30.0  # mAP points (bench/noise.py, synthetic, parent + finetune)
LATENCY_SE = 0.005
REFERENCES = ("resnet50", "resnet50:layer3.5=se", "resnet50:layer3.5=cnl", "resnet50:layer2.3=cnl,layer3.5=cnl,layer4.2=cnl")
COST = {"se": 0.01, "eca": 0.005, "gc": 0.02, "cbam": 0.03, "cnl": 0.02, "nl": 0.06}  # latency per block, x the stage factor
STAGE = {"layer1": 6.0, "layer2": 3.0, "layer3": 1.5, "layer4": 1.0}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def candidates(n: int, seed: int) -> list[str]:
    """`n` distinct random 1-3 block ResNet-50 specs, none of them a reference."""
    space = SearchSpace("resnet50", "all", tuple(COST), max_blocks=3)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: list[str] = []
    while len(found) < n:
        spec = str(space.sample(sampler.ask()))
        if spec not in found and spec not in REFERENCES:
            found.append(spec)
    return found


def latency(spec: str) -> float:
    parsed = ArchSpec.parse(spec)
    return 1.0 + sum(COST[c.block] * STAGE[stage] for c, stage in zip(parsed.blocks.values(), parsed.stages().values()))


@dataclass
class World:
    """The truth of one simulated study and its runs: every (spec, seed) drawn once."""

    rng: np.random.Generator
    effects: dict[str, float] = field(default_factory=dict)  # mAP points over the plain backbone
    seed_effects: dict[int, float] = field(default_factory=dict)
    runs: int = 0

    def score(self, spec: str, seed: int) -> float:
        if seed not in self.seed_effects:
            self.seed_effects[seed] = self.rng.normal(0, SEED_SD)
        self.runs += 1
        return (BASE + self.effects.get(spec, 0.0) + self.seed_effects[seed] + self.rng.normal(0, RESIDUAL_SD)) / 100


def record(world: World, spec: str, seeds: list[int], runs: dict[str, dict]) -> None:
    entry = runs.setdefault(spec, {"seeds": [], "mAP": []})
    for seed in seeds:
        if seed not in entry["seeds"]:
            entry["seeds"].append(seed)
            entry["mAP"].append(world.score(spec, seed))


def search(world: World, specs: list[str], mode: str, budget: float = 1.5, max_seeds: int = 3) -> dict[str, dict]:
    """Per-seed runs of a study: references under 0-2; candidates under 0 (`single`), 0-2
    (`repeats3`), or 0 plus the racing policy's extra seeds (`racing`, `budget` runs per candidate)."""
    runs: dict[str, dict] = {}
    for spec in REFERENCES:
        record(world, spec, [0, 1, 2], runs)
    for spec in specs:
        record(world, spec, [0, 1, 2] if mode == "repeats3" else [0], runs)
        if mode == "racing":
            race(world, runs, specs[: specs.index(spec) + 1], budget, max_seeds)
    return runs


def race(world: World, runs: dict[str, dict], proposed: list[str], budget: float, max_seeds: int) -> None:
    """The loop's racing policy (`search.racing.next_race`) until nothing is undecided or the budget is spent."""
    while sum(len(runs[s]["seeds"]) for s in proposed) + 1 <= budget * len(proposed):
        names = list(runs)
        floor = pooled_sd([runs[s]["mAP"] for s in names])
        n = np.array([len(runs[s]["seeds"]) for s in names])
        means = np.array([[np.mean(runs[s]["mAP"]), latency(s)] for s in names])
        ses = np.column_stack([floor.sd / np.sqrt(n), np.full(len(names), LATENCY_SE)])
        seeds = np.where([s in REFERENCES for s in names], max_seeds, n)
        chosen = next_race(means, ses, ["maximize", "minimize"], seeds, max_seeds, draws=200, seed=int(n.sum()))
        if chosen is None:
            return
        record(world, names[chosen], [len(runs[names[chosen]]["seeds"])], runs)


def study_of(runs: dict[str, dict], rng: np.random.Generator) -> optuna.Study:
    """An in-memory study holding `runs` as attnas-search stores them."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["mAP", "latency_ratio"])
    trials = []
    for spec, entry in runs.items():
        mean = float(np.mean(entry["mAP"]))
        lat = latency(spec) + rng.normal(0, LATENCY_SE)
        trials.append(create_trial(
            values=[mean, lat], params={}, distributions={},
            user_attrs={"spec": spec, "per_seed": entry, "reference": spec in REFERENCES,
                        "metrics": {"mAP": mean, "latency_ratio": lat, "latency_ratio_se": LATENCY_SE}},
            system_attrs={"constraints": []}))
    study.add_trials(trials)
    return study


def new_method(study: optuna.Study, world: World, count: int, seeds: int, rules: bool) -> dict:
    """The current verdict, FDR-controlled rules, and confirmation of the `count` best on fresh seeds."""
    v = view(study)
    judged = verdict(v)
    found = []
    if rules:
        table, dof = rule_table(v)
        effects = fit_effects(table, v.objectives, "stage", dof=dof)
        effects = discoveries(effects + fit_effects(table, v.objectives, "position", dof=dof))
        found = [e for e in effects if e.finding and e.objective == "mAP"]
    table = v.architectures[(v.architectures["num_blocks"] > 0) & v.architectures["gain"].notna()]
    picks = list(table.sort_values("gain", ascending=False)["spec"].head(count))
    fresh = list(range(1000, 1000 + seeds))
    confirm_runs = {}
    for spec in ["resnet50", *picks]:
        record(world, spec, fresh, confirm_runs)
    decided = decide({"objective": "mAP", "plain": "resnet50", "seeds": fresh, "runs": confirm_runs,
                      "picks": [{"spec": s} for s in picks]})
    return {"claims": judged.any_beats, "significant": judged.significant, "false_rule": bool(found),
            "confirmed": decided.confirmed, "picks": picks, "confirm_runs": seeds * (len(picks) + 1)}


def old_method(study: optuna.Study, rules: bool) -> dict:
    v = view(study)
    chosen = legacy_evidence.significant(v.architectures, v.objectives, v.noise_floor)
    found = legacy_evidence.findings(v.architectures, v.objectives, v.noise_floor) if rules else []
    found += legacy_evidence.findings(v.architectures, v.objectives, v.noise_floor, "position") if rules else []
    return {"claims": bool(chosen), "significant": chosen, "false_rule": any(name == "mAP" for name, _, _ in found)}


def wilson(hits: int, n: int) -> str:
    if n == 0:
        return "n/a"
    p, z = hits / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:.3f} [{max(centre - half, 0):.3f},{min(centre + half, 1):.3f}]"


class Resampled(World):
    """A null world drawn from measured runs (bench/noise.py's JSON lines): a seed effect drawn from
    the fitted seed effects, a residual from the fitted residuals (scaled up for the degrees of
    freedom the fit used), the mean of all runs as every architecture's truth."""

    def __init__(self, rng: np.random.Generator, path: str) -> None:
        super().__init__(rng)
        import json

        entries = [json.loads(line) for line in open(path)]
        specs, seeds = sorted({e["spec"] for e in entries}), sorted({e["seed"] for e in entries})
        cells = {(e["spec"], e["seed"]): 100 * e["mAP"] for e in entries}
        table = np.array([[cells.get((s, k), np.nan) for k in seeds] for s in specs])
        table = table[~np.isnan(table).any(axis=1)]
        if len(table) < 2 or table.shape[1] < 2:
            raise SystemExit(f"{path} needs 2+ specs each measured under the same 2+ seeds")
        effects = table.mean(axis=0) - table.mean()
        residuals = table - table.mean(axis=1, keepdims=True) - effects[None]
        scale = np.sqrt(table.size / ((table.shape[0] - 1) * (table.shape[1] - 1)))
        self.measured = (effects, residuals.ravel() * scale, float(table.mean()))

    def score(self, spec: str, seed: int) -> float:
        effects, residuals, mean = self.measured
        if seed not in self.seed_effects:
            self.seed_effects[seed] = float(self.rng.choice(effects)) * np.sqrt(len(effects) / max(len(effects) - 1, 1))
        self.runs += 1
        return (mean + self.effects.get(spec, 0.0) + self.seed_effects[seed] + float(self.rng.choice(residuals))) / 100


def run_case(n: int, studies: int, gain: float | None, mode: str, args, rules: bool, world_of=World) -> dict:
    """`studies` simulated studies of `n` candidates (a planted `gain` in residual SDs, or null)."""
    tally: dict[str, float] = {}
    for index in range(studies):
        rng = np.random.default_rng([args.seed, n, index, int(10 * (gain or 0))])
        world = world_of(rng) if world_of is World else world_of(rng, args.real)
        specs = candidates(n, int(rng.integers(2**31)))
        planted = specs[int(rng.integers(n))] if gain else None
        if planted:
            world.effects[planted] = gain * RESIDUAL_SD
        study = study_of(search(world, specs, mode, args.racing_budget), rng)
        search_runs = world.runs
        new = new_method(study, world, args.confirm_count, args.confirm_seeds, rules)
        old = old_method(study, rules) if mode == "single" else {"claims": False, "significant": [], "false_rule": False}
        v = view(study)
        decided = ((v.architectures["p_front"] <= 0.1) | (v.architectures["p_front"] >= 0.9)).mean()
        for key, value in (("old_claims", old["claims"]), ("old_false_rule", old["false_rule"]),
                           ("old_power", planted in old["significant"]), ("new_claims", new["claims"]),
                           ("new_false_rule", new["false_rule"]), ("new_confirmed_any", bool(new["confirmed"])),
                           ("new_search_power", planted in new["significant"]), ("new_power", planted in new["confirmed"]),
                           ("sent", planted in new["picks"]),
                           ("search_runs", search_runs), ("confirm_runs", new["confirm_runs"]), ("decided", decided)):
            tally[key] = tally.get(key, 0) + float(value)
    return tally


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,50,200,500")
    parser.add_argument("--studies", type=int, default=200, help="null studies per size (halved at 200, quartered at 500)")
    parser.add_argument("--power-studies", type=int, default=100, help="planted studies per gain and size (scaled likewise)")
    parser.add_argument("--racing-sizes", default="8,50,200", help="sizes at which racing and fixed repeats are compared")
    parser.add_argument("--confirm-count", type=int, default=1)
    parser.add_argument("--confirm-seeds", type=int, default=5)
    parser.add_argument("--racing-budget", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", default="bench/out/noise.jsonl", help="measured runs to resample (bench/noise.py)")
    args = parser.parse_args(argv)
    print(f"# noise: seed effect SD {SEED_SD}, residual SD {RESIDUAL_SD} mAP points; references under seeds 0-2, candidates "
          f"under 0; confirmation of the {args.confirm_count} best on {args.confirm_seeds} fresh seeds; base seed {args.seed}; "
          f"95% Wilson intervals", flush=True)
    for n in [int(x) for x in args.sizes.split(",")]:
        scale = 1 if n <= 50 else 2 if n <= 200 else 4
        started, count = time.perf_counter(), max(args.studies // scale, 10)
        t = run_case(n, count, None, "single", args, rules=True)
        print(f"case=null n={n} studies={count} seeds={args.seed}:[{n},0..{count - 1}] "
              f"claims_winner old={wilson(int(t['old_claims']), count)} new={wilson(int(t['new_claims']), count)} "
              f"false_rule old={wilson(int(t['old_false_rule']), count)} new={wilson(int(t['new_false_rule']), count)} "
              f"confirmed_false new={wilson(int(t['new_confirmed_any']), count)} runs_search={t['search_runs'] / count:.0f} "
              f"runs_confirm={t['confirm_runs'] / count:.0f} seconds_per_study={(time.perf_counter() - started) / count:.2f}",
              flush=True)
        for gain in (1.0, 2.0, 3.0):
            count = max(args.power_studies // scale, 10)
            t = run_case(n, count, gain, "single", args, rules=False)
            print(f"case=power n={n} gain={gain:g}sd studies={count} power old={wilson(int(t['old_power']), count)} "
                  f"new_search={wilson(int(t['new_search_power']), count)} new_confirmed={wilson(int(t['new_power']), count)} "
                  f"new_confirmed_when_picked={wilson(int(t['new_power']), int(t['sent']))} "
                  f"runs={(t['search_runs'] + t['confirm_runs']) / count:.0f}", flush=True)
        if str(n) in args.racing_sizes.split(","):
            count = max(args.power_studies // (2 * scale), 10)
            for mode in ("single", "racing", "repeats3"):
                t = run_case(n, count, 2.0, mode, args, rules=False)
                print(f"case=racing n={n} gain=2sd mode={mode} studies={count} power={wilson(int(t['new_power']), count)} "
                      f"picked={wilson(int(t['sent']), count)} "
                      f"runs_search={t['search_runs'] / count:.0f} runs_per_candidate={(t['search_runs'] / count - 12) / n:.2f} "
                      f"decided_share={t['decided'] / count:.2f}", flush=True)
    real(args)


def real(args) -> None:
    """The null case again, on measured runs resampled (when bench/noise.py's results exist)."""
    from pathlib import Path

    if not Path(args.real).exists():
        print(f"case=real skipped: {args.real} not found; measure it first: python -m bench.noise --dataset synthetic "
              f"--parent parent --budgets finetune (hours on 2 cores), then python -m bench.evidence --sizes 50", flush=True)
        return
    for n in [int(x) for x in args.sizes.split(",")]:
        count = max(args.studies // (1 if n <= 50 else 2 if n <= 200 else 4), 10)
        t = run_case(n, count, None, "single", args, rules=True, world_of=Resampled)
        print(f"case=real n={n} studies={count} claims_winner old={wilson(int(t['old_claims']), count)} "
              f"new={wilson(int(t['new_claims']), count)} false_rule old={wilson(int(t['old_false_rule']), count)} "
              f"new={wilson(int(t['new_false_rule']), count)} confirmed_false new={wilson(int(t['new_confirmed_any']), count)}",
              flush=True)


if __name__ == "__main__":
    main()
