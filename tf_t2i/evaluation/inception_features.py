"""InceptionV3 pool features and class probabilities, from a weights file the user supplies.

Nothing is downloaded: `keras.applications.InceptionV3(weights=None)` builds the network and the
user's file fills it. Keras's ImageNet files work: the full model
(`inception_v3_weights_tf_dim_ordering_tf_kernels.h5`, which also gives the Inception score) or the
one without the classifier (`..._notop.h5`, FID only), as are `.weights.h5` files saved from
`InceptionV3(...).save_weights`. A file that fits neither is one `UserInputError`.
"""
from __future__ import annotations

import os

import numpy as np

from tf_t2i.errors import UserInputError

#: Input side of the standard protocol (images are resized to it, bilinear).
INCEPTION_SIZE = 299
_BATCH = 50
HOW_TO_GET = ("pass --inception-weights FILE, a Keras InceptionV3 weights file, e.g. "
              "inception_v3_weights_tf_dim_ordering_tf_kernels.h5 from the keras-applications "
              "releases on GitHub, downloaded once by hand")


class InceptionFeatures:
    """InceptionV3 with a user weights file: 2048-d pool features and, with the top, 1000 logits.

    Args:
        weights_path: the weights file (see the module docstring).
        input_size: side the images are resized to (299 in the standard protocol; >= 75; tests
            use less to run fast).

    Attributes:
        has_classifier: the file holds the classifier, so `probabilities` is meaningful.
    """

    def __init__(self, weights_path: str, input_size: int = INCEPTION_SIZE):
        if not os.path.isfile(weights_path):
            raise UserInputError(f"--inception-weights {weights_path} does not exist: "
                                 f"{HOW_TO_GET}.")
        import h5py
        import keras
        if not h5py.is_hdf5(weights_path):
            # Found before building the network twice (seconds) to learn the same.
            raise UserInputError(f"--inception-weights {weights_path} is not a Keras InceptionV3 "
                                 f"weights file (not an HDF5 file): {HOW_TO_GET}.")
        self.weights_path = weights_path
        self.input_size = int(input_size)
        self._features = None
        errors = []
        for include_top in (True, False):
            # Any input of >= 75 px pools to the 2048 features the classifier reads.
            network = keras.applications.InceptionV3(
                weights=None, include_top=include_top, pooling=None if include_top else "avg",
                input_shape=(self.input_size, self.input_size, 3))
            try:
                network.load_weights(weights_path)
            except Exception as error:  # noqa: BLE001 - h5py and Keras raise many types.
                errors.append(str(error).strip().split("\n")[0][:160])
                continue
            self.has_classifier = include_top
            pool = network.get_layer("avg_pool").output
            outputs = [pool, network.get_layer("predictions").output] if include_top else [pool]
            self.network = keras.Model(network.inputs, outputs)
            return
        raise UserInputError(f"--inception-weights {weights_path} is not a Keras InceptionV3 "
                             f"weights file ({errors[-1]}): {HOW_TO_GET}.")

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray | None]:
        """(pool features float64 [N, 2048], class probabilities [N, 1000] or None) of uint8
        images [N, H, W, 3]."""
        import tensorflow as tf
        if self._features is None:
            from keras.applications.inception_v3 import preprocess_input

            def features(batch):
                batch = tf.image.resize(tf.cast(batch, tf.float32),
                                        [self.input_size, self.input_size], method="bilinear")
                outputs = self.network(preprocess_input(batch), training=False)
                return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)

            # A traced graph: about 3x faster than calling the Keras model eagerly on a CPU.
            self._features = tf.function(features, autograph=False, input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8)])
        pools, probabilities = [], []
        for start in range(0, len(images), _BATCH):
            outputs = self._features(tf.constant(np.asarray(images[start:start + _BATCH],
                                                            np.uint8)))
            pools.append(np.asarray(outputs[0], np.float64))
            if self.has_classifier:
                probabilities.append(np.asarray(outputs[1], np.float64))
        return (np.concatenate(pools),
                np.concatenate(probabilities) if self.has_classifier else None)
