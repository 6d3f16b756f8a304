"""The image side of the joint text/image embedding used to train the text encoder."""
import keras

from tf_t2i.models import blocks


@keras.saving.register_keras_serializable(package="tf_t2i")
class ImageEncoder(keras.Model):
    """A small CNN mapping an image to the joint embedding space.

    Stride-2 4x4 convs (BatchNorm from the second, LeakyReLU 0.2) -> global average pool -> Dense.

    Args:
        filters: widths of the stride-2 convolutions.
        embedding_dim: size of the joint embedding (equal to the text encoder's).
        sync_batch_norm: BatchNorm statistics over the global batch of all replicas.

    Call args:
        inputs: [batch, size, size, 3] float in [-1, 1] (any size divisible by 2**len(filters)).
        training: BatchNorm mode.

    Returns:
        float32 [batch, embedding_dim].

    Reference: Reed et al. 2016, section 3.2 (deep symmetric structured joint embedding). Reed
    pretrains against GoogLeNet features; we train this CNN jointly, as the TensorLayer port does.
    """

    def __init__(self, filters=(64, 128, 256, 512), embedding_dim=1024, sync_batch_norm=False,
                 **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("ImageEncoder filters must name at least one convolution width.")
        self.filters = tuple(filters)
        self.embedding_dim = embedding_dim
        self.sync_batch_norm = sync_batch_norm
        self.body = keras.Sequential(
            [*blocks.downsample_stack(self.filters, sync_batch_norm=sync_batch_norm),
             keras.layers.GlobalAveragePooling2D(),
             blocks.dense(embedding_dim, dtype="float32")], name="body")

    def call(self, inputs, training=None):
        return self.body(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, embedding_dim=self.embedding_dim,
                      sync_batch_norm=self.sync_batch_norm)
        return config
