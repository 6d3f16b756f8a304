"""The bottleneck residual block of Reed's 64x64 generator and discriminator."""
import keras

from tf_t2i.models import blocks

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

    Call args:
        inputs: [batch, height, width, filters].
        training: BatchNorm mode.

    Returns:
        [batch, height, width, filters].

    Reference: Reed et al. 2016, section 4.1; the residual design of reedscot/icml2016's
    `main_cls_int.lua`.
    """

    def __init__(self, filters, bottleneck_filters, activation="relu", sync_batch_norm=False,
                 **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"ResidualBlock activation must be one of {ACTIVATIONS}, got {activation!r}.")
        self.filters = filters
        self.bottleneck_filters = bottleneck_filters
        self.activation = activation
        self.sync_batch_norm = sync_batch_norm
        self.reduce = blocks.conv2d(bottleneck_filters, 1)
        self.reduce_norm = blocks.batch_norm(synchronized=sync_batch_norm)
        self.spatial = blocks.conv2d(bottleneck_filters, 3)
        self.spatial_norm = blocks.batch_norm(synchronized=sync_batch_norm)
        self.expand = blocks.conv2d(filters, 3)
        self.expand_norm = blocks.batch_norm(synchronized=sync_batch_norm)

    def _activate(self, x):
        if self.activation == "relu":
            return keras.ops.relu(x)
        return keras.ops.leaky_relu(x, negative_slope=0.2)

    def build(self, input_shape):
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

    def call(self, inputs, training=None):
        x = self._activate(self.reduce_norm(self.reduce(inputs), training=training))
        x = self._activate(self.spatial_norm(self.spatial(x), training=training))
        x = self.expand_norm(self.expand(x), training=training)
        return self._activate(inputs + x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, bottleneck_filters=self.bottleneck_filters,
                      activation=self.activation, sync_batch_norm=self.sync_batch_norm)
        return config
