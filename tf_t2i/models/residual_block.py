"""The bottleneck residual block of Reed's 64x64 generator and discriminator."""
import keras

from tf_t2i.models import blocks
from tf_t2i.models.conditional_affine import ConditionalAffine

ACTIVATIONS = ("relu", "leaky_relu")


@keras.saving.register_keras_serializable(package="tf_t2i")
class ResidualBlock(keras.layers.Layer):
    """1x1 -> 3x3 -> 3x3 bottleneck (BatchNorm after each) added to its input, then activated.

    Args:
        filters: channels of the input and the output.
        bottleneck_filters: channels of the two inner convolutions (Reed: filters // 4).
        activation: "relu" (generator) or "leaky_relu" (slope 0.2, discriminator).
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas (TensorFlow
            backend).
        conditional: a `ConditionalAffine` after each BatchNorm; the block then takes a
            condition (the generator's `generator_conditioning="affine"`; not in Reed's design).
        spectral_norm: spectral normalisation of the convolutions (`blocks.spectral_norm`).
        batch_norm: False replaces the BatchNorms by identities.

    Call args:
        inputs: [batch, height, width, filters]; with `conditional`, a pair (that,
            condition [batch, condition_dim]).
        training: BatchNorm mode.

    Returns:
        [batch, height, width, filters].

    Reference: Reed et al. 2016, section 4.1; the residual design of reedscot/icml2016's
    `main_cls_int.lua`.
    """

    def __init__(self, filters, bottleneck_filters, activation="relu", sync_batch_norm=False,
                 conditional=False, spectral_norm=False, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"ResidualBlock activation must be one of {ACTIVATIONS}, got {activation!r}.")
        self.filters = filters
        self.bottleneck_filters = bottleneck_filters
        self.activation = activation
        self.sync_batch_norm = sync_batch_norm
        self.conditional = conditional
        self.spectral_norm = spectral_norm
        self.batch_norm = batch_norm
        norm = {"enabled": batch_norm, "synchronized": sync_batch_norm}
        self.reduce = blocks.spectral_norm(blocks.conv2d(bottleneck_filters, 1), spectral_norm)
        self.reduce_norm = blocks.normalization(**norm)
        self.spatial = blocks.spectral_norm(blocks.conv2d(bottleneck_filters, 3), spectral_norm)
        self.spatial_norm = blocks.normalization(**norm)
        self.expand = blocks.spectral_norm(blocks.conv2d(filters, 3), spectral_norm)
        self.expand_norm = blocks.normalization(**norm)
        if conditional:
            self.reduce_affine = ConditionalAffine(name="reduce_affine")
            self.spatial_affine = ConditionalAffine(name="spatial_affine")
            self.expand_affine = ConditionalAffine(name="expand_affine")

    def _activate(self, x):
        if self.activation == "relu":
            return keras.ops.relu(x)
        return keras.ops.leaky_relu(x, negative_slope=0.2)

    def build(self, input_shape):
        if self.conditional:
            input_shape, condition_shape = input_shape
        if input_shape[-1] != self.filters:
            raise ValueError(f"ResidualBlock with filters={self.filters} got {input_shape[-1]} "
                             "input channels: the skip connection needs them equal.")
        bottleneck_shape = tuple(input_shape[:-1]) + (self.bottleneck_filters,)
        self.reduce.build(input_shape)
        self.reduce_norm.build(bottleneck_shape)
        self.spatial.build(bottleneck_shape)
        self.spatial_norm.build(bottleneck_shape)
        self.expand.build(bottleneck_shape)
        self.expand_norm.build(input_shape)
        if self.conditional:
            self.reduce_affine.build((bottleneck_shape, condition_shape))
            self.spatial_affine.build((bottleneck_shape, condition_shape))
            self.expand_affine.build((input_shape, condition_shape))

    def call(self, inputs, training=None):
        condition = None
        if self.conditional:
            inputs, condition = inputs
        # `training` reaches the convolutions for spectral normalisation's power iteration.
        x = self.reduce(inputs, training=training)
        x = self._activate(self._modulate("reduce", x, condition, training))
        x = self._activate(self._modulate("spatial", self.spatial(x, training=training),
                                          condition, training))
        x = self._modulate("expand", self.expand(x, training=training), condition, training)
        return self._activate(inputs + x)

    def _modulate(self, stage, x, condition, training):
        """BatchNorm of one stage, then its `ConditionalAffine` when the block is conditional."""
        x = getattr(self, f"{stage}_norm")(x, training=training)
        if self.conditional:
            x = getattr(self, f"{stage}_affine")((x, condition))
        return x

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.conditional else input_shape

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, bottleneck_filters=self.bottleneck_filters,
                      activation=self.activation, sync_batch_norm=self.sync_batch_norm,
                      conditional=self.conditional, spectral_norm=self.spectral_norm,
                      batch_norm=self.batch_norm)
        return config
