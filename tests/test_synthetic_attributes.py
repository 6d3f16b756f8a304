"""Reading synthetic-flower attributes back from pixels, and caption fidelity of a run folder.

Thresholds: on 3360 real images per size (seed 0) the reader scores 100% on every attribute at 32
and 64 px, and >= 99.3% under 1 px blur + 6% shift + colour drift. The tests use a few hundred
images, so 0.97 (real) and 0.95 (degraded) catch any real regression with no flakiness: they are
fixed-seed draws, and a 3% drop means about ten misread images.
"""
import dataclasses

import numpy as np
import pytest

from tests.fixtures import write_untrained_run
from tf_t2i.config import Config, DataConfig, get_preset
from tf_t2i.data import synthetic
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.synthetic import load_synthetic
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation.caption_fidelity import SCORED, attribute_accuracy, caption_mentions
from tf_t2i.evaluation.synthetic_attributes import NUM_VALUES, read_attributes
from tf_t2i.runs import LoadedRun, load_run

ENTRY_KEYS = {"accuracy", "real_ceiling", "chance", "uniform_chance", "accuracy_all_captions",
              "mentioned", "confusion"}


def _all(dataset):
    return (np.concatenate([dataset.train.images, dataset.test.images]),
            np.concatenate([dataset.train.attributes, dataset.test.attributes]))


def _blur(images, sigma):
    """float32 separable Gaussian blur (edge padding) of uint8 [N, S, S, 3]."""
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    x = np.pad(images.astype(np.float32), ((0, 0), (radius, radius), (radius, radius), (0, 0)),
               mode="edge")
    size = images.shape[1]
    x = sum(k * x[:, i:i + size] for i, k in enumerate(kernel))
    return sum(k * x[:, :, i:i + size] for i, k in enumerate(kernel))


def _degrade(images, rng):
    """Like a generator's output: 1 px blur (at 32 px), shifted up to 6%, colours drifted."""
    n, size = images.shape[:2]
    x = _blur(images, size / 32)
    out = np.empty_like(x)
    shifts = np.round(rng.uniform(-0.06, 0.06, (n, 2)) * size).astype(int)
    pad = np.abs(shifts).max()
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    for i, (dy, dx) in enumerate(shifts):
        out[i] = padded[i, pad + dy:pad + dy + size, pad + dx:pad + dx + size]
    out = (out * rng.uniform(0.9, 1.1, (n, 1, 1, 3)) + rng.uniform(-15, 15, (n, 1, 1, 3))
           + rng.normal(0, 6, out.shape))
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [32, 64])
def test_reads_real_and_degraded_images(size):
    images, truth = _all(load_synthetic(image_size=size, images_per_class=2, seed=5))
    read = read_attributes(images, include_background=True)
    assert read.dtype == np.int32 and read.shape == (len(images), 4)
    accuracy = (read == truth).mean(axis=0)
    assert np.all(accuracy >= 0.97), accuracy
    np.testing.assert_array_equal(read_attributes(images), read[:, :3])

    degraded = read_attributes(_degrade(images, np.random.default_rng(0)), include_background=True)
    accuracy = (degraded == truth).mean(axis=0)
    assert np.all(accuracy >= 0.95), accuracy


def test_random_images_read_at_chance():
    rng = np.random.default_rng(0)
    n = 400
    noise = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    blobs = np.clip(_blur(noise, 2.0) * 4 - 384, 0, 255).astype(np.uint8)  # smooth colour blobs
    for images in (noise, blobs):
        read = read_attributes(images, include_background=True)
        for column, num_values in enumerate(NUM_VALUES):
            assert 0 <= read[:, column].min() and read[:, column].max() < num_values
            # Truth drawn independently and uniformly: expected accuracy is exactly 1 / K for any
            # reader; 4 standard deviations of slack (~0.07-0.09).
            truth = rng.integers(0, num_values, n)
            chance = 1 / num_values
            assert abs(np.mean(read[:, column] == truth) - chance) < 4 * np.sqrt(chance / n)


def test_rejects_non_images():
    with pytest.raises(ValueError, match="S >= 16"):
        read_attributes(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        read_attributes(np.zeros((32, 32, 3), np.uint8))


def test_caption_mentions():
    red, blue, white = (synthetic.COLOUR_NAMES.index(c) for c in ("red", "blue", "white"))
    sky, black = (synthetic.BACKGROUND_NAMES.index(b) for b in ("sky blue", "black"))
    three = synthetic.COUNT_NAMES.index("three")
    # "blue" only in the background phrase: the centre colour is not mentioned.
    assert caption_mentions("A flower with 3 scarlet petals on a pale blue background.",
                            (red, blue, three, sky)) == (True, False, True, True)
    assert caption_mentions("the petals of this flower are ivory and the core is cobalt",
                            (white, blue, three, black)) == (True, True, False, False)
    assert caption_mentions("a three-petaled red flower with a blue centre on jet black ground",
                            (red, blue, three, black)) == (True, True, True, True)
    # Over the dataset, mentions follow the templates (see tests/test_synthetic.py).
    dataset = load_synthetic(image_size=32, images_per_class=1, seed=0)
    flags = np.array([caption_mentions(c, row) for captions, row in
                      zip(dataset.train.captions, dataset.train.attributes) for c in captions])
    rates = flags.mean(axis=0)
    assert rates[0] > 0.95 and rates[1] > 0.85 and rates[2] > 0.75 and 0.3 < rates[3] < 0.7, rates


class _ReplayGenerator:
    """A stand-in generator: draws the real image of the caption (or always one image)."""

    z_dim = 3

    def __init__(self, split, encoder, ignore_caption=False):
        ids = encoder.encode([c for captions in split.captions for c in captions]).numpy()
        owners = [i for i, captions in enumerate(split.captions) for _ in captions]
        self.image_of = {row.tobytes(): split.images[i] for row, i in zip(ids, owners)}
        self.ignore_caption = ignore_caption
        self.constant = split.images[0]

    def __call__(self, inputs, training=False):
        z, ids = inputs
        assert z.shape[1] == self.z_dim and not training
        images = [self.constant if self.ignore_caption else self.image_of[row[0].tobytes()]
                  for row in ids]
        return np.stack(images).astype(np.float32) / 127.5 - 1.0


def _replay_run(split_name, ignore_caption=False):
    config = get_preset("tiny")
    data = config.data
    dataset = load_synthetic(data.image_size, data.synthetic_images_per_class, data.seed)
    encoder = CaptionEncoder(data.alphabet, data.caption_length)
    generator = _ReplayGenerator(getattr(dataset, split_name), encoder, ignore_caption)
    return LoadedRun(config, encoder, generator, {"step": 0})


def _check_result(result, split, captions, per_caption):
    assert result["split"] == split and result["num_captions"] == captions
    assert result["images_per_caption"] == per_caption
    assert set(result["attributes"]) == set(SCORED)
    for name, entry in result["attributes"].items():
        assert set(entry) == ENTRY_KEYS, name
        assert 0 < entry["mentioned"] <= captions
        for key in ("accuracy", "real_ceiling", "chance", "uniform_chance",
                    "accuracy_all_captions"):
            assert 0.0 <= entry[key] <= 1.0, (name, key, entry[key])
        assert np.sum(entry["confusion"]) == entry["mentioned"] * per_caption
    assert set(result["speckle"]) == {"energy_ratio", "noise_like"}
    assert result["speckle"]["energy_ratio"] > 0 and 0 <= result["speckle"]["noise_like"] <= 1


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_perfect_generator_scores_the_ceiling(split):
    result = attribute_accuracy(_replay_run(split), split, images_per_caption=2, max_captions=60)
    _check_result(result, split, 60, 2)
    for name, entry in result["attributes"].items():
        assert entry["accuracy"] == entry["real_ceiling"] >= 0.95, name
    # It draws the real images themselves: as smooth as the data, nothing noise-like.
    assert result["speckle"] == {"energy_ratio": 1.0, "noise_like": 0.0}


def test_a_generator_that_ignores_the_caption_scores_chance():
    result = attribute_accuracy(_replay_run("test", ignore_caption=True), "test",
                                images_per_caption=1, max_captions=200)
    for name, entry in result["attributes"].items():
        # One image for every caption: the read value is constant, so accuracy == chance.
        assert entry["accuracy"] == pytest.approx(entry["chance"]), name
        assert entry["accuracy"] < 0.5, name


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(run folder, its LoadedRun) with untrained weights (run_training's first traced step alone
    takes longer than this file should)."""
    return write_untrained_run(str(tmp_path_factory.mktemp("fidelity") / "run"),
                               get_preset("tiny"))


def test_attribute_accuracy_on_a_run_folder(tiny_run):
    run_dir, run = tiny_run
    seen = attribute_accuracy(run, "train", images_per_caption=2, max_captions=24)
    _check_result(seen, "train", 24, 2)
    unseen = attribute_accuracy(run, "test", images_per_caption=2, max_captions=24)
    _check_result(unseen, "test", 24, 2)
    # Fixed seed: same captions, same noise, same numbers (also after saving and loading).
    assert attribute_accuracy(load_run(run_dir), "test", images_per_caption=2,
                              max_captions=24) == unseen


def test_rejects_bad_runs_and_arguments():
    with pytest.raises(UserInputError, match="does not exist"):
        attribute_accuracy("/nonexistent/run", "test")  # a path goes through load_run
    with pytest.raises(UserInputError, match="split"):
        attribute_accuracy(_replay_run("test"), "val")
    with pytest.raises(UserInputError, match=">= 1"):
        attribute_accuracy(_replay_run("test"), "test", images_per_caption=0)
    reed = dataclasses.replace(_replay_run("test"),
                               config=Config(data=DataConfig(format="reed", path="/x")))
    with pytest.raises(UserInputError, match="synthetic"):
        attribute_accuracy(reed, "test")
