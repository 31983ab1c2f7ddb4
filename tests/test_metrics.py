import numpy as np
import pytest

from attnas.evaluators.reid.distance import compute_distance_matrix
from attnas.evaluators.reid.metrics import evaluate_rank, rank_metrics, rank_metrics_reference
from attnas.evaluators.reid.reranking import re_rank


def hand_case():
    # query: person 1 seen by camera 0
    # gallery, by distance: p1/c0 (same camera: removed), junk, p2/c1, p1/c1, p3/c1, p1/c2
    dist = np.array([[0.0, 0.05, 0.1, 0.2, 0.3, 0.4]])
    g_pids = np.array([1, -1, 2, 1, 3, 1])
    g_cams = np.array([0, 1, 1, 1, 1, 2])
    return dist, np.array([1]), g_pids, np.array([0]), g_cams


def test_hand_computed_case_removes_same_camera_and_junk():
    result = rank_metrics(*hand_case(), max_rank=4)
    # kept ranking: p2, p1, p3, p1 -> matches at ranks 2 and 4
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result.cmc.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert result.mINP == pytest.approx(2 / 4)
    cmc, mAP = evaluate_rank(*hand_case(), max_rank=4)
    assert mAP == result.mAP and cmc.tolist() == result.cmc.tolist()


def test_queries_without_a_valid_match_are_skipped():
    dist, q_pids, g_pids, q_cams, g_cams = hand_case()
    dist = np.vstack([dist, dist])
    q_pids, q_cams = np.array([1, 3]), np.array([0, 1])  # person 3 only seen by camera 1 in the gallery
    result = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    assert result.num_valid_queries == 1 and result.mAP == pytest.approx(0.5)


def test_perfect_ranking_scores_one_and_distractors_are_never_matches():
    dist = np.array([[0.1, 0.0, 0.5], [0.2, 0.9, 0.0]])  # distractor (id 0) ranked first for query 0
    result = rank_metrics(dist, np.array([1, 2]), np.array([1, 0, 2]), np.array([0, 0]), np.array([1, 1, 1]))
    assert result.rank(1) == 0.5 and result.mAP == pytest.approx((0.5 + 1.0) / 2)


def test_gallery_order_does_not_matter_and_ties_are_broken_by_gallery_order():
    rng = np.random.default_rng(0)
    dist = rng.random((20, 60))
    q_pids, g_pids = rng.integers(0, 8, 20), rng.integers(0, 8, 60)
    q_cams, g_cams = rng.integers(0, 3, 20), rng.integers(0, 3, 60)
    perm = rng.permutation(60)
    a = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    b = rank_metrics(dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm])
    assert a.mAP == pytest.approx(b.mAP) and np.allclose(a.cmc, b.cmc)
    # a tie between a match and a non-match: the one earlier in the gallery ranks first
    tie = np.array([[0.5, 0.5]])
    first_match = rank_metrics(tie, np.array([1]), np.array([1, 2]), np.array([0]), np.array([1, 1]))
    first_other = rank_metrics(tie, np.array([1]), np.array([2, 1]), np.array([0]), np.array([1, 1]))
    assert first_match.mAP == 1.0 and first_other.mAP == 0.5
    assert rank_metrics(tie, np.array([1]), np.array([2, 1]), np.array([0]), np.array([1, 1])).mAP == 0.5


@pytest.mark.parametrize("block_size", [1, 7, 256])
def test_vectorised_metrics_equal_the_per_query_reference(block_size):
    rng = np.random.default_rng(1)
    dist = np.round(rng.random((50, 300)), 2)  # rounding creates ties
    args = (dist, rng.integers(-1, 20, 50).clip(1), rng.integers(-1, 20, 300), rng.integers(0, 4, 50), rng.integers(0, 4, 300))
    fast, slow = rank_metrics(*args, block_size=block_size), rank_metrics_reference(*args)
    assert fast.num_valid_queries == slow.num_valid_queries
    assert fast.mAP == pytest.approx(slow.mAP) and fast.mINP == pytest.approx(slow.mINP)
    np.testing.assert_allclose(fast.cmc, slow.cmc)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda a: (a[0], a[1], a[2][:-1], a[3], a[4]), "g_pids has 5 entries but distmat has 6 columns"),
        (lambda a: (a[0], np.array([1, 2]), a[2], a[3], a[4]), "q_pids has 2 entries but distmat has 1 rows"),
        (lambda a: (np.zeros((0, 6)), a[1][:0], a[2], a[3][:0], a[4]), "empty query set"),
        (lambda a: (np.zeros((1, 0)), a[1], a[2][:0], a[3], a[4][:0]), "empty gallery"),
        (lambda a: (np.full((1, 6), np.nan), *a[1:]), "NaN"),
        (lambda a: (a[0], np.array([7]), *a[2:]), "no query has a valid match"),
    ],
)
def test_bad_input_is_explained(change, fragment):
    with pytest.raises(ValueError, match=fragment):
        rank_metrics(*change(hand_case()))


def test_distances_match_a_direct_computation_in_any_block_size():
    rng = np.random.default_rng(2)
    q, g = rng.normal(size=(13, 8)).astype(np.float32), rng.normal(size=(21, 8)).astype(np.float32)
    direct = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(compute_distance_matrix(q, g, block_size=4), direct, rtol=1e-4, atol=1e-4)
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(compute_distance_matrix(q, g, "cosine", block_size=5), 1 - qn @ gn.T, atol=1e-5)


def test_distance_bad_input_is_explained():
    with pytest.raises(ValueError, match="query features contains NaN"):
        compute_distance_matrix(np.full((2, 3), np.nan), np.ones((2, 3)))
    with pytest.raises(ValueError, match="3-d but gallery features are 4-d"):
        compute_distance_matrix(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown distance metric 'manhattan'"):
        compute_distance_matrix(np.ones((2, 3)), np.ones((2, 3)), metric="manhattan")


def test_re_ranking_matches_the_authors_algorithm_on_a_known_answer():
    # expected values: the authors' public re_ranking (Zhong et al., k-reciprocal encoding, as
    # modified by H. Huang to take distance matrices) run on these points; it takes euclidean
    # distances and squares them, ours takes the squared distances directly
    q = np.array([[0.0, 0.1], [3.1, 1.0], [1.2, 4.0]])
    g = np.array([[0.5, 0.0], [0.0, 1.3], [3.0, 0.2], [2.5, 1.6], [1.1, 3.0], [0.3, 4.2], [2.0, 2.4], [4.4, 4.0]])
    expected = np.array([
        [0.002256, 0.15013, 0.694434, 0.733403, 0.783483, 0.846659, 0.746173, 1.0],
        [0.745006, 0.822282, 0.010785, 0.23156, 0.757773, 0.958691, 0.439757, 0.752002],
        [0.979808, 0.848133, 0.958691, 0.75176, 0.236105, 0.014423, 0.589237, 0.7499],
    ])
    q_g, q_q, g_g = (compute_distance_matrix(a, b) for a, b in ((q, g), (q, q), (g, g)))
    np.testing.assert_allclose(re_rank(q_g, q_q, g_g, k1=4, k2=2), expected, atol=2e-6)


def test_re_ranking_raises_map_when_an_outlier_view_of_another_person_is_nearest():
    # eight people on a line, six tight gallery images each; one image of person i+1 is an outlier
    # view lying between i and i+1, and each query of person i sits beside that outlier: plain
    # distances rank the impostor first, reciprocal neighbourhoods do not
    rng = np.random.default_rng(0)
    g = np.vstack([np.array([4.0 * i, 0.0]) + rng.normal(scale=0.25, size=(6, 2)) for i in range(8)])
    g_pids = np.repeat(np.arange(8), 6)
    for i in range(7):
        g[(i + 1) * 6] = [4.0 * i + 2.1, 0.0]
    q = np.array([[4.0 * i + 1.6, 0.0] for i in range(7)])
    q_pids, q_cams, g_cams = np.arange(7), np.zeros(7, int), np.ones(len(g), int)
    q_g, q_q, g_g = (compute_distance_matrix(a, b) for a, b in ((q, g), (q, q), (g, g)))
    before = rank_metrics(q_g, q_pids, g_pids, q_cams, g_cams)
    after = rank_metrics(re_rank(q_g, q_q, g_g, k1=8, k2=3), q_pids, g_pids, q_cams, g_cams)
    assert before.rank(1) == 0.0 and before.mAP < 0.7  # the impostor is always nearest
    assert after.mAP > before.mAP + 0.05 and after.rank(1) > 0
    assert re_rank(q_g, q_q, g_g, k1=8, k2=3).shape == (7, 48)
    with pytest.raises(ValueError, match="k2 <= k1"):
        re_rank(q_g, q_q, g_g, k1=2, k2=3)
