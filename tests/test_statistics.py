"""The metric formulas of tf_t2i/evaluation/statistics.py against answers known by hand."""
import itertools

import numpy as np
import pytest

from tf_t2i.evaluation import statistics


def test_frechet_distance_of_a_set_with_itself_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(0)
    # 40 samples in 64 dimensions: the covariance has rank 39, where sqrtm-based FID needs an
    # offset to stay real.
    features = rng.normal(size=(40, 64)) @ rng.normal(size=(64, 64))
    assert statistics.features_frechet_distance(features, features) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("sizes", [(30, 45), (200, 150)])
def test_the_sample_space_and_covariance_routes_agree(sizes):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(sizes[0], 64)) @ rng.normal(size=(64, 64))
    b = rng.normal(size=(sizes[1], 64)) + 0.5
    by_covariance = statistics.frechet_distance(*statistics.feature_statistics(a),
                                                *statistics.feature_statistics(b))
    assert statistics.features_frechet_distance(a, b) == pytest.approx(by_covariance, rel=1e-7)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    # Diagonal covariances commute: FD = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 2.0])
    expected = 1 + 0 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2 + (0 - np.sqrt(2)) ** 2
    assert statistics.frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == \
        pytest.approx(expected)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 8))
    shift = np.arange(8) / 4.0
    assert statistics.features_frechet_distance(features, features + shift) == \
        pytest.approx(np.sum(shift ** 2), rel=1e-6)


def test_frechet_distance_of_non_commuting_covariances_matches_the_matrix_square_root():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    cov_a, cov_b = a @ a.T, b @ b.T
    # tr sqrt(A B) by eigenvalues of the (non-symmetric) product: what scipy's sqrtm would give.
    trace_root = np.sum(np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real))
    expected = np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    assert statistics.frechet_distance(np.zeros(4), cov_a, np.zeros(4), cov_b) == \
        pytest.approx(expected, rel=1e-8)


def test_roc_auc_counts_pairs_and_ties_like_mann_whitney():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.2])
    labels = np.array([0, 0, 1, 1, 1, 0], bool)
    wins = sum((p > n) + 0.5 * (p == n) for p, n in
               itertools.product(scores[labels], scores[~labels]))
    assert statistics.roc_auc(scores, labels) == pytest.approx(wins / 9)
    assert statistics.roc_auc(np.full(6, 3.0), labels) == 0.5
    assert statistics.roc_auc(labels.astype(float), labels) == 1.0
    assert statistics.roc_auc(-labels.astype(float), labels) == 0.0
    assert np.isnan(statistics.roc_auc(scores, np.ones(6, bool)))


def test_the_roc_curve_encloses_the_auc():
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounded: many ties
    fpr, tpr = statistics.roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    area = np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(statistics.roc_auc(scores, labels))


def test_r_precision_of_matching_embeddings_is_one_and_of_shuffled_ones_is_chance():
    rng = np.random.default_rng(4)
    captions = rng.normal(size=(1000, 16))
    images = captions + 0.1 * rng.normal(size=captions.shape)
    mean, std, candidates = statistics.r_precision(images, captions, np.arange(1000))
    assert (mean, candidates) == (1.0, 100)
    shuffled = captions[rng.permutation(1000)]
    mean, std, _ = statistics.r_precision(images, shuffled, np.arange(1000), repeats=10)
    # 10 000 draws of a 1-in-100 event: 0.01 +- 0.001 (standard error).
    assert mean == pytest.approx(0.01, abs=0.004)
    assert std > 0


def test_r_precision_never_uses_captions_of_the_same_owner_and_lowers_candidates():
    captions = np.eye(6)
    # Owners 0, 0, 1, 1, 2, 2: each image has 4 captions of other owners -> 5 candidates.
    mean, _, candidates = statistics.r_precision(captions, captions, [0, 0, 1, 1, 2, 2])
    assert (mean, candidates) == (1.0, 5)
    # A constant evaluator ties everything: the true caption never ranks first.
    assert statistics.r_precision(np.ones((6, 3)), np.ones((6, 3)), np.arange(6))[0] == 0.0


def test_mean_pairwise_distance_by_hand():
    images = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])
    # Pairs: (0, 1) 0.5, (0, 2) 1.0, (1, 2) 0.5.
    assert statistics.mean_pairwise_distance(images) == pytest.approx(2 / 3)
    same = np.full((5, 4, 4, 3), 200, np.uint8)
    assert statistics.mean_pairwise_distance(same) == 0.0
    assert statistics.mean_pairwise_distance(np.stack([same[0], same[0] * 0])) == \
        pytest.approx(200 / 255)


def test_high_frequency_energy_by_hand():
    flat = np.full((1, 4, 4, 3), 90, np.uint8)
    stripes = np.zeros((1, 4, 4, 1))
    stripes[:, :, 1::2] = 1.0  # columns 0 1 0 1: every horizontal step is 1, no vertical one
    checkerboard = np.indices((4, 4)).sum(axis=0)[None, :, :, None] % 2 * 255
    energy = statistics.high_frequency_energy(np.concatenate([flat, flat // 2]))
    np.testing.assert_array_equal(energy, [0.0, 0.0])
    assert statistics.high_frequency_energy(stripes)[0] == pytest.approx(1.0)
    assert statistics.high_frequency_energy(checkerboard.astype(np.uint8))[0] == pytest.approx(2)
    with pytest.raises(ValueError, match="high_frequency_energy"):
        statistics.high_frequency_energy(np.zeros((2, 1, 4, 3)))


def test_noise_like_share_counts_images_rougher_than_the_real_ones():
    rng = np.random.default_rng(0)
    # Vertical ramps of different contrast: energy 0.5 / 7 ... 1 / 7, far below noise's ~0.67.
    ramp = np.broadcast_to(np.linspace(0, 1, 8)[:, None, None], (8, 8, 1))
    real = ramp[None] * rng.uniform(0.5, 1.0, size=(20, 1, 1, 1))
    noise = rng.uniform(size=(3, 8, 8, 1))
    assert statistics.noise_like_share(real[:5], real) == 0.0
    assert statistics.noise_like_share(np.concatenate([real[:9], noise]), real) == 0.25


def test_inception_score_of_uniform_and_of_confident_distinct_predictions():
    assert statistics.inception_score(np.full((20, 10), 0.1), splits=2)[0] == pytest.approx(1.0)
    assert statistics.inception_score(np.eye(10), splits=1)[0] == pytest.approx(10.0, rel=1e-6)
