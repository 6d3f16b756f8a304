"""Nearest-neighbour upsampling by 2 and a 3x3 convolution, computed at the input's size."""
import keras
import numpy as np


def _phase_taps():
    """[2, 3, 3] 0/1 matrix: for an output row of parity a, which of the input rows i - 1, i,
    i + 1 each of the 3x3 kernel's rows (offsets -1, 0, +1 on the upsampled grid) reads.

    Upsampled row 2i + a + d is input row (2i + a + d) // 2 = i + (a + d) // 2.
    """
    taps = np.zeros((2, 3, 3), np.float32)
    for parity in (0, 1):
        for tap, offset in enumerate((-1, 0, 1)):
            taps[parity, (parity + offset) // 2 + 1, tap] = 1.0
    return taps


@keras.saving.register_keras_serializable(package="tf_t2i")
class NearestUpsamplingConv2D(keras.layers.Conv2D):
    """UpSampling2D(2, "nearest") followed by Conv2D(filters, 3, padding="same"), exactly.

    The same kernel [3, 3, in, filters] and bias as that Conv2D, but the convolution runs on
    the input grid: each of the four output phases (row and column parity) reads only input
    pixels, so the kernel is folded into a [3, 3, in, 4 * filters] kernel whose four blocks
    hold each phase's summed taps, and the 4 * filters channels are then interleaved into a
    grid twice the size (depth to space). The FLOPs are those of the upsampled convolution,
    but with four times the output channels on a quarter of the pixels, a shape that the CPU
    kernels run faster: about 2x for the 3-channel output layer of the generator (forward
    and backward, docs/BENCHMARKS.md), whose upsampled form spends most of its time in the
    filter gradient of a 3-channel convolution. Padding matches: the upsampled grid's zero
    border falls on the input grid's zero border.

    Args:
        filters: output channels.
        **kwargs: Conv2D's other arguments (kernel_size, strides, padding, dilation_rate and
            groups are fixed: 3, 1, "same", 1, 1).

    Call args:
        inputs: [batch, height, width, in].

    Returns:
        [batch, 2 * height, 2 * width, filters].
    """

    def __init__(self, filters, **kwargs):
        for fixed in ("kernel_size", "strides", "padding", "dilation_rate", "groups"):
            kwargs.pop(fixed, None)
        super().__init__(filters, 3, padding="same", **kwargs)

    def call(self, inputs):
        kernel = keras.ops.cast(self.kernel, self.compute_dtype)
        taps = keras.ops.convert_to_tensor(_phase_taps(), dtype=self.compute_dtype)
        # phases[u, v, c, a, b, o]: input offset (u, v), output phase (a, b).
        phases = keras.ops.einsum("aud,bve,deco->uvcabo", taps, taps, kernel)
        channels = keras.ops.shape(inputs)[-1]
        phases = keras.ops.reshape(phases, (3, 3, channels, 4 * self.filters))
        outputs = keras.ops.conv(inputs, phases, strides=1, padding="same")
        batch, height, width = (keras.ops.shape(outputs)[index] for index in range(3))
        outputs = keras.ops.reshape(outputs, (batch, height, width, 2, 2, self.filters))
        outputs = keras.ops.transpose(outputs, (0, 1, 3, 2, 4, 5))
        outputs = keras.ops.reshape(outputs, (batch, 2 * height, 2 * width, self.filters))
        if self.use_bias:
            outputs = outputs + keras.ops.cast(self.bias, self.compute_dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, None if height is None else 2 * height,
                None if width is None else 2 * width, self.filters)

    def get_config(self):
        config = super().get_config()
        for fixed in ("kernel_size", "strides", "padding", "dilation_rate", "groups"):
            config.pop(fixed, None)
        return config
