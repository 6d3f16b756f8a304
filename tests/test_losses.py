"""The losses against hand computations in numpy."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i import losses


def _softplus(x):
    """log(1 + exp(x)), written out: fine for the moderate logits used here."""
    return np.log(1.0 + np.exp(np.asarray(x, dtype=np.float64)))


def _bce_real(logits):
    return _softplus(-np.asarray(logits, dtype=np.float64))


def _bce_fake(logits):
    return _softplus(logits)


def _value(tensor):
    assert keras.backend.standardize_dtype(tensor.dtype) == "float32"
    assert tuple(tensor.shape) == ()
    return float(keras.ops.convert_to_numpy(tensor))


REAL = np.array([2.0, -1.0], np.float32)
WRONG = np.array([0.5, 3.0], np.float32)
FAKE = np.array([-3.0, 0.2], np.float32)


@pytest.mark.parametrize("cls_weight", [0.5, 0.3])
def test_discriminator_loss(cls_weight):
    expected = (_bce_real(REAL).mean() + cls_weight * _bce_fake(WRONG).mean()
                + (1 - cls_weight) * _bce_fake(FAKE).mean())
    actual = _value(losses.discriminator_loss(REAL, WRONG, FAKE, cls_weight=cls_weight))
    assert actual == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_by_hand():
    # log(1+e^-2) = 0.126928, log(1+e^1) = 1.313262, log(1+e^0.5) = 0.974077,
    # log(1+e^3) = 3.048587, log(1+e^-3) = 0.048587, log(1+e^0.2) = 0.798139.
    expected = (0.126928 + 1.313262) / 2 + 0.5 * (0.974077 + 3.048587) / 2 \
        + 0.5 * (0.048587 + 0.798139) / 2
    assert _value(losses.discriminator_loss(REAL, WRONG, FAKE)) == pytest.approx(expected, abs=1e-5)


def test_generator_and_interpolation_losses():
    expected = _bce_real(FAKE).mean()
    assert _value(losses.generator_loss(FAKE)) == pytest.approx(expected, rel=1e-6)
    assert _value(losses.interpolation_loss(FAKE)) == pytest.approx(expected, rel=1e-6)


def test_losses_are_stable_for_huge_logits():
    huge = np.array([100.0, -100.0], np.float32)
    # BCE(100, 1) = log(1 + e^-100) ~ 0 and BCE(-100, 1) = 100 + log(1 + e^-100) ~ 100.
    assert _value(losses.generator_loss(huge)) == pytest.approx(50.0, abs=1e-6)
    assert _value(losses.interpolation_loss(huge)) == pytest.approx(50.0, abs=1e-6)
    confident = losses.discriminator_loss(huge[:1], huge[1:], huge[1:])
    fooled = losses.discriminator_loss(huge[1:], huge[:1], huge[:1])
    assert _value(confident) == pytest.approx(0.0, abs=1e-6)
    assert _value(fooled) == pytest.approx(200.0, abs=1e-4)


def test_loss_gradients_are_finite_and_exact_at_zero():
    logits = tf.constant([100.0, -100.0, 0.0])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = losses.generator_loss(logits)
    gradient = tape.gradient(loss, logits).numpy()
    # d/dx BCE(x, 1) = sigmoid(x) - 1, divided by the batch of 3.
    np.testing.assert_allclose(gradient, [0.0, -1.0 / 3, -0.5 / 3], atol=1e-7)


def test_low_precision_logits_give_float32_losses():
    logits = keras.ops.cast(FAKE, "bfloat16")
    assert _value(losses.generator_loss(logits)) == pytest.approx(_bce_real(FAKE).mean(), rel=1e-2)


def test_interpolate_and_extrapolate_embeddings():
    a = np.array([[1.0, 2.0]], np.float32)
    b = np.array([[3.0, 6.0]], np.float32)
    np.testing.assert_allclose(losses.interpolate_embeddings(a, b, 0.25), [[2.5, 5.0]])
    np.testing.assert_allclose(losses.interpolate_embeddings(a, b, 0.5), [[2.0, 4.0]])
    np.testing.assert_allclose(losses.extrapolate_embeddings(a, b, 0.5), [[0.0, 0.0]])
    np.testing.assert_allclose(losses.extrapolate_embeddings(a, b, -1.0), b)
    np.testing.assert_allclose(losses.extrapolate_embeddings(a, b, 0.0), a)


# Texts and images of a 3x3 example: s[i, j] = cos(text_i, image_j) = [[1,0,0],[0,1,1],[1,0,0]].
TEXT = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
IMAGE = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], np.float32)


def test_matching_loss_by_hand():
    # Margin 0.2, per pair i (text->image over row i, image->text over column i):
    # i=0: 0 + 0 | 0 + 0.2;  i=1: 0 + 0.2 | 0 + 0;  i=2: 1.2 + 0.2 | 0.2 + 1.2  -> 3.2 / 3.
    loss = losses.matching_loss(TEXT, IMAGE, margin=0.2)
    assert _value(loss) == pytest.approx(3.2 / 3, abs=1e-6)
    # Cosine similarity ignores the embeddings' norms.
    assert _value(losses.matching_loss(3.0 * TEXT, 0.5 * IMAGE)) == pytest.approx(3.2 / 3, abs=1e-6)


def test_matching_loss_skips_same_label_negatives():
    # Pairs 0 and 2 share a label, so (0, 2) and (2, 0) are not negatives:
    # i=0: 0;  i=1: 0.2 (text 1 vs image 2);  i=2: 0.2 + 1.2 (against pair 1)  -> 1.6 / 3.
    loss = losses.matching_loss(TEXT, IMAGE, labels=np.array([0, 1, 0]), margin=0.2)
    assert _value(loss) == pytest.approx(1.6 / 3, abs=1e-6)


def test_matching_loss_margin():
    basis = np.eye(3, dtype=np.float32)
    assert _value(losses.matching_loss(basis, basis, margin=0.2)) == pytest.approx(0.0)
    # Margin 1.5: every negative costs 1.5 - 1 + 0 = 0.5, 2 negatives x 2 directions per pair.
    assert _value(losses.matching_loss(basis, basis, margin=1.5)) == pytest.approx(2.0)
    labels = np.array([0, 0, 1])
    assert _value(losses.matching_loss(basis, basis, labels, margin=1.5)) == pytest.approx(4 / 3)


def test_matching_loss_matches_a_loop():
    rng = np.random.default_rng(0)
    text, image = rng.normal(size=(2, 5, 4)).astype(np.float32)
    labels = np.array([0, 1, 0, 2, 1])

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    total = 0.0
    for i in range(5):
        for j in range(5):
            if labels[i] != labels[j]:
                total += max(0.0, 0.3 - cos(text[i], image[i]) + cos(text[i], image[j]))
                total += max(0.0, 0.3 - cos(text[i], image[i]) + cos(text[j], image[i]))
    loss = losses.matching_loss(text, image, labels=labels, margin=0.3)
    assert _value(loss) == pytest.approx(total / 5, abs=1e-5)


def test_hard_negative_loss_by_hand():
    # Unit vectors: image 0 = e0 matches its text (cos 1) and its negative is e1 (cos 0):
    # 0.2 - 1 + 0 < 0 -> 0. Image 1 = e0 too, its text is e1 (cos 0), its negative lies at
    # 60 degrees (cos 0.5): 0.2 - 0 + 0.5 = 0.7. Image 2's negative equals its text: 0.2.
    image = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    text = np.array([[1, 0], [0, 1], [0, 1]], np.float32)
    negative = np.array([[0, 1], [0.5, 0.75 ** 0.5], [0, 1]], np.float32)
    loss = losses.hard_negative_loss(2.0 * text, negative, 3.0 * image, margin=0.2)
    assert _value(loss) == pytest.approx((0.0 + 0.7 + 0.2) / 3, abs=1e-6)
    # An example without a negative counts 0 but still divides: the mean over the batch.
    valid = np.array([1.0, 1.0, 0.0], np.float32)
    assert _value(losses.hard_negative_loss(text, negative, image, valid, margin=0.2)) == (
        pytest.approx(0.7 / 3, abs=1e-6))
    assert _value(losses.hard_negative_loss(text, negative, image, valid > 0, margin=1.0)) == (
        pytest.approx((0.0 + 1.5) / 3, abs=1e-6))


def test_hard_negative_check_loss_by_hand():
    # Logit 0 costs log 2 either way; logit 2 right costs log(1 + e^-2), logit -1 negative
    # log(1 + e^-1). The third example has no negative: 0, but it still divides.
    right = np.array([0.0, 2.0, 5.0], np.float32)
    negative = np.array([0.0, -1.0, 5.0], np.float32)
    valid = np.array([1.0, 1.0, 0.0], np.float32)
    by_hand = (2 * np.log(2.0) + np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2 / 3
    assert _value(losses.hard_negative_check_loss(right, negative, valid)) == pytest.approx(
        by_hand, rel=1e-6)
    # Hinge: relu(1 - right) + relu(1 + negative) = 2 and 0 + 0.
    assert _value(losses.hard_negative_check_loss(right, negative, valid > 0, "hinge")) == (
        pytest.approx((2.0 + 0.0) / 2 / 3, abs=1e-6))


def test_style_loss():
    z = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    reconstructed = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    # Squared norms 1 + 4 = 5 and 1 + 1 = 2, mean 3.5.
    assert _value(losses.style_loss(z, reconstructed)) == pytest.approx(3.5)
    assert _value(losses.style_loss(z, z)) == 0.0


def test_mode_seeking_loss_by_hand():
    images_a = np.zeros([2, 2, 2, 3], np.float32)
    images_b = np.full([2, 2, 2, 3], 0.5, np.float32)
    z_a = np.zeros([2, 4], np.float32)
    z_b = np.full([2, 4], 2.0, np.float32)
    # d(images) = 0.5, d(z) = 2: 1 / (0.25 + 1e-5).
    assert _value(losses.mode_seeking_loss(images_a, images_b, z_a, z_b)) == pytest.approx(
        1 / (0.25 + 1e-5), rel=1e-6)
    # A generator that ignores z draws equal images: the largest penalty, 1 / epsilon.
    assert _value(losses.mode_seeking_loss(images_a, images_a, z_a, z_b)) == pytest.approx(1e5)


@pytest.mark.parametrize("cls_weight", [0.5, 0.3])
def test_hinge_discriminator_loss_by_hand(cls_weight):
    # relu(1 - [2, -1]) = [0, 2]; relu(1 + [0.5, 3]) = [1.5, 4]; relu(1 + [-3, 0.2]) = [0, 1.2].
    expected = 1.0 + cls_weight * 2.75 + (1 - cls_weight) * 0.6
    actual = _value(losses.hinge_discriminator_loss(REAL, WRONG, FAKE, cls_weight=cls_weight))
    assert actual == pytest.approx(expected, rel=1e-6)


def test_hinge_generator_loss_is_minus_the_mean_logit():
    assert _value(losses.hinge_generator_loss(FAKE)) == pytest.approx(1.4, rel=1e-6)
    assert _value(losses.hinge_generator_loss(np.array([100.0, -100.0], np.float32))) == 0.0


def test_gan_losses_table_keeps_reeds_losses_for_bce():
    assert losses.GAN_LOSSES["bce"] == (losses.discriminator_loss, losses.generator_loss,
                                        losses.interpolation_loss)
    assert losses.GAN_LOSSES["hinge"] == (losses.hinge_discriminator_loss,
                                          losses.hinge_generator_loss,
                                          losses.hinge_generator_loss)


@pytest.mark.parametrize("power", [6.0, 2.0])
def test_gradient_penalty_by_hand(power):
    # Example 0: image gradient entries 1, 2 (squared 5) and embedding gradient 2 (4): ||g||^2 = 9.
    # Example 1: all zero.
    image_gradients = np.zeros((2, 2, 1, 1), np.float32)
    image_gradients[0, :, 0, 0] = [1.0, 2.0]
    embedding_gradients = np.array([[2.0, 0.0], [0.0, 0.0]], np.float32)
    expected = (9.0 ** (power / 2)) / 2
    actual = _value(losses.gradient_penalty(image_gradients, embedding_gradients, power=power))
    assert actual == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_is_float32_for_bfloat16_gradients():
    image_gradients = tf.cast(tf.fill((1, 4, 4, 3), 0.5), tf.bfloat16)
    embedding_gradients = tf.cast(tf.fill((1, 4), 0.5), tf.bfloat16)
    # ||g||^2 = 52 * 0.25 = 13; p = 6 -> 13^3.
    assert _value(losses.gradient_penalty(image_gradients, embedding_gradients)) == \
        pytest.approx(2197.0, rel=1e-6)


def test_latent_regression_loss_by_hand():
    z = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    recovered = np.array([[0.0, -1.0], [0.5, 3.0]], np.float32)
    # |1| + |-1| + 0 + |-3| over 4 elements.
    assert float(losses.latent_regression_loss(z, recovered)) == pytest.approx(5.0 / 4.0)
    assert float(losses.latent_regression_loss(z, z)) == 0.0


def test_reconstruction_loss_by_hand():
    images = np.zeros((2, 2, 2, 3), np.float32)
    reconstructed = images.copy()
    reconstructed[0, 0, 0] = [1.0, -1.0, 0.5]
    reconstructed[1, 1, 1, 2] = -0.5
    # (1 + 1 + 0.5 + 0.5) over 24 elements; bfloat16 inputs give a float32 loss.
    loss = losses.reconstruction_loss(images, tf.cast(reconstructed, tf.bfloat16))
    assert loss.dtype == "float32" and float(loss) == pytest.approx(3.0 / 24.0)


def test_style_prior_loss_by_hand():
    # Dimension 0: mean 0, unbiased variance (1 + 1) / 1 = 2 -> 0 + 1. Dimension 1: mean 1,
    # variance 0 -> 1 + 1. Mean over the two dimensions: 1.5.
    styles = np.array([[1.0, 1.0], [-1.0, 1.0]], np.float32)
    assert float(losses.style_prior_loss(styles)) == pytest.approx(1.5)
    standard = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32) / np.sqrt(2.0)
    # Mean 0 and unbiased variance (0.5 + 0.5) / 1 = 1 in both dimensions.
    assert float(losses.style_prior_loss(standard)) == pytest.approx(0.0, abs=1e-7)


def test_style_prior_loss_is_near_zero_for_standard_normal_styles():
    styles = np.random.default_rng(0).standard_normal((4096, 8)).astype(np.float32)
    assert float(losses.style_prior_loss(styles)) < 1e-2
    assert float(losses.style_prior_loss(3.0 * styles + 1.0)) > 10.0
