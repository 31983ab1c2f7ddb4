"""Verdicts that survive selection: seed-blocked gains, error control over every candidate and
every effect, checked on simulated studies with the noise structure `bench/noise.py` measured
(a seed effect shared by every architecture, SD 1.26 mAP points, and a residual, SD 0.89)."""

import numpy as np
import pytest

from attnas.search.analysis.evidence import verdict
from attnas.search.analysis.multiplicity import benjamini_hochberg, fcr_level, holm, max_t_adjusted
from attnas.search.analysis.view import analyse, view
from attnas.search.seed_blocks import fit_seed_blocked, gain_sentence
from bench.evidence import RESIDUAL_SD, World, candidates, search, study_of


def simulated(n: int, index: int, planted: float = 0.0):
    """A study shaped like attnas-search's: plain + 3 references under seeds 0-2, `n` candidates
    under seed 0; the first candidate gains `planted` residual SDs, nothing else changes mAP."""
    rng = np.random.default_rng([7, n, index])
    world = World(rng)
    specs = candidates(n, index)
    world.effects[specs[0]] = planted * RESIDUAL_SD
    return study_of(search(world, specs, "single"), rng), specs[0]


def test_seed_blocked_gains_equal_the_full_two_way_least_squares_fit():
    rng = np.random.default_rng(1)
    seeds = {"plain": [0, 1, 2], "a": [0, 1, 2], "b": [0, 1, 2], "c": [0], "d": [0], "e": [0, 3], "lost": [7]}
    records = {s: {"seeds": k, "mAP": list(rng.normal(size=len(k)))} for s, k in seeds.items()}
    fit = fit_seed_blocked(records, "mAP", "plain")
    names = list(records)
    runs = [(name, seed, y) for name in names for seed, y in zip(records[name]["seeds"], records[name]["mAP"])]
    all_seeds = sorted({seed for _, seed, _ in runs})
    X = np.zeros((len(runs), len(names) + len(all_seeds) - 1))
    for r, (name, seed, _) in enumerate(runs):
        X[r, names.index(name)] = 1
        if all_seeds.index(seed):
            X[r, len(names) + all_seeds.index(seed) - 1] = 1
    y = np.array([run[2] for run in runs])
    M = np.linalg.pinv(X.T @ X)
    beta = M @ X.T @ y
    dof = len(runs) - np.linalg.matrix_rank(X)
    sd = np.sqrt(((y - X @ beta) ** 2).sum() / dof)
    assert fit.floor.dof == dof and fit.floor.residual_sd == pytest.approx(sd)
    for name in ("a", "c", "e"):
        contrast = np.zeros(X.shape[1])
        contrast[names.index(name)], contrast[0] = 1, -1
        assert fit.gain[fit.index(name)] == pytest.approx(contrast @ beta)
        assert fit.se()[fit.index(name)] == pytest.approx(sd * np.sqrt(contrast @ M @ contrast))
    assert np.isnan(fit.gain[fit.index("lost")])  # its only seed is shared with nobody: no within-seed comparison


def test_a_lucky_seed_lifts_every_single_seed_candidate_only_in_the_pooled_comparison():
    # seed 0 is 3 points lucky for everyone; no architecture changes anything
    rng = np.random.default_rng(0)
    shared = {0: 3.0, 1: 0.0, 2: -3.0}
    records = {s: {"seeds": [0, 1, 2], "mAP": [30 + shared[k] + rng.normal(0, 0.1) for k in (0, 1, 2)]}
               for s in ("plain", "ref1", "ref2")}
    records |= {f"cand{i}": {"seeds": [0], "mAP": [30 + shared[0] + rng.normal(0, 0.1)]} for i in range(5)}
    fit = fit_seed_blocked(records, "mAP", "plain")
    pooled_gains = [records[f"cand{i}"]["mAP"][0] - np.mean(records["plain"]["mAP"]) for i in range(5)]
    assert min(pooled_gains) > 2.5  # seed 0's luck, credited to every candidate
    assert all(abs(fit.gain[fit.index(f"cand{i}")]) < 0.5 for i in range(5))  # within seed 0: nothing
    assert fit.floor.seed_sd == pytest.approx(3.0, rel=0.1) and fit.floor.residual_sd < 0.2


def test_the_trial_log_states_the_gain_within_shared_seeds():
    records = {"resnet50": {"seeds": [0, 1, 2], "mAP": [0.30, 0.32, 0.31]},
               "resnet50:layer3.5=se": {"seeds": [0, 1, 2], "mAP": [0.305, 0.326, 0.314]},
               "resnet50:layer4.0=eca": {"seeds": [0], "mAP": [0.31]}}
    fit = fit_seed_blocked(records, "mAP", "resnet50")
    text = gain_sentence(fit, "mAP", "resnet50:layer4.0=eca")
    assert text.startswith(", +1 mAP points (± 0.") and text.endswith(" over resnet50 within shared seeds")
    assert gain_sentence(fit, "mAP", "resnet50") == ""  # the baseline itself


def test_multiplicity_procedures_give_their_textbook_answers():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True, False, False, False, False, False, False]
    assert holm(np.array([0.01, 0.04, 0.03, 0.005]), 0.05).tolist() == [True, False, False, True]
    assert fcr_level(2, 20, 0.05) == pytest.approx(0.995)
    # independent statistics: the max-t adjusted p is Sidak's 1 - (1 - p)^m
    t = np.array([2.5, 1.0, 0.0, -1.0])
    adjusted = max_t_adjusted(t, np.zeros((4, 0)), np.ones(4), np.inf, draws=40000)
    from scipy.stats import norm

    assert adjusted[0] == pytest.approx(1 - norm.cdf(2.5) ** 4, abs=0.004)
    # perfectly correlated statistics: no multiplicity at all
    assert max_t_adjusted(np.array([2.0, 2.0]), np.ones((2, 1)), np.zeros(2), np.inf, draws=40000)[0] == pytest.approx(
        norm.sf(2.0), abs=0.004)


@pytest.mark.parametrize("n, studies", [(8, 40), (50, 40)])
def test_null_studies_rarely_claim_a_winner_and_control_the_family_wise_error(n, studies):
    claims = sum(verdict(view(simulated(n, i)[0])).any_beats for i in range(studies))
    assert claims <= 5, f"{claims} of {studies} null studies of {n} candidates claimed a winner"  # 5%: 2 expected


def test_null_studies_state_no_false_placement_rule_for_accuracy():
    false_rules = 0
    for i in range(12):
        a = analyse(simulated(50, i)[0])
        false_rules += any(f.startswith(tuple(f"{b} " for b in ("se", "eca", "gc", "cbam", "cnl", "nl"))) and "mAP points" in f
                           for f in a.rules.findings)
        assert any("latency" in f for f in a.rules.findings)  # the real latency effects are still found
    assert false_rules <= 2, f"{false_rules} of 12 null studies stated an mAP rule"


def test_a_planted_gain_is_found_and_the_verdict_says_how_many_were_tested():
    study, planted = simulated(20, 3, planted=8.0)  # 8 residual SDs: unmistakable even after 20 comparisons
    judged = verdict(view(study))
    assert judged.any_beats and planted in judged.significant and judged.tested == 23  # 20 candidates + 3 references
    assert judged.sentence().startswith(f"{len(judged.significant)} of 23 candidates beat resnet50 beyond seed noise")
    null = verdict(view(simulated(20, 3)[0]))
    assert "23 candidates tested within shared seeds, family-wise error 5% (max-t p " in null.sentence()


def test_analysing_a_500_candidate_study_takes_seconds():
    import time

    study, _ = simulated(500, 0)
    started = time.perf_counter()
    a = analyse(study)
    assert time.perf_counter() - started < 30  # measured 3 s on the shared 2-core machine; generous for load
    assert a.verdict.tested == 503 and len(a.view.architectures) == 504
