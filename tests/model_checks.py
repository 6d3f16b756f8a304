"""Reusable checks for every model and layer (keras-hub style).

`assert_model_checks` builds a model from kwargs, checks its output, round-trips its config through
JSON and `from_config`, and round-trips its weights through `save_weights`/`load_weights`.
"""
import json

import keras
import numpy as np
import tensorflow as tf


def _as_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _same_values(config, kwargs):
    """True when the config holds every constructor argument (tuples may come back as lists)."""
    return all(
        tuple(config[key]) == tuple(value) if isinstance(value, (tuple, list))
        else config[key] == value
        for key, value in kwargs.items())


def assert_model_checks(cls, init_kwargs, inputs, expected_shape, tmp_path, output_range=None,
                        expected_dtype="float32"):
    """Builds `cls(**init_kwargs)`, calls it on `inputs` and checks shape, dtype, values, config
    and weights round-trips (`save_weights`/`load_weights` for models, `set_weights` for layers,
    and `tf.train.Checkpoint`). Returns the built model.

    Args:
        cls: a keras.Model or keras.layers.Layer subclass.
        init_kwargs: constructor kwargs.
        inputs: what the model is called with (a tensor or a tuple of tensors).
        expected_shape: the output shape.
        tmp_path: a folder for the weights file.
        output_range: optional (low, high) every output value must lie in.
        expected_dtype: the output dtype.
    """
    model = cls(**init_kwargs)
    outputs = model(inputs, training=False)
    assert tuple(outputs.shape) == tuple(expected_shape)
    assert keras.backend.standardize_dtype(outputs.dtype) == expected_dtype
    values = _as_numpy(outputs)
    assert np.all(np.isfinite(values))
    if output_range is not None:
        assert values.min() >= output_range[0] and values.max() <= output_range[1]
    assert model.weights, "the model has no weights after its first call"

    config = model.get_config()
    assert _same_values(config, init_kwargs), (config, init_kwargs)
    clone = cls.from_config(json.loads(json.dumps(config)))
    clone(inputs, training=False)
    assert clone.get_config() == config
    assert len(clone.weights) == len(model.weights)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]

    if isinstance(model, keras.Model):
        path = str(tmp_path / f"{cls.__name__}.weights.h5")
        model.save_weights(path)
        clone.load_weights(path)
    else:  # plain layers have no save_weights
        clone.set_weights(model.get_weights())
    for original, restored in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(_as_numpy(original), _as_numpy(restored))
    np.testing.assert_allclose(_as_numpy(clone(inputs, training=False)), values, rtol=1e-5,
                               atol=1e-6)
    _check_tf_checkpoint_sees_every_variable(model, tmp_path)
    return model


def _check_tf_checkpoint_sees_every_variable(model, tmp_path):
    """tf.train.Checkpoint silently skips layers kept in Python lists: count what it saves."""
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "tf_checkpoint" / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path)
             if name.startswith("model/") and name.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(model.weights), (len(saved), len(model.weights))
