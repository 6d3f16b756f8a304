"""The numbers behind the quality metrics, as pure numpy functions (no models, no files).

Each function is checked in tests/test_statistics.py against a case whose answer is known by hand.
"""
from __future__ import annotations

import numpy as np


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) of features [N, D] (N >= 2), in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"feature_statistics needs features [N >= 2, D], got {features.shape}.")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """Frechet distance between Gaussians: |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    tr((C_a C_b)^(1/2)) is computed as sum sqrt(eig(A C_b A)) with A = C_a^(1/2) (both from
    `eigh`): A C_b A is symmetric positive semi-definite and has the eigenvalues of C_a C_b, so the
    trace stays real and exact for the rank-deficient covariances of fewer samples than feature
    dimensions (where `sqrtm(C_a C_b)` needs an offset and drops an imaginary part).

    Returns:
        float >= 0 (tiny negative rounding clipped to 0).

    Reference: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium", FID (section 3).
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    covariance_a = np.atleast_2d(np.asarray(covariance_a, np.float64))
    covariance_b = np.atleast_2d(np.asarray(covariance_b, np.float64))
    root_a = _psd_sqrt(covariance_a)
    product = root_a @ covariance_b @ root_a
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    trace_root = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
    distance = (np.sum(np.square(mean_a - mean_b)) + np.trace(covariance_a)
                + np.trace(covariance_b) - 2.0 * trace_root)
    return float(max(distance, 0.0))


def features_frechet_distance(features_a, features_b) -> float:
    """`frechet_distance` of the Gaussians fitted to two feature sets [N, D] and [M, D].

    With fewer samples than dimensions (e.g. 1000 Inception vectors of 2048-d) it works in the
    sample space instead of on D x D covariances: with A, B the centred features, the non-zero
    eigenvalues of C_a C_b are the squared singular values of A B^T / sqrt((N-1)(M-1)), so
    tr((C_a C_b)^(1/2)) is the nuclear norm of that N x M matrix (the same number, exactly, for
    a fraction of the cost of two D x D eigen-decompositions).
    """
    features_a = np.asarray(features_a, np.float64)
    features_b = np.asarray(features_b, np.float64)
    for features in (features_a, features_b):
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"FID needs features [N >= 2, D], got {features.shape}.")
    if max(len(features_a), len(features_b)) >= features_a.shape[1]:
        return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
    a = (features_a - features_a.mean(axis=0)) / np.sqrt(len(features_a) - 1)
    b = (features_b - features_b.mean(axis=0)) / np.sqrt(len(features_b) - 1)
    trace_root = np.sum(np.linalg.svd(a @ b.T, compute_uv=False))
    distance = (np.sum(np.square(features_a.mean(axis=0) - features_b.mean(axis=0)))
                + np.sum(a * a) + np.sum(b * b) - 2.0 * trace_root)
    return float(max(distance, 0.0))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def inception_score(probabilities, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` parts of exp(E_x KL(p(y|x) || p(y))).

    Args:
        probabilities: [N, classes] rows of class probabilities (each sums to 1).
        splits: parts the images are split into (Salimans et al. use 10).

    Reference: Salimans et al. 2016, "Improved Techniques for Training GANs", section 4.
    """
    probabilities = np.asarray(probabilities, np.float64)
    splits = max(1, min(splits, len(probabilities)))
    scores = []
    for part in np.array_split(probabilities, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def cosine_similarity(a, b) -> np.ndarray:
    """[N, M] cosine similarities of rows of a [N, D] and b [M, D] (zero rows give 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def r_precision(image_embeddings, caption_embeddings, owners, candidates: int = 100,
                repeats: int = 10, seed: int = 0) -> tuple[float, float, int]:
    """R-precision (R = 1): how often an image ranks its own caption first among `candidates`.

    Image i is scored against caption i and `candidates - 1` captions drawn at random from rows
    whose owner differs from `owners[i]` (another image, or another class). The draw is repeated
    `repeats` times.

    Args:
        image_embeddings: [N, E] evaluator embeddings of the (real or generated) images.
        caption_embeddings: [N, E] evaluator embeddings of each image's true caption (row i).
        owners: int [N] the owner (image or class id) of each caption: captions of the same owner
            never serve as mismatches.
        candidates: captions ranked per image (true one included); lowered to what the data
            allows (the returned count).

    Returns:
        (mean, std over repeats, candidates used). Chance is 1 / candidates.

    Reference: Xu et al. 2018, "AttnGAN", section 5 (R-precision, R = 1 of 100 candidates).
    """
    owners = np.asarray(owners)
    similarity = cosine_similarity(image_embeddings, caption_embeddings)
    others = [np.flatnonzero(owners != owner) for owner in owners]
    candidates = int(min(candidates, 1 + min(len(o) for o in others)))
    if candidates < 2:
        raise ValueError("r_precision needs captions of at least two owners.")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(repeats):
        hits = 0
        for i, pool in enumerate(others):
            mismatched = rng.choice(pool, size=candidates - 1, replace=False)
            # Ties count against the true caption: a constant evaluator scores 0, not 1.
            hits += similarity[i, i] > similarity[i, mismatched].max()
        scores.append(hits / len(others))
    return float(np.mean(scores)), float(np.std(scores)), candidates


def mean_pairwise_distance(images) -> float:
    """Mean absolute pixel difference over all pairs of images [K >= 2, ...] (uint8 or float;
    uint8 is scaled to [0, 1])."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    flat = images.reshape(len(images), -1).astype(np.float32) / scale
    if len(flat) < 2:
        raise ValueError("mean_pairwise_distance needs at least two images.")
    total, pairs = 0.0, 0
    for i in range(len(flat) - 1):
        total += float(np.abs(flat[i + 1:] - flat[i]).mean(axis=1).sum())
        pairs += len(flat) - 1 - i
    return total / pairs


def high_frequency_energy(images) -> np.ndarray:
    """Per image, the mean absolute difference between horizontally neighbouring pixels plus
    that between vertically neighbouring ones: float64 [N] for images [N, H, W, C] (uint8 is
    scaled to [0, 1]). Speckle and noise raise it; flat regions and clean edges keep it low."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    images = images.astype(np.float64) / scale
    if images.ndim != 4 or min(images.shape[1:3]) < 2:
        raise ValueError(f"high_frequency_energy needs images [N, H >= 2, W >= 2, C], "
                         f"got {images.shape}.")
    return (np.abs(np.diff(images, axis=1)).mean(axis=(1, 2, 3))
            + np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3)))


def noise_like_share(generated, real, factor: float = 1.25) -> float:
    """Share of `generated` images whose `high_frequency_energy` exceeds `factor` x the 99th
    percentile of the `real` images': images rougher than almost any real one, by a margin.
    A generator that draws a noise-like image for some of its z scores that share; one that
    draws like the data scores about 0."""
    threshold = factor * np.percentile(high_frequency_energy(real), 99)
    return float(np.mean(high_frequency_energy(generated) > threshold))


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve of `scores` for binary `labels`, by ranks (Mann-Whitney U).

    AUC = (sum of the positives' ranks - P (P + 1) / 2) / (P N), tied scores sharing their mean
    rank, so a constant score gives exactly 0.5. NaN if either class is empty.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _mean_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    return (first_rank + (counts - 1) / 2.0)[inverse.ravel()]


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) at every distinct threshold, from (0, 0) to
    (1, 1); the trapezoid area under it equals `roc_auc`."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    true_positives = np.cumsum(labels)[last_of_tie]
    false_positives = np.cumsum(~labels)[last_of_tie]
    return (np.r_[0.0, false_positives / max(int((~labels).sum()), 1)],
            np.r_[0.0, true_positives / max(int(labels.sum()), 1)])


def same_value_pairs(values, similarity) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, same) over all pairs i < j: similarity[i, j] and values[i] == values[j]."""
    values = np.asarray(values)
    upper = np.triu_indices(len(values), k=1)
    return np.asarray(similarity)[upper], values[upper[0]] == values[upper[1]]


def is_monotone_change(read_values, start_value, end_value) -> bool:
    """True when a sequence of read values moves from `start_value` to `end_value` without
    jumping back: once a frame reads `end_value`, no later frame reads anything else, and once
    a frame stops reading `start_value`, no later frame reads it again.

    Args:
        read_values: int [T], e.g. the petal colour read from each frame of a text interpolation.
        start_value, end_value: the values the first and the last caption name.

    It says nothing of the endpoints: a sequence that never leaves `start_value` is monotone.
    """
    values = np.asarray(read_values)
    reached_end = (values == end_value).astype(np.int8)
    left_start = (values != start_value).astype(np.int8)
    return bool(np.all(np.diff(reached_end) >= 0) and np.all(np.diff(left_start) >= 0))
