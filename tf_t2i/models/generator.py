"""The GAN-INT-CLS generator: Reed's residual 64x64 design, generalised to 32 and 128 pixels."""
import math

import keras

from tf_t2i.config import GENERATOR_CONDITIONINGS, UPSAMPLINGS
from tf_t2i.models import blocks
from tf_t2i.models.conditional_affine import ConditionalAffine
from tf_t2i.models.nearest_upsampling_conv2d import NearestUpsamplingConv2D
from tf_t2i.models.residual_block import ResidualBlock
from tf_t2i.models.token_attention_affine import TokenAttentionAffine

IMAGE_SIZES = (32, 64, 128)


def _upsample(filters, mode, output=False, **conv_kwargs):
    """Layers that double the spatial size: a 4x4 stride-2 transposed conv (Reed) or nearest
    neighbour + 3x3 conv (TensorLayer port; avoids checkerboard artefacts), computed on the
    input grid by `NearestUpsamplingConv2D`. `output`: the last upsampling, to RGB, which
    "nearest_output" alone draws by nearest neighbour."""
    if mode == "transpose" or (mode == "nearest_output" and not output):
        return [keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", kernel_initializer=blocks.weight_init(),
            **conv_kwargs)]
    return [NearestUpsamplingConv2D(filters, kernel_initializer=blocks.weight_init(),
                                    **conv_kwargs)]


def generator_widths(image_size, ngf):
    """Channels at 4x4, 8x8, ... up to image_size / 2: ngf*8, ngf*4, ngf*2, ngf, ngf//2."""
    num_upsamplings = int(math.log2(image_size // 4))
    return [ngf * 8 // 2 ** index for index in range(num_upsamplings)]


@keras.saving.register_keras_serializable(package="tf_t2i")
class Generator(keras.Model):
    """G(z, phi(t)): noise and a text embedding to an image in [-1, 1].

    [z, LeakyReLU(Dense(t))] -> 4x4x(ngf*8) + BN -> residual block -> up 8x8x(ngf*4) + BN ->
    residual block -> up (BN, ReLU) ... -> up to 3 channels, tanh.

    Args:
        image_size: output side, 32, 64 or 128 (log2(image_size / 4) upsamplings).
        z_dim: noise dimension (Reed: 100).
        embedding_dim: size of the text embedding (Reed: 1024).
        text_projection_dim: size the embedding is compressed to before concatenation (Reed: 128).
        ngf: width multiplier (Reed: 128).
        upsampling: "transpose" (Reed), "nearest" (nearest neighbour + 3x3 conv) or
            "nearest_output" (transposed convs but the last, to RGB: nearest + 3x3 conv).
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas (TensorFlow
            backend; for distributed training).
        conditioning: "concat" (Reed: [z, t] enters the first layer only) or "affine" (also a
            `ConditionalAffine` on [z, t] after every BatchNorm of the decoder, those inside the
            residual blocks included; DF-GAN's fusion; not in Reed's design) or "attention"
            (a decoder without residual blocks: [z, t] -> 4x4 + BN + `ConditionalAffine` on
            [z, t], then per doubling up + BN + `TokenAttentionAffine` + ReLU + 3x3 conv + BN +
            `TokenAttentionAffine` + ReLU, the attention over the embedding read as
            `text_tokens` tokens, so that each pixel draws from the tokens it attends to).
        text_tokens: with "attention", the number of tokens the embedding is split into
            (embedding_dim / text_tokens values each); ignored otherwise.

    Call args:
        inputs: a pair (z [batch, z_dim], text_embedding [batch, embedding_dim]).
        training: BatchNorm mode.

    Returns:
        float32 [batch, image_size, image_size, 3] in [-1, 1].

    Reference: Reed et al. 2016, section 4.1 (network architecture) and `main_cls_int.lua`.
    """

    def __init__(self, image_size=64, z_dim=100, embedding_dim=1024, text_projection_dim=128,
                 ngf=128, upsampling="transpose", sync_batch_norm=False, conditioning="concat",
                 text_tokens=4, **kwargs):
        super().__init__(**kwargs)
        if image_size not in IMAGE_SIZES:
            raise ValueError(
                f"Generator image_size must be one of {IMAGE_SIZES}, got {image_size}.")
        if upsampling not in UPSAMPLINGS:
            raise ValueError(
                f"Generator upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}.")
        if conditioning not in GENERATOR_CONDITIONINGS:
            raise ValueError(f"Generator conditioning must be one of {GENERATOR_CONDITIONINGS}, "
                             f"got {conditioning!r}.")
        if ngf < 2:
            raise ValueError(f"Generator ngf must be >= 2, got {ngf}.")
        if conditioning == "attention" and (text_tokens < 1 or embedding_dim % text_tokens):
            raise ValueError(f"Generator text_tokens ({text_tokens}) must divide embedding_dim "
                             f"({embedding_dim}) for conditioning='attention'.")
        self.image_size = image_size
        self.z_dim = z_dim
        self.embedding_dim = embedding_dim
        self.text_projection_dim = text_projection_dim
        self.ngf = ngf
        self.upsampling = upsampling
        self.sync_batch_norm = sync_batch_norm
        self.conditioning = conditioning
        self.text_tokens = text_tokens
        norm = {"synchronized": sync_batch_norm}
        conditional = conditioning in ("affine", "attention")

        # Reed projects the text without BatchNorm in G (only a LeakyReLU).
        self.text_projection = keras.Sequential(
            [blocks.dense(text_projection_dim), blocks.leaky_relu()], name="text_projection")

        widths = generator_widths(image_size, ngf)
        if conditioning == "attention":
            layers = _attention_layers(widths, upsampling, norm)
        else:
            # A Dense on [z, t] equals Reed's 4x4 full convolution of a 1x1 input. No activation
            # before the residual blocks: their output ReLU follows the addition.
            layers = [blocks.dense(4 * 4 * widths[0], use_bias=False),
                      keras.layers.Reshape((4, 4, widths[0])),
                      blocks.batch_norm(**norm),
                      ResidualBlock(widths[0], widths[0] // 4, "relu", sync_batch_norm,
                                    conditional),
                      *_upsample(widths[1], upsampling, use_bias=False),
                      blocks.batch_norm(**norm),
                      ResidualBlock(widths[1], widths[1] // 4, "relu", sync_batch_norm,
                                    conditional)]
            for width in widths[2:]:
                layers += [*_upsample(width, upsampling, use_bias=False),
                           blocks.batch_norm(**norm), keras.layers.ReLU()]
        # float32 output layers keep images exact under a mixed precision policy.
        layers += [*_upsample(3, upsampling, output=True, dtype="float32"),
                   keras.layers.Activation("tanh", dtype="float32")]
        if conditional:
            tokens = ((text_tokens, embedding_dim // text_tokens)
                      if conditioning == "attention" else None)
            self.image_decoder = _conditioned_decoder(layers, z_dim + text_projection_dim, tokens)
        else:
            self.image_decoder = keras.Sequential(layers, name="image_decoder")

    def call(self, inputs, training=None):
        z, text_embedding = inputs
        text = self.text_projection(text_embedding, training=training)
        z = keras.ops.cast(z, text.dtype)
        condition = keras.ops.concatenate([z, text], axis=-1)
        if self.conditioning == "attention":
            tokens = keras.ops.reshape(text_embedding, (-1, self.text_tokens,
                                                        self.embedding_dim // self.text_tokens))
            return self.image_decoder((condition, tokens), training=training)
        return self.image_decoder(condition, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, z_dim=self.z_dim,
                      embedding_dim=self.embedding_dim,
                      text_projection_dim=self.text_projection_dim, ngf=self.ngf,
                      upsampling=self.upsampling, sync_batch_norm=self.sync_batch_norm,
                      conditioning=self.conditioning, text_tokens=self.text_tokens)
        return config


def _attention_layers(widths, upsampling, norm):
    """The decoder of conditioning="attention" (see `Generator`) up to, not including, the
    upsampling to RGB: two modulated BatchNorms per resolution from 8x8 on, no residual blocks.
    Residual blocks between the modulations let a generator drawing from a perfect text code
    compose unseen colour pairs about half as often (docs/BENCHMARKS.md, session 15)."""
    layers = [blocks.dense(4 * 4 * widths[0], use_bias=False),
              keras.layers.Reshape((4, 4, widths[0])), blocks.batch_norm(**norm),
              keras.layers.ReLU()]
    for width in widths[1:]:
        layers += [*_upsample(width, upsampling, use_bias=False), blocks.batch_norm(**norm),
                   keras.layers.ReLU(), blocks.conv2d(width, 3), blocks.batch_norm(**norm),
                   keras.layers.ReLU()]
    return layers


def _conditioned_decoder(layers, condition_dim, tokens=None):
    """`layers` as a functional model of the condition [z, t] that also feeds a
    `ConditionalAffine` after every BatchNorm and the (conditional) residual blocks; with
    `tokens` (num_tokens, token_dim), a second input of text tokens feeds a
    `TokenAttentionAffine` instead after every BatchNorm from 8x8 on."""
    condition = keras.Input((condition_dim,), name="condition")
    token_input = None if tokens is None else keras.Input(tokens, name="tokens")
    x = condition
    for layer in layers:
        x = layer((x, condition)) if isinstance(layer, ResidualBlock) else layer(x)
        if isinstance(layer, keras.layers.BatchNormalization):
            if token_input is not None and x.shape[1] >= 8:
                x = TokenAttentionAffine()((x, token_input))
            else:
                x = ConditionalAffine()((x, condition))
    inputs = condition if token_input is None else (condition, token_input)
    return keras.Model(inputs, x, name="image_decoder")
