"""GAN-INT-CLS losses as pure functions of logits and embeddings (keras.ops only).

Every loss returns a float32 scalar: the mean over the batch.
"""
from keras import ops

_EPSILON = 1e-12


def _sigmoid_cross_entropy(logits, label):
    """Per-element BCE of sigmoid(logits) against a constant label in {0, 1}.

    max(x, 0) - x * y + log(1 + exp(-|x|)) never exponentiates a large positive number, so logits
    of +-100 give exact, finite losses. `where` instead of relu/abs keeps the gradient at exactly
    x = 0 equal to sigmoid(0) - y (relu and abs have zero gradient there).
    """
    logits = ops.cast(logits, "float32")
    non_negative = ops.greater_equal(logits, 0.0)
    relu_logits = ops.where(non_negative, logits, 0.0)
    negative_abs_logits = ops.where(non_negative, -logits, logits)
    return relu_logits - logits * label + ops.log1p(ops.exp(negative_abs_logits))


def discriminator_loss(real_logits, wrong_logits, fake_logits, cls_weight=0.5):
    """GAN-CLS discriminator loss.

    BCE(real, 1) + cls_weight * BCE(wrong, 0) + (1 - cls_weight) * BCE(fake, 0).

    Args:
        real_logits: [batch] D(real image, matching text).
        wrong_logits: [batch] D(real image, mismatching text).
        fake_logits: [batch] D(G(z, text), text).
        cls_weight: weight of the mismatching-text term (Reed: 0.5).

    Returns:
        float32 scalar.

    Reference: Reed et al. 2016, section 4.2 and Algorithm 1 (GAN-CLS).
    """
    real = ops.mean(_sigmoid_cross_entropy(real_logits, 1.0))
    wrong = ops.mean(_sigmoid_cross_entropy(wrong_logits, 0.0))
    fake = ops.mean(_sigmoid_cross_entropy(fake_logits, 0.0))
    return real + cls_weight * wrong + (1.0 - cls_weight) * fake


def generator_loss(fake_logits):
    """GAN-CLS generator loss BCE(D(G(z, t), t), 1) (the non-saturating form).

    Args:
        fake_logits: [batch] D(G(z, text), text).

    Returns:
        float32 scalar.

    Reference: Reed et al. 2016, section 4.2 and Algorithm 1 (GAN-CLS).
    """
    return ops.mean(_sigmoid_cross_entropy(fake_logits, 1.0))


def interpolation_loss(interpolated_fake_logits):
    """GAN-INT term BCE(D(G(z, t_int), t_int), 1); the caller weighs it by interp_weight.

    Interpolated embeddings have no real image, so this term only enters G's loss, never D's.

    Args:
        interpolated_fake_logits: [batch] D(G(z, t_int), t_int).

    Returns:
        float32 scalar.

    Reference: Reed et al. 2016, section 4.3 (GAN-INT).
    """
    return ops.mean(_sigmoid_cross_entropy(interpolated_fake_logits, 1.0))


def interpolate_embeddings(embeddings_a, embeddings_b, beta):
    """beta * a + (1 - beta) * b: points between two captions' embeddings.

    Args:
        embeddings_a: [batch, embedding_dim].
        embeddings_b: [batch, embedding_dim].
        beta: a scalar or [batch, 1] mixing weight (Reed: 0.5).

    Returns:
        [batch, embedding_dim].

    Reference: Reed et al. 2016, section 4.3 (GAN-INT).
    """
    return beta * embeddings_a + (1.0 - beta) * embeddings_b


def extrapolate_embeddings(embeddings_a, embeddings_b, alpha):
    """a + alpha * (a - b): Reed's interp_type=2, moving along the difference of two captions.

    Args:
        embeddings_a: [batch, embedding_dim].
        embeddings_b: [batch, embedding_dim].
        alpha: a scalar or [batch, 1] step (Reed draws alpha ~ U(-1, 1)).

    Returns:
        [batch, embedding_dim].

    Reference: Reed et al. 2016, section 4.3 (GAN-INT); `main_cls_int.lua` of reedscot/icml2016.
    """
    return embeddings_a + alpha * (embeddings_a - embeddings_b)


def _l2_normalize(x):
    x = ops.cast(x, "float32")
    return x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + _EPSILON)


def matching_loss(text_embeddings, image_embeddings, labels=None, margin=0.2):
    """Bidirectional hinge ranking loss on cosine similarity, with instance-level negatives.

    With s[i, j] = cos(text_i, image_j), each matched pair i contributes
    sum over negatives j of max(0, margin - s[i, i] + s[i, j])   (text i against other images)
                         + max(0, margin - s[i, i] + s[j, i])   (image i against other texts),
    averaged over the batch. Every j != i is a negative, except pairs with the same label when
    `labels` is given: those share their content, so pushing them apart would be wrong.

    Args:
        text_embeddings: [batch, embedding_dim].
        image_embeddings: [batch, embedding_dim], row i matches text row i.
        labels: optional int [batch] class ids.
        margin: hinge margin (TensorLayer port: 0.2).

    Returns:
        float32 scalar.

    Reference: Reed et al. 2016, section 3.2 (structured joint embedding); hinge form of the
    TensorLayer port.
    """
    text = _l2_normalize(text_embeddings)
    image = _l2_normalize(image_embeddings)
    similarity = ops.matmul(text, ops.transpose(image))
    positive = ops.diagonal(similarity)
    # Row i of text_to_image: text i against every image; column i of image_to_text: image i
    # against every text (entry [j, i] holds s[j, i]).
    text_to_image = ops.relu(margin - positive[:, None] + similarity)
    image_to_text = ops.relu(margin - positive[None, :] + similarity)
    negatives = 1.0 - ops.eye(ops.shape(similarity)[0], dtype="float32")
    if labels is not None:
        labels = ops.convert_to_tensor(labels)
        negatives = negatives * ops.cast(ops.not_equal(labels[:, None], labels[None, :]), "float32")
    per_pair = (ops.sum(text_to_image * negatives, axis=1)
                + ops.sum(image_to_text * negatives, axis=0))
    return ops.mean(per_pair)


def hard_negative_loss(text_embeddings, negative_embeddings, image_embeddings, valid=None,
                       margin=0.2):
    """Hinge loss with one hard negative text per image: its caption with attributes rebound.

    With cos the cosine similarity, each example i contributes
        max(0, margin - cos(text_i, image_i) + cos(negative_i, image_i)),
    averaged over the batch; an example whose `valid` is 0 (its caption has no negative)
    contributes 0. The negative has no image of its own, so only the image-to-text direction
    of `matching_loss` applies; the caller adds this term to it, weighted.

    Args:
        text_embeddings: [batch, embedding_dim] the examples' captions.
        negative_embeddings: [batch, embedding_dim] their hard negative captions.
        image_embeddings: [batch, embedding_dim], row i matches text row i.
        valid: optional [batch] 1 where example i has a hard negative, else 0.
        margin: hinge margin (as `matching_loss`'s).

    Returns:
        float32 scalar.

    Reference: Yuksekgonul et al. 2023, "When and why vision-language models behave like
    bags-of-words" (NegCLIP: swapped-word captions as extra negatives of a contrastive loss).
    """
    image = _l2_normalize(image_embeddings)
    positive = ops.sum(_l2_normalize(text_embeddings) * image, axis=-1)
    negative = ops.sum(_l2_normalize(negative_embeddings) * image, axis=-1)
    per_example = ops.relu(margin - positive + negative)
    if valid is not None:
        per_example = per_example * ops.cast(valid, "float32")
    return ops.mean(per_example)


def style_loss(z, reconstructed_z):
    """Style encoder loss ||z - S(G(z, phi(t)))||^2: squared L2 norm, mean over the batch.

    Args:
        z: [batch, z_dim] the noise G was given.
        reconstructed_z: [batch, z_dim] S applied to G's image.

    Returns:
        float32 scalar.

    Reference: Reed et al. 2016, section 4.4 (inverting the generator for style transfer).
    """
    difference = ops.cast(z, "float32") - ops.cast(reconstructed_z, "float32")
    return ops.mean(ops.sum(ops.square(difference), axis=-1))


def mode_seeking_loss(images_a, images_b, z_a, z_b, epsilon=1e-5, sum_over_replicas=None):
    """Penalises a generator that ignores its noise: 1 / (d(images) / d(z) + epsilon).

    d is the mean absolute difference; both image batches are drawn from the same texts with
    noise z_a and z_b. Not part of Reed et al.; it counters the conditional generator's
    tendency to draw one image per text whatever z is, which leaves nothing for a style encoder.

    Args:
        images_a, images_b: [batch, H, W, 3] images of the same texts.
        z_a, z_b: [batch, z_dim] their noise.
        sum_over_replicas: in a distributed step, a function summing a scalar over the replicas
            (`replica_ops.sum_over_replicas`), so that d is the mean over the global batch;
            None for one device.

    Returns:
        float32 scalar.

    Reference: Mao et al. 2019, "Mode Seeking Generative Adversarial Networks", eq. 3.
    """
    total = sum_over_replicas or (lambda value: value)

    def mean_abs_difference(a, b):
        difference = ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32"))
        count = ops.cast(ops.size(difference), "float32")
        return total(ops.sum(difference)) / total(count)

    image_distance = mean_abs_difference(images_a, images_b)
    noise_distance = mean_abs_difference(z_a, z_b)
    return 1.0 / (image_distance / noise_distance + epsilon)


def hinge_discriminator_loss(real_logits, wrong_logits, fake_logits, cls_weight=0.5):
    """Hinge GAN-CLS discriminator loss, with GAN-CLS's weighting of the two "fake" terms.

    mean relu(1 - real) + cls_weight * mean relu(1 + wrong)
    + (1 - cls_weight) * mean relu(1 + fake).

    Args:
        real_logits: [batch] D(real image, matching text).
        wrong_logits: [batch] D(real image, mismatching text).
        fake_logits: [batch] D(G(z, text), text).
        cls_weight: weight of the mismatching-text term (DF-GAN and Reed: 0.5).

    Returns:
        float32 scalar.

    Reference: Tao et al. 2022 (DF-GAN), section 3.3, eq. 4; Lim & Ye 2017 (Geometric GAN).
    """
    real = ops.mean(ops.relu(1.0 - ops.cast(real_logits, "float32")))
    wrong = ops.mean(ops.relu(1.0 + ops.cast(wrong_logits, "float32")))
    fake = ops.mean(ops.relu(1.0 + ops.cast(fake_logits, "float32")))
    return real + cls_weight * wrong + (1.0 - cls_weight) * fake


def hinge_generator_loss(fake_logits):
    """Hinge generator loss -mean D(G(z, t), t); also the hinge form of the GAN-INT term.

    Args:
        fake_logits: [batch] D(G(z, text), text).

    Returns:
        float32 scalar.

    Reference: Tao et al. 2022 (DF-GAN), section 3.3, eq. 4.
    """
    return -ops.mean(ops.cast(fake_logits, "float32"))


def gradient_penalty(image_gradients, embedding_gradients, power=6.0):
    """Matching-aware gradient penalty: mean over examples of ||grad_(x, t) D(x, t)||^power.

    The norm is over the concatenation of an example's image and text-embedding gradients,
    computed in float32 (bfloat16 squares of small gradients lose most of their bits).

    Args:
        image_gradients: [batch, H, W, C] dD/dx at real images with their matching texts.
        embedding_gradients: [batch, E] dD/dt at the same pairs.
        power: p (DF-GAN: 6).

    Returns:
        float32 scalar; the caller weighs it (DF-GAN: 2).

    Reference: Tao et al. 2022 (DF-GAN), section 3.3, eq. 4 (MA-GP) and `code/lib/modules.py`.
    """
    image_gradients = ops.cast(image_gradients, "float32")
    embedding_gradients = ops.cast(embedding_gradients, "float32")
    squared_norm = (ops.sum(ops.reshape(ops.square(image_gradients),
                                        (ops.shape(image_gradients)[0], -1)), axis=-1)
                    + ops.sum(ops.square(embedding_gradients), axis=-1))
    # ||g||^p as (||g||^2)^(p / 2): no square root, whose gradient is infinite at g = 0.
    return ops.mean(ops.power(squared_norm, power / 2.0))


def hard_negative_check_loss(right_logits, negative_logits, valid, gan_loss="bce"):
    """D's check of single captions: a real image with a caption of its own is real, with that
    caption's hard negative is wrong.

    Per example (bce) BCE(right, 1) + BCE(negative, 0), or (hinge) relu(1 - right) +
    relu(1 + negative), halved and averaged over the batch; an example whose `valid` is 0 (its
    caption has no negative) contributes 0, so that replicas of equal batches average to the
    global batch's value.

    Args:
        right_logits: [batch] D(real image, a caption of its own).
        negative_logits: [batch] D(real image, that caption's hard negative).
        valid: [batch] 1 where the example has a hard negative, else 0.
        gan_loss: "bce" or "hinge", as D's other terms.

    Returns:
        float32 scalar.
    """
    if gan_loss == "hinge":
        per_example = ops.relu(1.0 - ops.cast(right_logits, "float32")) + ops.relu(
            1.0 + ops.cast(negative_logits, "float32"))
    else:
        per_example = (_sigmoid_cross_entropy(right_logits, 1.0)
                       + _sigmoid_cross_entropy(negative_logits, 0.0))
    return ops.mean(0.5 * per_example * ops.cast(valid, "float32"))


# gan_loss name -> (discriminator loss, generator loss, GAN-INT term).
GAN_LOSSES = {
    "bce": (discriminator_loss, generator_loss, interpolation_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss, hinge_generator_loss),
}


def latent_regression_loss(z, reconstructed_z):
    """BicycleGAN's cLR term mean |z - S(G(z, t))|: L1, mean over every element.

    Unlike `style_loss` it is meant to train G as well as S, so that G keeps z recoverable from
    its images (z then matters), and S learns during the GAN stage.

    Args:
        z: [batch, z_dim] the noise G was given.
        reconstructed_z: [batch, z_dim] S applied to G's images.

    Returns:
        float32 scalar.

    Reference: Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation" (BicycleGAN),
    section 3.3 (cLR-GAN), eq. 6.
    """
    difference = ops.cast(z, "float32") - ops.cast(reconstructed_z, "float32")
    return ops.mean(ops.abs(difference))


def reconstruction_loss(images, reconstructed_images):
    """L1 image reconstruction mean |x - G(S(x), phi(t_x))|, mean over every element.

    Args:
        images: [batch, H, W, 3] real images in [-1, 1].
        reconstructed_images: [batch, H, W, 3] G's images from S(x) and x's own text.

    Returns:
        float32 scalar.

    Reference: Zhu et al. 2017 (BicycleGAN), section 3.2 (cVAE-GAN), eq. 3.
    """
    difference = ops.cast(images, "float32") - ops.cast(reconstructed_images, "float32")
    return ops.mean(ops.abs(difference))


def style_prior_loss(styles):
    """Keeps S(x) of real images distributed like G's noise N(0, I) by matching moments.

    mean over dimensions j of m_j^2 + (v_j - 1)^2, with m_j and v_j the batch mean and unbiased
    variance of dimension j. Only per-dimension moments are matched: a batch covariance matched
    to I when the batch is about as large as z_dim is biased (its expected squared error is
    smallest for covariance ~ I / (1 + (z_dim + 1) / batch), about I / 2 at 64 x 64), while the
    per-dimension variance's bias is a factor 1 / (1 + 2 / batch). A cheaper alternative to the
    KL term of a variational S (BicycleGAN's cVAE-GAN); not in Reed et al.

    Args:
        styles: [batch, z_dim] S(x) of real images; batch >= 2.

    Returns:
        float32 scalar; 0 when each dimension has mean 0 and variance 1 over the batch.
    """
    styles = ops.cast(styles, "float32")
    mean = ops.mean(styles, axis=0)
    count = ops.cast(ops.shape(styles)[0], "float32")
    variance = ops.sum(ops.square(styles - mean), axis=0) / (count - 1.0)
    return ops.mean(ops.square(mean) + ops.square(variance - 1.0))
