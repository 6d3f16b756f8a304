"""BatchNormalization whose synchronised statistics are as exact as one device's.

Keras' `synchronized=True` (TensorFlow backend) all-reduces sum(x) and sum(x^2) and takes
variance = E[x^2] - E[x]^2. Where a channel's mean is large against its spread (DCGAN features
early in training, G's fakes once they turn uniform), that difference cancels catastrophically:
the variance then carries the round-off of E[x^2], which depends on the order of the sums, so
a run on two replicas and a run on one device normalise with variances that differ far beyond
float round-off, and GAN training amplifies it (tests/test_distribution.py). Two passes, the mean
first and then the mean squared deviation from it (what `tf.nn.moments` does on one device),
keep the variance accurate to round-off of the spread itself.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tf_t2i import replica_ops


@keras.saving.register_keras_serializable(package="tf_t2i")
class SynchronizedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization(synchronized=True)` with two-pass global moments.

    In training mode the mean and variance are those of the global batch (every replica's
    rows); outside a strategy they are this batch's, computed the same way.
    """

    def __init__(self, **kwargs):
        kwargs["synchronized"] = True
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        if mask is not None:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        # Statistics in float32 under mixed precision, as Keras' moments compute them.
        values = tf.cast(inputs, tf.float32)
        count = replica_ops.sum_over_replicas(
            tf.reduce_sum(tf.ones_like(values), axis=axes, keepdims=True))
        mean = replica_ops.sum_over_replicas(
            tf.reduce_sum(values, axis=axes, keepdims=True)) / count
        # The variance's derivative in the mean is zero at the mean (as in tf.nn.moments).
        squared = tf.math.squared_difference(values, tf.stop_gradient(mean))
        variance = replica_ops.sum_over_replicas(
            tf.reduce_sum(squared, axis=axes, keepdims=True)) / count
        mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
