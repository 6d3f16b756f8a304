import numpy as np
import pytest

from tf_t2i.config import REED_ALPHABET
from tf_t2i.data.caption_encoder import PAD_ID, UNKNOWN_ID, CaptionEncoder


def test_reed_alphabet_ids():
    encoder = CaptionEncoder()
    # 70 characters with '-' twice: 69 distinct, plus padding and unknown.
    assert len(REED_ALPHABET) == 70
    assert encoder.vocabulary_size == 71
    assert encoder.encode(["a"]).numpy()[0, 0] == 2


def test_round_trip_lowercases_and_pads():
    encoder = CaptionEncoder(length=40)
    captions = ["This flower has PINK petals, and a yellow centre!", "a bird (small)"]
    ids = encoder.encode(captions).numpy()
    assert ids.shape == (2, 40) and ids.dtype == np.int32
    assert encoder.decode(ids) == [c.lower()[:40] for c in captions]
    assert (ids[1, len(captions[1]):] == PAD_ID).all()


def test_unknown_characters_map_to_one_id():
    encoder = CaptionEncoder(length=8)
    ids = encoder.encode(["é€a\tb"]).numpy()[0]
    assert list(ids[:5]) == [UNKNOWN_ID, UNKNOWN_ID, 2, UNKNOWN_ID, 3]


def test_truncation_and_lengths():
    encoder = CaptionEncoder(length=5)
    ids = encoder.encode(["abcdefgh", ""]).numpy()
    assert encoder.decode(ids) == ["abcde", ""]
    assert list(encoder.lengths(["abcdefgh", "", "ü"]).numpy()) == [8, 0, 1]


@pytest.mark.parametrize("length", [16, 201])
def test_encode_inside_tf_function(length):
    import tensorflow as tf

    encoder = CaptionEncoder(length=length)
    graph_encode = tf.function(encoder.encode, input_signature=[tf.TensorSpec([None], tf.string)])
    captions = ["red petals", "blue centre"]
    np.testing.assert_array_equal(graph_encode(tf.constant(captions)), encoder.encode(captions))
