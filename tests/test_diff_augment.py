"""DiffAugment translation against hand-shifted arrays; gradients flow through it."""
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i.diff_augment import max_translation, translate


def hand_translate(images, shifts):
    out = np.zeros_like(images)
    batch, height, width = images.shape[:3]
    for n in range(batch):
        for i in range(height):
            for j in range(width):
                source_i, source_j = i + shifts[n][0], j + shifts[n][1]
                if 0 <= source_i < height and 0 <= source_j < width:
                    out[n, i, j] = images[n, source_i, source_j]
    return out


def test_max_translation_is_an_eighth_of_the_side():
    assert [max_translation(size) for size in (32, 64, 128, 4)] == [4, 8, 16, 1]


def test_zero_shift_is_the_identity_and_shapes_are_kept():
    images = np.random.default_rng(0).normal(size=(3, 8, 6, 3)).astype(np.float32)
    out = translate(images, np.zeros((3, 2), np.int32))
    assert tuple(out.shape) == images.shape
    np.testing.assert_array_equal(out.numpy(), images)


def test_each_image_moves_by_its_own_shift_with_zero_padding():
    images = np.random.default_rng(1).normal(size=(4, 8, 6, 3)).astype(np.float32)
    shifts = np.array([[1, -2], [0, 3], [-4, 0], [8, 8]], np.int32)
    np.testing.assert_array_equal(translate(images, shifts).numpy(),
                                  hand_translate(images, shifts))
    # A shift beyond the side leaves nothing.
    assert not translate(images, shifts).numpy()[3].any()


def test_gradient_reaches_the_pixels_that_stay_in_view():
    images = tf.constant(np.ones((1, 5, 5, 1), np.float32))
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(translate(images, tf.constant([[2, -1]])))
    gradient = tape.gradient(total, images).numpy()[0, :, :, 0]
    # out[i, j] = in[i + 2, j - 1]: input rows 2..4 and columns 0..3 are seen once.
    expected = np.zeros((5, 5), np.float32)
    expected[2:, :4] = 1.0
    np.testing.assert_array_equal(gradient, expected)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_translation_keeps_a_mixed_precision_dtype(dtype):
    images = tf.cast(tf.reshape(tf.range(2 * 4 * 4 * 3), (2, 4, 4, 3)), dtype)
    out = translate(images, tf.constant([[1, 1], [0, 0]]))
    assert out.dtype == dtype
    np.testing.assert_array_equal(tf.cast(out, tf.float32).numpy(),
                                  hand_translate(tf.cast(images, tf.float32).numpy(),
                                                 [[1, 1], [0, 0]]))
