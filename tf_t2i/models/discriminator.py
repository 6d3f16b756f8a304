"""The GAN-INT-CLS discriminator: Reed's 64x64 design with a residual block at 4x4."""
import math

import keras

from tf_t2i.config import DISCRIMINATOR_CONDITIONINGS
from tf_t2i.models import blocks
from tf_t2i.models.generator import IMAGE_SIZES
from tf_t2i.models.residual_block import ResidualBlock


def discriminator_widths(image_size, ndf):
    """Widths of the stride-2 convolutions down to 4x4: ndf, ndf*2, ndf*4, ndf*8, ndf*8, ..."""
    num_downsamplings = int(math.log2(image_size // 4))
    return [ndf * min(2 ** index, 8) for index in range(num_downsamplings)]


@keras.saving.register_keras_serializable(package="tf_t2i")
class Discriminator(keras.Model):
    """D(x, phi(t)): the logit that image x is real and matches the text embedding.

    4x4 stride-2 convs to 4x4 -> residual block -> concatenate the projected text replicated to
    4x4 -> 1x1 conv (ndf*8) + BN + LeakyReLU -> 4x4 valid conv -> one logit.

    Args:
        image_size: input side, 32, 64 or 128 (log2(image_size / 4) downsamplings).
        embedding_dim: size of the text embedding (Reed: 1024).
        text_projection_dim: the embedding is compressed to this size (Reed: 128).
        ndf: width multiplier (Reed: 64).
        minibatch_stddev: append the batch's mean feature standard deviation as one more 4x4
            channel (Karras et al. 2018), so D can tell a batch of near-identical fakes from a
            varied real batch. Not in Reed's design (off by default); it counters a generator
            that ignores z, which style transfer needs.
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas (TensorFlow
            backend; for distributed training).
        conditioning: "concat" (Reed) or "projection": Reed's concat path plus the projection
            term <W t, sum of the 4x4 image features> added to the logit (Miyato & Koyama 2018;
            not in Reed's design). W starts at zero, so D starts as Reed's, and is not
            spectrally normalised (see `__init__`).
        spectral_norm: spectral normalisation of every convolution and dense layer but the
            projection's W (Miyato et al. 2018; `blocks.spectral_norm`).
        batch_norm: BatchNorm after the convolutions and the text projection (Reed); False
            leaves them out (SN-GAN's and DF-GAN's discriminators have none).

    Call args:
        inputs: a pair (images [batch, image_size, image_size, 3] in [-1, 1],
            text_embedding [batch, embedding_dim]).
        training: BatchNorm mode.

    Returns:
        float32 [batch] unactivated logits.

    Reference: Reed et al. 2016, section 4.1 (network architecture) and `main_cls_int.lua`;
    Miyato & Koyama 2018, "cGANs with Projection Discriminator", Eq. 3 (projection).
    """

    def __init__(self, image_size=64, embedding_dim=1024, text_projection_dim=128, ndf=64,
                 minibatch_stddev=False, sync_batch_norm=False, conditioning="concat",
                 spectral_norm=False, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        if image_size not in IMAGE_SIZES:
            raise ValueError(
                f"Discriminator image_size must be one of {IMAGE_SIZES}, got {image_size}.")
        if ndf < 1:
            raise ValueError(f"Discriminator ndf must be >= 1, got {ndf}.")
        if conditioning not in DISCRIMINATOR_CONDITIONINGS:
            raise ValueError(f"Discriminator conditioning must be one of "
                             f"{DISCRIMINATOR_CONDITIONINGS}, got {conditioning!r}.")
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.text_projection_dim = text_projection_dim
        self.ndf = ndf
        self.minibatch_stddev = minibatch_stddev
        self.sync_batch_norm = sync_batch_norm
        self.conditioning = conditioning
        self.spectral_norm = spectral_norm
        self.batch_norm = batch_norm
        norm = {"enabled": batch_norm, "synchronized": sync_batch_norm}

        def normalised(layer):
            return blocks.spectral_norm(layer, spectral_norm)

        widths = discriminator_widths(image_size, ndf)
        # The last convolution stops at BatchNorm: the block's LeakyReLU follows the addition.
        self.image_features = keras.Sequential(
            [*blocks.downsample_stack(widths, final_activation=False,
                                     sync_batch_norm=sync_batch_norm, use_batch_norm=batch_norm,
                                     use_spectral_norm=spectral_norm),
             ResidualBlock(widths[-1], widths[-1] // 4, "leaky_relu", sync_batch_norm,
                           spectral_norm=spectral_norm, batch_norm=batch_norm)],
            name="image_features")
        self.text_projection = keras.Sequential(
            [normalised(blocks.dense(text_projection_dim, use_bias=False)),
             blocks.normalization(**norm), blocks.leaky_relu()], name="text_projection")
        # The final conv is float32 so logits (and the losses built on them) stay float32 under a
        # mixed precision policy.
        self.joint_classifier = keras.Sequential(
            [normalised(blocks.conv2d(ndf * 8, 1)), blocks.normalization(**norm),
             blocks.leaky_relu(),
             normalised(blocks.conv2d(1, 4, padding="valid", use_bias=True, dtype="float32"))],
            name="joint_classifier")
        if conditioning == "projection":
            # W starts at zero, so D starts as Reed's, and grows as D learns it. Its scale
            # matters: the sum over 16 positions against a text embedding of norm sqrt(E) gave
            # logits of tens from N(0, 0.02) weights (d_loss 21 at the tiny preset's second
            # step), and of about a hundred when spectral normalisation rescaled W to norm 1
            # (g_loss 175 at the first step), so W stays out of spectral normalisation.
            # float32 like the logit it is added to.
            self.embedding_projection = keras.layers.Dense(
                widths[-1], use_bias=False, kernel_initializer="zeros", dtype="float32",
                name="embedding_projection")

    def call(self, inputs, training=None):
        images, text_embedding = inputs
        return self.score(self.features(images, training=training), text_embedding,
                          training=training)

    def features(self, images, training=None):
        """[batch, 4, 4, ndf*8] image features, before the text joins.

        GAN-CLS scores the same real images with right and wrong text: computing their
        features once serves both.
        """
        return self.image_features(images, training=training)

    def score(self, features, text_embedding, training=None):
        """[batch] logits of `features(images)` paired with `text_embedding`."""
        text = self.text_projection(text_embedding, training=training)
        # Replicate the text vector at every 4x4 position (Reed's spatial replication).
        text = keras.ops.tile(text[:, None, None, :], (1, 4, 4, 1))
        parts = [features, text]
        if self.minibatch_stddev:
            parts.append(_minibatch_stddev(features))
        joint = keras.ops.concatenate(parts, axis=-1)
        logits = keras.ops.reshape(self.joint_classifier(joint, training=training), (-1,))
        if self.conditioning == "projection":
            logits = logits + self._projection(features, text_embedding, training)
        return logits

    def _projection(self, features, text_embedding, training=None):
        """[batch] float32 <W t, sum over the 4x4 positions of `features`> (Miyato & Koyama)."""
        pooled = keras.ops.sum(keras.ops.cast(features, "float32"), axis=(1, 2))
        projected = self.embedding_projection(text_embedding, training=training)
        return keras.ops.sum(projected * pooled, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, embedding_dim=self.embedding_dim,
                      text_projection_dim=self.text_projection_dim, ndf=self.ndf,
                      minibatch_stddev=self.minibatch_stddev,
                      sync_batch_norm=self.sync_batch_norm, conditioning=self.conditioning,
                      spectral_norm=self.spectral_norm, batch_norm=self.batch_norm)
        return config


def _minibatch_stddev(features):
    """[B, 4, 4, 1]: the standard deviation over the batch, averaged over features and positions."""
    variance = keras.ops.var(keras.ops.cast(features, "float32"), axis=0)
    mean_stddev = keras.ops.mean(keras.ops.sqrt(variance + 1e-8))
    return keras.ops.ones_like(features[..., :1]) * keras.ops.cast(mean_stddev, features.dtype)
