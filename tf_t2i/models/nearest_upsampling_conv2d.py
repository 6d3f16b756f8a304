"""Nearest-neighbour upsampling by 2 and a 3x3 convolution, computed at the input's size."""
import keras
import numpy as np

# Conv2D arguments this layer fixes: a 3x3 "same" convolution, channels last, on the upsampled grid.
_FIXED = ("kernel_size", "strides", "padding", "dilation_rate", "groups", "data_format")


def _transposed_taps():
    """[4, 3] 0/1 matrix: which of the 3x3 kernel's rows (offsets -1, 0, +1 on the upsampled
    grid) make each row of the equivalent 4x4 stride-2 transposed-convolution kernel.

    Upsampled row 2i + a + d is input row i + (a + d) // 2. So output row 2i reads input row
    i - 1 with kernel row -1 and input row i with rows 0 and +1; output row 2i + 1 reads input
    row i with rows -1 and 0 and input row i + 1 with row +1. A "same" 4x4 stride-2 transposed
    convolution gives output row 2i its kernel rows 3 (input i - 1) and 1 (input i), output row
    2i + 1 its rows 2 (input i) and 0 (input i + 1).
    """
    return np.array([[0, 0, 1],   # row 0: input i + 1 for odd outputs: kernel row +1
                     [0, 1, 1],   # row 1: input i for even outputs: rows 0 and +1
                     [1, 1, 0],   # row 2: input i for odd outputs: rows -1 and 0
                     [1, 0, 0]],  # row 3: input i - 1 for even outputs: row -1
                    np.float32)


@keras.saving.register_keras_serializable(package="tf_t2i")
class NearestUpsamplingConv2D(keras.layers.Conv2D):
    """UpSampling2D(2, "nearest") followed by Conv2D(filters, 3, padding="same"), exactly.

    The same kernel [3, 3, in, filters] and bias as that Conv2D, computed as a 4x4 stride-2
    transposed convolution of the input: on the upsampled grid a 3x3 window covers only 2x2
    input pixels, so each output pixel needs 4 products per channel pair instead of 9, and
    the 3x3 kernel folds into the 4x4 one by summing the taps that read the same input pixel
    (`_transposed_taps`). 4/9 of the FLOPs, on CPU kernels that run transposed convolutions
    well: 1.7-3x faster forward and backward than UpSampling2D + Conv2D at the generator's
    shapes (`benchmarks/upsampling_layer.py`, docs/BENCHMARKS.md). Padding matches: the
    upsampled grid's zero border falls on the input grid's zero border.

    Args:
        filters: output channels.
        **kwargs: Conv2D's other arguments (kernel_size, strides, padding, dilation_rate,
            groups and data_format are fixed: 3, 1, "same", 1, 1, "channels_last").

    Call args:
        inputs: [batch, height, width, in].

    Returns:
        [batch, 2 * height, 2 * width, filters].
    """

    def __init__(self, filters, **kwargs):
        for fixed in _FIXED:
            kwargs.pop(fixed, None)
        super().__init__(filters, 3, padding="same", data_format="channels_last", **kwargs)

    def call(self, inputs):
        kernel = keras.ops.cast(self.kernel, self.compute_dtype)
        taps = keras.ops.convert_to_tensor(_transposed_taps(), dtype=self.compute_dtype)
        # [4, 4, filters, in], the layout keras.ops.conv_transpose takes.
        transposed = keras.ops.einsum("td,se,deco->tsoc", taps, taps, kernel)
        outputs = keras.ops.conv_transpose(inputs, transposed, strides=2, padding="same",
                                           data_format="channels_last")
        if self.use_bias:
            outputs = outputs + keras.ops.cast(self.bias, self.compute_dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, None if height is None else 2 * height,
                None if width is None else 2 * width, self.filters)

    def get_config(self):
        config = super().get_config()
        for fixed in _FIXED:
            config.pop(fixed, None)
        return config
