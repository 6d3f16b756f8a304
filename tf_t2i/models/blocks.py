"""Layer factories shared by the models: DCGAN initialisation and normalisation settings.

Reference: Reed et al. 2016, section 4.1 (DCGAN-style networks; weights N(0, 0.02) as in DCGAN).
"""
import keras

from tf_t2i.models.synchronized_batch_norm import SynchronizedBatchNormalization

# Torch's BatchNorm defaults (momentum 0.1 = Keras 0.9, eps 1e-5), which Reed's code trained with.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def weight_init():
    """Returns a fresh N(0, 0.02) initializer.

    One instance per layer: an unseeded Keras initializer fixes its seed when created, so a shared
    instance would give every layer the same draw.
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_norm(synchronized=False, **kwargs):
    """BatchNormalization with gamma ~ N(1, 0.02) and Torch's momentum and epsilon.

    synchronized: normalise with the global batch's statistics under a tf.distribute strategy
        (`SynchronizedBatchNormalization`, two-pass moments).
    """
    layer = SynchronizedBatchNormalization if synchronized else keras.layers.BatchNormalization
    return layer(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02), **kwargs)


def normalization(enabled=True, **kwargs):
    """`batch_norm(**kwargs)` when `enabled`, else an identity layer (a discriminator without
    BatchNorm, e.g. under spectral normalisation)."""
    return batch_norm(**kwargs) if enabled else keras.layers.Identity()


def conv2d(filters, kernel_size, strides=1, padding="same", use_bias=False, **kwargs):
    """Conv2D with N(0, 0.02) weights; no bias by default because a BatchNorm follows."""
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                               use_bias=use_bias, kernel_initializer=weight_init(), **kwargs)


def dense(units, use_bias=True, **kwargs):
    """Dense with N(0, 0.02) weights."""
    return keras.layers.Dense(units, use_bias=use_bias, kernel_initializer=weight_init(), **kwargs)


def leaky_relu():
    """LeakyReLU with DCGAN's slope 0.2."""
    return keras.layers.LeakyReLU(negative_slope=0.2)


def downsample_stack(filters, final_activation=True, sync_batch_norm=False, use_batch_norm=True,
                     use_spectral_norm=False):
    """4x4 stride-2 convolutions, BatchNorm from the second, LeakyReLU(0.2).

    Args:
        filters: widths of the successive convolutions; each halves the spatial size.
        final_activation: False leaves the last convolution at BatchNorm, as Reed's discriminator
            does before its residual block.
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas.
        use_batch_norm: False leaves the BatchNorms out.
        use_spectral_norm: spectral normalisation of the convolutions (`spectral_norm`).

    Returns:
        A list of layers to put in a `keras.Sequential`.
    """
    layers = []
    for index, width in enumerate(filters):
        layers.append(spectral_norm(conv2d(width, 4, strides=2, use_bias=index == 0),
                                    use_spectral_norm))
        if index > 0 and use_batch_norm:
            layers.append(batch_norm(synchronized=sync_batch_norm))
        if final_activation or index < len(filters) - 1:
            layers.append(leaky_relu())
    return layers


def spectral_norm(layer, enabled=True):
    """`layer` (a Conv2D or Dense) under spectral normalisation when `enabled`, else `layer`.

    One power iteration per training call (Miyato et al. 2018, Algorithm 1) keeps the kernel's
    largest singular value near 1. Keras's wrapper writes W / sigma back into the kernel; it runs
    in float32 whatever the global policy, because under a mixed policy its power iteration
    would read the kernel autocast to 16 bits and write it back rounded, erasing every update
    smaller than 16-bit resolution (checked under mixed_bfloat16). The wrapped layer still
    computes in its own policy.

    Reference: Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks".
    """
    if not enabled:
        return layer
    return keras.layers.SpectralNormalization(layer, power_iterations=1, dtype="float32",
                                              name=f"{layer.name}_spectral_norm")
