"""The style encoder S that inverts the generator's noise input."""
import keras

from tf_t2i.models import blocks


@keras.saving.register_keras_serializable(package="tf_t2i")
class StyleEncoder(keras.Model):
    """S(x): predicts the noise z from which G drew image x (its "style": pose, background).

    Stride-2 4x4 convs (BatchNorm from the second, LeakyReLU 0.2) -> flatten -> linear Dense.
    Flattening, not pooling, keeps where things are, which is most of what style means here.

    Args:
        z_dim: noise dimension of the generator.
        filters: widths of the stride-2 convolutions.
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas.

    Call args:
        inputs: [batch, size, size, 3] float in [-1, 1]; the size is fixed by the first call.
        training: BatchNorm mode.

    Returns:
        float32 [batch, z_dim].

    Reference: Reed et al. 2016, section 4.4 (inverting the generator for style transfer, loss
    ||z - S(G(z, phi(t)))||^2) and section 5 (style and content experiments).
    """

    def __init__(self, z_dim=100, filters=(64, 128, 256, 512), sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("StyleEncoder filters must name at least one convolution width.")
        self.z_dim = z_dim
        self.filters = tuple(filters)
        self.sync_batch_norm = sync_batch_norm
        self.body = keras.Sequential(
            [*blocks.downsample_stack(self.filters, sync_batch_norm=sync_batch_norm),
             keras.layers.Flatten(),
             blocks.dense(z_dim, dtype="float32")], name="body")

    def call(self, inputs, training=None):
        return self.body(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(z_dim=self.z_dim, filters=self.filters, sync_batch_norm=self.sync_batch_norm)
        return config
