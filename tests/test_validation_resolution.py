"""Validation sets that can rank: a split's queries, gallery, chance level and bootstrap SD of mAP
are measured and counted into the evidence; a split too small to rank is grown when the data
allow, warned about loudly when not, and voids the verdict. Tested on tiny single-shot folders
(PRID- and GRID-like: one image per person and camera) such as issue 20 found: 4 queries against
4 gallery images."""

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnas.evaluators import ReIDEvaluator, budget
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.base import ImageRecord
from attnas.evaluators.reid.resolution import MIN_RANKING_QUERIES, Resolution, bootstrap_sd, expected_random_ap, structure
from attnas.evaluators.reid.validation import carve_validation
from attnas.search.analysis.evidence import verdict
from attnas.search.analysis.report import write_report
from attnas.search.analysis.view import view
from tests.test_analysis import HAND, make_study


def single_shot(ids: int) -> list[ImageRecord]:
    """One image per person in each of two cameras, as PRID2011 and GRID are."""
    return [ImageRecord(f"{pid:04d}_c{cam}.png", pid, cam) for pid in range(1, ids + 1) for cam in (0, 1)]


def test_the_chance_level_is_the_exact_mean_ap_of_a_random_ranking():
    for n, r in [(1, 1), (4, 1), (5, 2), (6, 3)]:
        aps = []
        for ranking in itertools.permutations([True] * r + [False] * (n - r)):
            hits = np.cumsum(ranking)
            aps.append(np.mean([hits[i] / (i + 1) for i in range(n) if ranking[i]]))
        assert expected_random_ap(n, r) == pytest.approx(np.mean(aps))
    assert bootstrap_sd(np.array([1.0, 0.5, 1.0, 0.25])) == pytest.approx(np.std([1.0, 0.5, 1.0, 0.25]) / 2)


def test_four_single_shot_queries_against_four_gallery_images_cannot_rank():
    split = carve_validation(single_shot(12), 4, seed=0)
    resolution = split.resolution
    assert (resolution.queries, resolution.gallery, resolution.matches_per_query) == (4, 4, 1)
    assert resolution.chance_map == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)  # 0.52: a random ranking's mAP
    assert not resolution.can_rank
    assert resolution.shortfall().startswith("4 queries against 4 gallery images, chance mAP 0.52; ranking needs at least 20")
    assert "chance mAP 0.521" in split.summary()


def test_the_carve_out_grows_to_the_queries_a_budget_asks_for_but_keeps_half_the_ids_for_training():
    grown = carve_validation(single_shot(60), 4, seed=0, min_queries=25)
    assert len(grown.ids) == 25 and grown.resolution.queries == 25 and grown.resolution.can_rank
    assert "grown from 4 to reach enough queries" in grown.summary()
    assert set(carve_validation(single_shot(60), 4, seed=0).ids) <= set(grown.ids)  # the first draw is kept
    capped = carve_validation(single_shot(12), 4, seed=0, min_queries=50)
    assert len(capped.ids) == 6 and len({r.pid for r in capped.train}) == 6  # half of 12: the rest must train
    with pytest.raises(ValueError, match="min_queries must be >= 0"):
        carve_validation(single_shot(12), 4, min_queries=-1)


def _folder(root: Path, ids: int) -> Path:
    """A GRID-like folder in the Market layout: one image per person and camera."""
    rng = np.random.default_rng(0)
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
    for pid in range(1, ids + 1):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        for cam in (1, 2):
            Image.new("RGB", (32, 64), colour).save(root / "bounding_box_train" / f"{pid:04d}_c{cam}s1_000001_00.jpg")
    for pid in (100, 101):
        Image.new("RGB", (32, 64), (pid, 0, 0)).save(root / "query" / f"{pid:04d}_c1s1_000001_00.jpg")
        Image.new("RGB", (32, 64), (pid, 0, 0)).save(root / "bounding_box_test" / f"{pid:04d}_c2s1_000001_00.jpg")
    return root


def test_the_evaluator_measures_its_split_and_warns_loudly_when_it_cannot_rank(tmp_path, caplog):
    data = load_dataset("folder", _folder(tmp_path / "grid", 12))
    evaluator = ReIDEvaluator(data, budget("tiny"), num_val_ids=4, latency=None)
    with caplog.at_level(logging.WARNING, logger="attnas.evaluators"):
        evaluator.prepare("resnet18")
    assert "THE VALIDATION SPLIT CANNOT RANK ARCHITECTURES: 4 queries against 4 gallery images" in caplog.text
    recorded = evaluator.provenance()["validation"]["resolution"]
    assert recorded["queries"] == 4 and recorded["reference"] == "the plain resnet18 before training"
    # one colour per person in both cameras: even an untrained network ranks every query first, as on GRID
    assert recorded["reference_map"] == 1.0 and recorded["bootstrap_sd"] == 0.0
    assert "the plain resnet18 before training already scores mAP 1.00, the ceiling" in caplog.text
    grown = ReIDEvaluator(data, budget("tiny"), num_val_ids=4, latency=None, min_val_queries=6)
    grown.prepare()
    assert len(grown.val_query) == 6 and grown.fingerprint() != evaluator.fingerprint()


def test_a_split_that_cannot_rank_voids_the_verdict_and_the_dashboard_says_why(tmp_path):
    study = make_study(HAND)
    tiny = structure(*[[r for r in records if r.camid == cam] for records in [single_shot(4)] for cam in (0, 1)])
    study.set_user_attr("validation", {"protocol": "cross_camera", "queries": 4, "gallery": 4,
                                       "resolution": Resolution(**{**tiny.to_dict(), "bootstrap_sd": 0.13}).to_dict()})
    judged = verdict(view(study))
    assert judged.significant == [] and not judged.any_beats  # HAND's real gains are not evidence on 4 queries
    assert "the validation split cannot rank architectures (4 queries against 4 gallery images" in judged.sentence()
    evidence = write_report(study, tmp_path)["html"].read_text().split('id="evidence">')[1].split("</ul>")[0]
    assert "validation: cross_camera protocol, carved from the training ids: 4 queries (4 ids) against 4 gallery images" in evidence
    assert "chance mAP 52.1 points" in evidence and "WARNING: this validation split cannot rank" in evidence
    assert MIN_RANKING_QUERIES == 20
