import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_t2i.config import DataConfig
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.dataset_index import Split
from tf_t2i.data.pipeline import (encode_split_captions, make_eval_dataset, make_train_dataset,
                                  wrong_partners)

CONFIG = DataConfig(image_size=32, batch_size=8, caption_length=32, captions_per_image=4,
                    shuffle_buffer=64, seed=3)


def make_split(num_images=40, num_classes=5):
    """Images whose pixels encode their index; captions that name their image."""
    images = np.zeros([num_images, 32, 32, 3], np.uint8)
    images[..., 0] = np.arange(num_images)[:, None, None] * 5
    captions = tuple(tuple(f"img {i} cap {j}" for j in range(1 + i % 6)) for i in range(num_images))
    labels = (np.arange(num_images) % num_classes).astype(np.int32)
    return Split(captions=captions, labels=labels, images=images)


def take(dataset, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


def image_index(caption_ids, encoder):
    return int(encoder.decode(caption_ids[None])[0].split()[1])


def test_batches_have_static_shapes_and_ranges():
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    dataset = make_train_dataset(make_split(), CONFIG, encoder)
    spec = dataset.element_spec
    assert spec["images"].shape == (8, 32, 32, 3) and spec["images"].dtype == tf.float32
    assert spec["captions"].shape == (8, 4, 32) and spec["captions"].dtype == tf.int32
    assert spec["wrong_indices"].shape == (8,) and spec["wrong_indices"].dtype == tf.int32
    batch = take(dataset, 1)[0]
    assert batch["images"].min() >= -1.0 and batch["images"].max() <= 1.0


def test_captions_belong_to_their_image_and_wrong_ones_to_another_class():
    split = make_split()
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    for batch in take(make_train_dataset(split, CONFIG, encoder), 20):
        assert (batch["labels"] != batch["wrong_labels"]).all()
        for b in range(CONFIG.batch_size):
            # The red channel still holds the image index after resize, crop and flip.
            index = int(round((batch["images"][b, ..., 0].mean() + 1) * 127.5 / 5))
            owners = {image_index(c, encoder) for c in batch["captions"][b]}
            assert owners == {index}
            assert split.labels[index] == batch["labels"][b]
            wrong_captions = batch["captions"][batch["wrong_indices"][b]]
            wrong_owners = {image_index(c, encoder) for c in wrong_captions}
            assert len(wrong_owners) == 1
            assert split.labels[wrong_owners.pop()] == batch["wrong_labels"][b]


def test_k_captions_are_distinct_when_the_image_has_enough():
    split = make_split()
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    for batch in take(make_train_dataset(split, CONFIG, encoder), 10):
        for captions in batch["captions"]:
            index = image_index(captions[0], encoder)
            texts = encoder.decode(captions)
            if len(split.captions[index]) >= 4:
                assert len(set(texts)) == 4
            assert set(texts) <= set(split.captions[index])


def test_stream_is_deterministic_and_resumes_at_any_step():
    split = make_split()
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    full = take(make_train_dataset(split, CONFIG, encoder), 12)
    again = take(make_train_dataset(split, CONFIG, encoder), 12)
    resumed = take(make_train_dataset(split, CONFIG, encoder, start_step=7), 5)
    other_seed = take(make_train_dataset(split, dataclasses.replace(CONFIG, seed=4), encoder), 1)
    for a, b in zip(full, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # Step 7 crosses from epoch 1 (steps 0-4) into epoch 2.
    for a, b in zip(full[7:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(full[0]["images"], other_seed[0]["images"])


def test_each_epoch_visits_every_image_once():
    split = make_split(num_images=40)
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    seen = [image_index(b["captions"][i, 0], encoder) for b in take(make_train_dataset(
        split, CONFIG, encoder), 5) for i in range(8)]
    assert sorted(seen) == list(range(40))


def test_decodes_files_of_any_mode(tmp_path):
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA", "P", "CMYK"]):
        image = Image.new("RGB", (40, 30), (200, 30, 40)).convert(mode)
        path = tmp_path / f"img{i}.{'jpg' if mode in ('CMYK', 'L') else 'png'}"
        image.save(path)
        paths.append(str(path))
    split = Split(captions=tuple((f"img {i} x",) for i in range(5)),
                  labels=np.arange(5, dtype=np.int32), image_paths=tuple(paths))
    config = dataclasses.replace(CONFIG, batch_size=5)
    batch = take(make_eval_dataset(split, config, CaptionEncoder(length=32)), 1)[0]
    assert batch["images"].shape == (5, 32, 32, 3)
    pixels = (batch["images"][:, 16, 16] + 1) * 127.5
    np.testing.assert_allclose(pixels[[0, 2, 3, 4]], [[200, 30, 40]] * 4, atol=24)  # palette quantisation, JPEG loss
    assert np.ptp(pixels[1]) < 1  # grayscale becomes three equal channels


def test_eval_dataset_keeps_order_and_the_last_partial_batch():
    split = make_split(num_images=10)
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    batches = take(make_eval_dataset(split, CONFIG, encoder), 5)
    assert [len(b["labels"]) for b in batches] == [8, 2]
    order = [image_index(b["captions"][i, 0], encoder) for b in batches for i in range(len(b["labels"]))]
    assert order == list(range(10))


def test_encode_split_captions_layout():
    split = make_split(num_images=3)
    ids, counts = encode_split_captions(split, CaptionEncoder(length=16))
    assert ids.shape == (3, 3, 16) and ids.dtype == np.uint8
    assert list(counts) == [1, 2, 3]
    assert (ids[0, 1:] == 0).all() and (ids[2, 2] != 0).any()


def test_wrong_partners_fall_back_within_a_single_class_batch():
    partners = wrong_partners(tf.zeros([6], tf.int32), tf.constant([1, 2], tf.int64)).numpy()
    assert (partners != np.arange(6)).all()


def test_too_small_split_is_a_clear_error():
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    with pytest.raises(ValueError, match="lower the batch size"):
        make_train_dataset(make_split(num_images=4), CONFIG, encoder)


def test_stream_does_not_depend_on_the_global_seed():
    import keras

    split = make_split()
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    keras.utils.set_random_seed(0)
    first = take(make_train_dataset(split, CONFIG, encoder), 2)
    keras.utils.set_random_seed(123)
    second = take(make_train_dataset(split, CONFIG, encoder), 2)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["images"], b["images"])


def epoch_images(config, split, encoder, epochs):
    """Per epoch, the image indices of each batch, in stream order."""
    steps = len(split) // config.batch_size
    return [[[image_index(ids[0], encoder) for ids in batch["captions"]]
             for batch in take(make_train_dataset(split, config, encoder,
                                                  start_step=epoch * steps), steps)]
            for epoch in range(epochs)]


def test_whole_split_shuffle_mixes_images_of_different_blocks():
    """With a shuffle setting of one batch, the old block-local shuffle kept every batch inside
    one fixed block of 8 cached images forever; the whole-split shuffle mixes every image with
    more than a block's worth of partners within two epochs."""
    config = dataclasses.replace(CONFIG, shuffle_buffer=8)
    split = make_split(num_images=64)
    encoder = CaptionEncoder(length=config.caption_length)
    epochs = epoch_images(config, split, encoder, epochs=2)
    for batches in epochs:
        assert sorted(i for batch in batches for i in batch) == list(range(64))
    assert epochs[0] != epochs[1]
    # Blocks of the split's order (and of any fixed order): some batch spans several.
    block = {i: i // config.shuffle_buffer for i in range(64)}
    assert any(len({block[i] for i in batch}) > 1 for batch in epochs[0])
    partners = {i: set() for i in range(64)}
    for batch in epochs[0] + epochs[1]:
        for i in batch:
            partners[i] |= set(batch) - {i}
    assert min(len(p) for p in partners.values()) > config.shuffle_buffer - 1


def test_stream_does_not_depend_on_the_shuffle_setting():
    """The whole split is permuted in memory: the buffer setting changes neither the order nor
    the memory."""
    split = make_split()
    encoder = CaptionEncoder(length=CONFIG.caption_length)
    small = take(make_train_dataset(split, dataclasses.replace(CONFIG, shuffle_buffer=2),
                                    encoder), 6)
    large = take(make_train_dataset(split, dataclasses.replace(CONFIG, shuffle_buffer=10**6),
                                    encoder), 6)
    for a, b in zip(small, large):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_caption_ids_are_wide_enough_for_any_alphabet():
    """An alphabet of 300 characters has ids up to 301: uint8 would wrap them."""
    alphabet = "".join(chr(0x4E00 + i) for i in range(300))
    encoder = CaptionEncoder(alphabet=alphabet, length=4)
    split = Split(captions=((alphabet[-2:], alphabet[:1]),), labels=np.zeros([1], np.int32),
                  images=np.zeros([1, 8, 8, 3], np.uint8))
    ids, counts = encode_split_captions(split, encoder)
    assert ids.dtype == np.uint16 and counts.tolist() == [2]
    np.testing.assert_array_equal(ids[0], [[300, 301, 0, 0], [2, 0, 0, 0]])
    assert encode_split_captions(make_split(2), CaptionEncoder(length=4))[0].dtype == np.uint8
