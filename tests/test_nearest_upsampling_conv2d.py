"""NearestUpsamplingConv2D computes UpSampling2D(2) + Conv2D(3x3, same) exactly."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i.models.nearest_upsampling_conv2d import NearestUpsamplingConv2D


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _pair(filters, use_bias=True):
    """The layer and the upsampled Conv2D it replaces, with the same random weights."""
    layer = NearestUpsamplingConv2D(filters, use_bias=use_bias,
                                    kernel_initializer="random_normal",
                                    bias_initializer="random_normal")
    reference = keras.layers.Conv2D(filters, 3, padding="same", use_bias=use_bias)
    return layer, reference


@pytest.mark.parametrize("height, width, channels, filters", [(5, 7, 4, 3), (1, 1, 2, 6),
                                                              (4, 4, 8, 12)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_equals_upsampling_then_convolution(height, width, channels, filters, use_bias):
    inputs = _normal(3, height, width, channels)
    layer, reference = _pair(filters, use_bias)
    outputs = layer(inputs)
    reference.build((None, 2 * height, 2 * width, channels))
    reference.set_weights(layer.get_weights())
    expected = reference(keras.layers.UpSampling2D(2)(inputs))
    assert outputs.shape == (3, 2 * height, 2 * width, filters)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    assert [w.shape for w in layer.weights] == [w.shape for w in reference.weights]


def test_gradients_equal_those_of_upsampling_then_convolution():
    inputs = tf.constant(_normal(2, 4, 6, 5))
    layer, reference = _pair(3)
    layer(inputs)
    reference.build((None, 8, 12, 5))
    reference.set_weights(layer.get_weights())
    upsample = keras.layers.UpSampling2D(2)
    gradients = []
    for model in (layer, lambda x: reference(upsample(x))):
        variables = layer.trainable_weights if model is layer else reference.trainable_weights
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.sin(model(inputs)))
        gradients.append(tape.gradient(loss, [inputs, *variables]))
    for ours, expected in zip(*gradients):
        np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_config_round_trip_and_output_shape():
    layer = NearestUpsamplingConv2D(7, use_bias=False, name="up")
    config = layer.get_config()
    assert "kernel_size" not in config and config["filters"] == 7
    clone = NearestUpsamplingConv2D.from_config(config)
    assert (clone.filters, clone.kernel_size, clone.padding, clone.use_bias) == (
        7, (3, 3), "same", False)
    assert clone.compute_output_shape((None, 4, 5, 2)) == (None, 8, 10, 7)


def test_computes_in_the_policy_dtype():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = NearestUpsamplingConv2D(3)
        outputs = layer(_normal(1, 2, 2, 4))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert outputs.dtype == "bfloat16" and layer.kernel.dtype == "float32"
