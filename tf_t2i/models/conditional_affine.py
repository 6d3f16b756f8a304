"""Text-conditioned affine modulation of normalised features (DF-GAN's fusion affine)."""
import keras

from tf_t2i.models import blocks


@keras.saving.register_keras_serializable(package="tf_t2i")
class ConditionalAffine(keras.layers.Layer):
    """x * (1 + delta_gamma(c)) + beta(c), per channel, from a small MLP on a condition c.

    Placed after a BatchNorm, it makes the normalisation's scale and shift depend on the
    condition (conditional BatchNorm / FiLM): the text steers every block of the generator
    instead of entering only its first layer. The MLP's last layer starts at zero, so at
    initialisation the layer is the identity and the generator is the unconditioned one.

    Args:
        hidden_units: width of the MLP's hidden layer (DF-GAN: the channel count); None =
            the input's channel count.

    Call args:
        inputs: a pair (features [batch, height, width, channels],
            condition [batch, condition_dim]).

    Returns:
        [batch, height, width, channels], the features' dtype.

    Reference: Tao et al. 2022, DF-GAN, section 3.3 (deep text-image fusion block, Eq. 1-2);
    Perez et al. 2018 (FiLM).
    """

    def __init__(self, hidden_units=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = hidden_units
        self.hidden = None
        self.modulation = None

    def build(self, input_shape):
        feature_shape, condition_shape = input_shape
        channels = feature_shape[-1]
        hidden_shape = tuple(condition_shape[:-1]) + (self.hidden_units or channels,)
        self.hidden = blocks.dense(self.hidden_units or channels, activation="relu",
                                   name="hidden")
        # Zero kernel and bias: delta_gamma = beta = 0, the identity, at the start.
        self.modulation = keras.layers.Dense(2 * channels, kernel_initializer="zeros",
                                             name="modulation")
        self.hidden.build(condition_shape)
        self.modulation.build(hidden_shape)

    def call(self, inputs):
        features, condition = inputs
        delta_gamma, beta = keras.ops.split(self.modulation(self.hidden(condition)), 2, axis=-1)
        delta_gamma = keras.ops.cast(delta_gamma[:, None, None, :], features.dtype)
        beta = keras.ops.cast(beta[:, None, None, :], features.dtype)
        return features * (1.0 + delta_gamma) + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units)
        return config
