"""QualityMetrics (tf_t2i/evaluation/quality_metrics.py) on fake models whose answers are known.

The built-in dataset at the tiny preset's size; models are stand-ins with the ModelSource
interface, so each metric's known answer (0 diversity, AUC 0.5, FID 0) is exact.
"""
import dataclasses

import numpy as np
import pytest

from tf_t2i.data.synthetic import load_synthetic
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation.inception_features import InceptionFeatures
from tf_t2i.evaluation.quality_metrics import (METRICS, QualityMetrics, count_name,
                                               parse_metric_names)

SIZE = 32


class FakeModel:
    """The ModelSource interface around plain functions."""

    image_size = SIZE
    z_dim = 4

    def __init__(self, draw, styles=None):
        self.draw = draw
        self.style_fn = styles or (lambda images: np.ones((len(images), self.z_dim)))

    def generate_from_noise(self, captions, noise):
        assert noise.shape == (len(captions), self.z_dim)
        return self.draw(captions, noise)

    def styles(self, images):
        return self.style_fn(images)

    def style_transfer(self, images, captions):
        return np.asarray(images)


@pytest.fixture(scope="module")
def dataset():
    return load_synthetic(image_size=SIZE, images_per_class=4, seed=0)


def _caption_colour(captions, noise=None):
    """Images that depend on the caption only (one flat colour per caption), never on z."""
    colours = [np.frombuffer(caption.encode()[:3].ljust(3), np.uint8) for caption in captions]
    return np.stack([np.broadcast_to(c, (SIZE, SIZE, 3)) for c in colours]).copy()


def test_a_generator_that_ignores_z_has_zero_diversity(dataset):
    suite = QualityMetrics(dataset, "test", ["diversity"], SIZE, num_images=80, seed=1)
    entry = suite.evaluate(FakeModel(_caption_colour))["diversity_pixel_l1"]
    assert entry["value"] == 0.0 and entry["ratio"] == 0.0
    assert entry["real"] > 0.05  # real flowers of one class differ in pose and background
    assert (entry["num_images"], entry["seed"], entry["split"]) == (80, 1, "test")


def test_a_generator_that_uses_z_is_diverse(dataset):
    def noisy(captions, noise):
        return np.clip(_caption_colour(captions).astype(int)
                       + (noise[:, :1, None, None] * 60).astype(int), 0, 255).astype(np.uint8)

    entry = QualityMetrics(dataset, "test", ["diversity"], SIZE, num_images=80).evaluate(
        FakeModel(noisy))["diversity_pixel_l1"]
    assert entry["value"] > 0.05


def test_a_constant_style_encoder_verifies_no_style(dataset):
    suite = QualityMetrics(dataset, "test", ["style_verification"], SIZE, num_images=60)
    entry = suite.evaluate(FakeModel(_caption_colour))["style_verification_auc"]
    assert entry["attributes"] == {"background": 0.5, "petal_count": 0.5}
    assert entry["mean"] == 0.5 and entry["pairs"] == 60 * 59 // 2
    fpr, tpr = suite.roc_curves["background"]
    assert list(fpr) == [0, 1] and list(tpr) == [0, 1]


def test_a_style_encoder_that_reads_the_background_verifies_it(dataset):
    from tf_t2i.evaluation.synthetic_attributes import read_attributes

    def background(images):
        return np.eye(4)[read_attributes(images, include_background=True)[:, 3]] + 0.01

    suite = QualityMetrics(dataset, "test", ["style_verification"], SIZE, num_images=60)
    entry = suite.evaluate(FakeModel(_caption_colour, background))["style_verification_auc"]
    assert entry["attributes"]["background"] == 1.0
    assert entry["attributes"]["petal_count"] == pytest.approx(0.5, abs=0.1)


def test_style_transfer_that_keeps_the_source_scores_the_ceiling(dataset):
    suite = QualityMetrics(dataset, "test", ["style_transfer_fidelity"], SIZE, num_images=40)
    entry = suite.evaluate(FakeModel(_caption_colour))["style_transfer_background"]
    assert entry["accuracy"] == entry["real_ceiling"] == 1.0
    assert 0 < entry["chance"] < 1


def test_metrics_without_what_they_need_are_skipped_with_one_line(dataset):
    no_labels = dataclasses.replace(
        dataset, test=dataclasses.replace(dataset.test, attributes=None), attribute_names=())
    suite = QualityMetrics(no_labels, "test", METRICS, SIZE, num_images=30)
    assert suite.names == ("diversity",)
    assert set(suite.skipped) == set(METRICS) - {"diversity"}
    for name, line in suite.skipped.items():
        assert line.startswith(f"{name} skipped: it needs ") and "\n" not in line
    assert "--evaluator" in suite.skipped["r_precision"]
    assert "--inception-weights" in suite.skipped["fid_inception"]
    assert "--format synthetic" in suite.skipped["style_verification"]
    assert set(suite.evaluate(FakeModel(_caption_colour))) == {"diversity_pixel_l1"}


def test_names_and_counts():
    assert parse_metric_names("all") == METRICS
    assert parse_metric_names("diversity, fid_domain") == ("diversity", "fid_domain")
    with pytest.raises(UserInputError, match="unknown metric 'fid'"):
        parse_metric_names("diversity,fid")
    assert [count_name(n) for n in (5000, 1120, 50000, 999)] == ["5k", "1120", "50k", "999"]


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random InceptionV3 weights (with the classifier) at 75 px, the smallest input it takes."""
    import keras
    path = str(tmp_path_factory.mktemp("inception") / "random.weights.h5")
    keras.utils.set_random_seed(0)
    keras.applications.InceptionV3(weights=None, include_top=True,
                                   input_shape=(75, 75, 3)).save_weights(path)
    return path


def test_fid_of_a_set_with_itself_is_zero_and_of_a_shifted_set_is_not(dataset, inception_file):
    inception = InceptionFeatures(inception_file, input_size=75)
    assert inception.has_classifier
    suite = QualityMetrics(dataset, "test", ["fid_inception", "inception_score"], SIZE,
                           num_images=50, inception=inception)
    same = suite.evaluate(FakeModel(lambda captions, noise: suite.real_images()))
    shifted = suite.evaluate(FakeModel(lambda captions, noise: 255 - suite.real_images()))
    assert same["fid_inception_50"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert shifted["fid_inception_50"]["value"] > 1e3 * max(same["fid_inception_50"]["value"],
                                                            1e-9)
    entry = shifted["inception_score_50"]
    assert entry["mean"] >= 1.0 and entry["real_mean"] >= 1.0 and entry["num_images"] == 50


def test_a_wrong_inception_file_is_one_clear_error(tmp_path, inception_file):
    import keras
    text = tmp_path / "weights.h5"
    text.write_text("not weights")
    other = str(tmp_path / "other.weights.h5")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(other)
    for path in (str(text), other):
        with pytest.raises(UserInputError) as error:
            InceptionFeatures(path, input_size=75)
        message = str(error.value)
        assert message.startswith(f"--inception-weights {path} is not a Keras InceptionV3 "
                                  "weights file (") and "\n" not in message
        assert "--inception-weights FILE" in message
    with pytest.raises(UserInputError, match="does not exist"):
        InceptionFeatures(str(tmp_path / "missing.h5"))


class InterpolatingModel(FakeModel):
    """`interpolate(a, b)` shows the real image captioned `a`, then the one captioned `b`:
    switching once at the middle, or back and forth on every frame."""

    def __init__(self, split, alternate):
        super().__init__(_caption_colour)
        self.image_of = {caption: image for captions, image in zip(split.captions, split.images)
                         for caption in captions}
        self.alternate = alternate

    def interpolate(self, caption_a, caption_b, steps, seed):
        t = np.linspace(0.0, 1.0, steps)
        shows_b = (np.arange(steps) % 2 == 1) if self.alternate else t >= 0.5
        shows_b[-1] = True
        frames = [self.image_of[caption_b if b else caption_a] for b in shows_b]
        return np.stack(frames), t


def test_interpolation_monotonicity_tells_a_single_switch_from_jumping_back(dataset):
    suite = QualityMetrics(dataset, "test", ["interpolation_monotonicity"], SIZE, num_images=120)
    switching = suite.evaluate(InterpolatingModel(dataset.test, alternate=False))
    jumping = suite.evaluate(InterpolatingModel(dataset.test, alternate=True))
    switching, jumping = (r["interpolation_monotonicity"] for r in (switching, jumping))
    assert switching["pairs"] == 50 and switching["steps"] == 8
    # Real images read back right almost always: one switch is monotone, with right endpoints.
    assert switching["monotone"] >= 0.95 and switching["endpoints_right"] >= 0.9
    assert jumping["monotone"] <= 0.05 and jumping["endpoints_right"] >= 0.9


def test_is_monotone_change_by_hand():
    from tf_t2i.evaluation.statistics import is_monotone_change
    assert is_monotone_change([1, 1, 4, 2, 2], start_value=1, end_value=2)
    assert is_monotone_change([1, 1, 1], start_value=1, end_value=2)  # never leaves: no jump
    assert not is_monotone_change([1, 2, 1, 2], start_value=1, end_value=2)
    assert not is_monotone_change([1, 3, 1, 2], start_value=1, end_value=2)  # back to the start
    assert not is_monotone_change([1, 2, 3, 2], start_value=1, end_value=2)  # left the end
