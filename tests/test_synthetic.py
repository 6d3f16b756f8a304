"""Tests of the built-in synthetic flower dataset: shapes, determinism, split, captions, pixels."""
import re

import numpy as np
import pytest

from tf_t2i.config import REED_ALPHABET
from tf_t2i.data import synthetic
from tf_t2i.data.synthetic import load_synthetic
from tf_t2i.errors import UserInputError

PETAL, CENTRE, COUNT, BACKGROUND = range(4)


@pytest.fixture(scope="module")
def small():
    return load_synthetic(image_size=32, images_per_class=3, seed=0)


@pytest.fixture(scope="module")
def medium():
    return load_synthetic(image_size=64, images_per_class=1, seed=0)


def _both(dataset):
    """(images, captions, labels, attributes) of train and test together."""
    return (np.concatenate([dataset.train.images, dataset.test.images]),
            dataset.train.captions + dataset.test.captions,
            np.concatenate([dataset.train.labels, dataset.test.labels]),
            np.concatenate([dataset.train.attributes, dataset.test.attributes]))


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_dtypes_and_ranges(size):
    dataset = load_synthetic(image_size=size, images_per_class=1, seed=0)
    assert dataset.name == "synthetic" and dataset.problems == ()
    assert dataset.attribute_names == ("petal_colour", "centre_colour", "petal_count", "background")
    for split in (dataset.train, dataset.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (size, size, 3)
        assert split.labels.dtype == np.int32 and split.attributes.dtype == np.int32
        assert split.attributes.shape == (len(split), 4)
        assert split.image_paths is None
        assert 0 <= split.labels.min() and split.labels.max() < len(dataset.class_names)
        for column, values in enumerate(dataset.attribute_values):
            assert 0 <= split.attributes[:, column].min()
            assert split.attributes[:, column].max() < len(values)
    images = _both(dataset)[0]
    assert len(images) == len(dataset.class_names)  # one image per class
    assert images.min() < 40 and images.max() > 215  # not washed out


def test_deterministic_and_seed_sensitive(small):
    again = load_synthetic(image_size=32, images_per_class=3, seed=0)
    other = load_synthetic(image_size=32, images_per_class=3, seed=1)
    for name in ("train", "test"):
        split, same, different = (getattr(d, name) for d in (small, again, other))
        assert split.images.tobytes() == same.images.tobytes()
        assert split.captions == same.captions
        np.testing.assert_array_equal(split.attributes, same.attributes)
        assert split.images.tobytes() != different.images.tobytes()
        assert split.captions != different.captions


def test_split_is_class_disjoint_and_covers_every_value(small):
    train_classes, test_classes = set(small.train.class_ids), set(small.test.class_ids)
    assert not train_classes & test_classes
    assert train_classes | test_classes == set(range(len(small.class_names)))
    assert 0.1 <= len(test_classes) / len(small.class_names) <= 0.3
    for column, values in enumerate(small.attribute_values):
        assert set(small.train.attributes[:, column]) == set(range(len(values))), values
    # Test classes are unseen combinations: no train image has a test class's attribute triple.
    train_triples = {tuple(row) for row in small.train.attributes[:, :3]}
    assert not any(tuple(row) in train_triples for row in small.test.attributes[:, :3])


def test_labels_follow_class_attributes(small):
    _, _, labels, attributes = _both(small)
    triples = [tuple(row) for row in attributes[:, :3]]
    label_of = dict(zip(triples, labels))
    assert all(label_of[t] == label for t, label in zip(triples, labels))
    assert len(set(label_of.values())) == len(label_of)  # distinct triples, distinct labels
    colours, counts = small.attribute_values[PETAL], small.attribute_values[COUNT]
    for (petal, centre, count), label in label_of.items():
        assert small.class_names[label] == (
            f"{colours[petal]} petals / {colours[centre]} centre / {counts[count]} petals")


def test_captions_are_distinct_and_in_the_alphabet(small):
    allowed = set(REED_ALPHABET)
    for captions in _both(small)[1]:
        assert len(captions) >= 4
        assert len(set(captions)) == len(captions)
        for caption in captions:
            assert caption.strip() and set(caption.lower()) <= allowed, caption


def _colour_mentions(caption: str) -> set[str]:
    """Colour names a caption mentions, after removing its background words."""
    text = caption.lower()
    for words in synthetic._BACKGROUND_WORDS.values():
        for word in sorted(words, key=len, reverse=True):
            text = re.sub(rf"\b{word}\b (background|backdrop|ground)", " ", text)
    return {colour for colour, words in synthetic._COLOUR_WORDS.items()
            if any(re.search(rf"\b{word}\b", text) for word in words)}


def test_captions_describe_the_image(small):
    _, all_captions, _, attributes = _both(small)
    colours, backgrounds = small.attribute_values[PETAL], small.attribute_values[BACKGROUND]
    mentions = {"petal": [], "centre": [], "count": [], "background": []}
    for captions, row in zip(all_captions, attributes):
        count_words = synthetic._COUNT_WORDS[synthetic._COUNTS[row[COUNT]]]
        background_words = synthetic._BACKGROUND_WORDS[backgrounds[row[BACKGROUND]]]
        for caption in captions:
            found, text = _colour_mentions(caption), caption.lower()
            assert found <= {colours[row[PETAL]], colours[row[CENTRE]]}, caption
            mentions["petal"].append(colours[row[PETAL]] in found)
            mentions["centre"].append(colours[row[CENTRE]] in found)
            mentions["count"].append(any(re.search(rf"\b{w}\b", text) for w in count_words))
            mentions["background"].append(any(w in text for w in background_words))
    rates = {name: np.mean(flags) for name, flags in mentions.items()}
    assert rates["petal"] > 0.95 and rates["centre"] > 0.85 and rates["count"] > 0.75, rates
    assert 0.3 < rates["background"] < 0.7, rates


def _nearest(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette row for each [..., 3] pixel."""
    distances = np.linalg.norm(pixels[..., None, :].astype(np.float32) - palette, axis=-1)
    return distances.argmin(axis=-1)


def test_centre_and_petal_colours_are_visible(small):
    images, _, _, attributes = _both(small)
    size = images.shape[1]
    palette = synthetic._PALETTE
    centre_patch = images[:, size // 2 - 3: size // 2 + 3, size // 2 - 3: size // 2 + 3]
    centre_guess = _nearest(centre_patch.reshape(len(images), -1, 3).mean(axis=1), palette)
    assert np.mean(centre_guess == attributes[:, CENTRE]) > 0.95

    # In a ring around the centre the commonest palette colour (backgrounds compete) is the petals'.
    grid = (np.arange(size) + 0.5) / size - 0.5
    radius = np.hypot(grid[:, None], grid[None, :])
    ring = images[:, (radius > 0.28) & (radius < 0.36)]
    labels = _nearest(ring, np.concatenate([palette, synthetic._BACKGROUND_RGB]))
    counts = np.stack([(labels == k).sum(axis=1) for k in range(len(palette))], axis=1)
    assert np.mean(counts.argmax(axis=1) == attributes[:, PETAL]) > 0.9


def test_petal_count_is_visible(medium):
    images, _, _, attributes = _both(medium)
    size = images.shape[1]
    everything = np.concatenate([synthetic._PALETTE, synthetic._BACKGROUND_RGB])
    angles = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    correct = []
    for image, row in zip(images, attributes):
        # Locate the flower by its centre disc, then walk a circle through the petals.
        ys, xs = np.nonzero(_nearest(image, everything) == row[CENTRE])
        cy, cx = ys.mean(), xs.mean()
        r = 0.32 * size
        py = np.clip(np.round(cy + r * np.sin(angles)).astype(int), 0, size - 1)
        px = np.clip(np.round(cx + r * np.cos(angles)).astype(int), 0, size - 1)
        on_petal = _nearest(image[py, px], everything) == row[PETAL]
        # A circular majority vote over 5 samples removes flicker where the circle grazes an edge.
        on_petal = sum(np.roll(on_petal, shift) for shift in range(-2, 3)) >= 3
        runs = np.sum(on_petal & ~np.roll(on_petal, 1))
        correct.append(runs == synthetic._COUNTS[row[COUNT]])
    assert np.mean(correct) > 0.95


def test_rejects_bad_arguments():
    with pytest.raises(UserInputError, match="image_size"):
        load_synthetic(image_size=4)
    with pytest.raises(UserInputError, match="images_per_class"):
        load_synthetic(images_per_class=0)
