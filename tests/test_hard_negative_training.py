"""Hard negative captions in the train step: the matching loss's extra negative and D's wrong
texts (train.hard_negative_weight, train.hard_negative_wrong_fraction); off, nothing changes."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i import gan as gan_module
from tf_t2i import losses
from tf_t2i.config import get_preset
from tf_t2i.data.attribute_words import attribute_words
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.runs import build_gan

TINY = get_preset("tiny")
CONFIG = dataclasses.replace(TINY, data=dataclasses.replace(TINY.data,
                                                            synthetic_images_per_class=1))
ON = {"hard_negative_weight": 2.0, "hard_negative_wrong_fraction": 0.5}
MODELS = ("text_encoder", "image_encoder", "generator", "discriminator", "style_encoder")


@pytest.fixture(scope="module")
def encoder():
    return CaptionEncoder(CONFIG.data.alphabet, CONFIG.data.caption_length)


@pytest.fixture(scope="module")
def batch(encoder):
    """A batch with hard negatives; the built-in captions all name colours."""
    split = load_dataset(CONFIG.data).train
    words = attribute_words(split, CONFIG.data)
    return next(iter(make_train_dataset(split, CONFIG.data, encoder, attribute_words=words)))


def make_gan(encoder, config=CONFIG, **train_overrides):
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   **train_overrides))
    return build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)


@pytest.mark.parametrize("name", ["cub64", "flowers64", "tiny"])
def test_reeds_presets_leave_hard_negatives_off(name):
    config = get_preset(name)
    assert config.train.hard_negative_weight == 0.0
    assert config.train.hard_negative_wrong_fraction == 0.0
    assert config.train.hard_negative_check_weight == 0.0
    assert config.train.generator_matching_weight == 0.0
    assert config.train.recombined_text_weight == 0.0
    assert not config.train.hard_negatives and config.data.attribute_words == ""


@pytest.mark.parametrize("name", ["default", "flowers64-plus", "cub64-plus"])
def test_the_default_preset_uses_hard_negatives_found_in_its_captions(name):
    """What measured best in the ablation (docs/BENCHMARKS.md); no user word list."""
    config = get_preset(name)
    assert (config.train.hard_negative_weight, config.train.hard_negative_wrong_fraction) == (
        5.0, 0.5)
    assert config.train.hard_negatives and config.data.attribute_words == ""


@pytest.mark.parametrize("name", [
    "tiny", pytest.param("flowers64", marks=pytest.mark.slow)])  # flowers64: 20 s to build
def test_models_are_the_same_with_the_options_on_or_off(name):
    """The options add no layer or variable to Reed's design (`flowers64`)."""
    config = get_preset(name)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    shapes = []
    for options in ({}, ON):
        keras.backend.clear_session()  # Layer names restart, so the two builds compare.
        gan = make_gan(encoder, config, **options)
        shapes.append({v.path: tuple(v.shape)
                       for model in MODELS for v in getattr(gan, model).variables})
    assert shapes[0] == shapes[1] and len(shapes[0]) > 50


def test_off_the_train_step_ignores_the_negatives(encoder, batch, monkeypatch):
    """Options off, on a batch that carries negatives: the encoder step gets none, D's wrong
    texts are the partners' captions (GAN-CLS as before), and no hard negative loss."""
    gan = make_gan(encoder)
    seen = {}
    encoder_step, discriminator_step = gan._encoder_step, gan._discriminator_step

    def encoder_spy(images, captions, labels, hard_negative_captions=None):
        seen["negatives"] = hard_negative_captions
        return encoder_step(images, captions, labels, hard_negative_captions)

    def discriminator_spy(images, embeddings, wrong_embeddings, **options):
        seen.update(right=embeddings.numpy(), wrong=wrong_embeddings.numpy())
        return discriminator_step(images, embeddings, wrong_embeddings, **options)

    monkeypatch.setattr(gan, "_encoder_step", encoder_spy)
    monkeypatch.setattr(gan, "_discriminator_step", discriminator_spy)
    logs = gan.train_step(batch)
    assert seen["negatives"] is None and float(logs["hard_negative_loss"]) == 0.0
    np.testing.assert_array_equal(seen["wrong"], seen["right"][batch["wrong_indices"].numpy()])


def test_encoder_loss_adds_the_weighted_hard_negative_term(encoder, batch, monkeypatch):
    gan = make_gan(encoder, **ON)
    captions, negatives = batch["captions"], batch["hard_negative_captions"]
    text = gan.embed_captions(captions, training=True)
    negative = gan.embed_captions(negatives, training=True)
    image = gan.image_encoder(batch["images"], training=True)
    valid = np.any(captions.numpy() != negatives.numpy(), axis=(1, 2))
    assert valid.all()
    matching = float(losses.matching_loss(text, image, batch["labels"], margin=0.2))
    hard = float(losses.hard_negative_loss(text, negative, image, valid, margin=0.2))
    assert hard > 0
    captured = []
    monkeypatch.setattr(gan_module, "_apply", lambda optimizer, tape, loss, variables:
                        captured.append(float(loss)))
    embeddings, negative_embeddings = gan._encoder_step(batch["images"], captions,
                                                        batch["labels"], negatives)
    assert captured == [pytest.approx(matching + 2.0 * hard, rel=1e-5)]
    np.testing.assert_allclose(negative_embeddings, negative, rtol=1e-5, atol=1e-6)
    assert float(gan.trackers["hard_negative_loss"].result()) == pytest.approx(hard, rel=1e-5)
    assert float(gan.trackers["matching_loss"].result()) == pytest.approx(matching, rel=1e-5)


def test_a_fraction_of_wrong_texts_are_the_images_own_negatives(encoder, batch, monkeypatch):
    """Fraction 0.5 of a batch of 8: rows 1, 3, 5, 7 get their own hard negative as wrong
    text; the others keep a different-class example's captions (GAN-CLS)."""
    gan = make_gan(encoder, **ON)
    own = gan.embed_captions(batch["captions"], training=True).numpy()
    negative = gan.embed_captions(batch["hard_negative_captions"], training=True).numpy()
    seen = {}
    original = gan._discriminator_step

    def spy(images, embeddings, wrong_embeddings, **options):
        seen["wrong"] = wrong_embeddings.numpy()
        return original(images, embeddings, wrong_embeddings, **options)

    monkeypatch.setattr(gan, "_discriminator_step", spy)
    logs = gan.train_step(batch)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert float(logs["hard_negative_loss"]) > 0
    partners = batch["wrong_indices"].numpy()
    for row in range(CONFIG.data.batch_size):
        expected = negative[row] if row % 2 else own[partners[row]]
        np.testing.assert_allclose(seen["wrong"][row], expected, rtol=1e-5, atol=1e-6)


def test_examples_without_a_negative_keep_their_wrong_text(encoder, batch, monkeypatch):
    gan = make_gan(encoder, hard_negative_wrong_fraction=1.0)
    no_negatives = dict(batch, hard_negative_captions=batch["captions"])
    seen = {}
    monkeypatch.setattr(gan, "_discriminator_step",
                        lambda images, embeddings, wrong, **options: seen.update(
                            right=embeddings.numpy(), wrong=wrong.numpy()))
    monkeypatch.setattr(gan, "_generator_step", lambda embeddings, images=None, **options: None)
    gan.train_step(no_negatives)
    np.testing.assert_array_equal(seen["wrong"], seen["right"][batch["wrong_indices"].numpy()])
    assert float(gan.trackers["hard_negative_loss"].result()) == 0.0


def test_the_check_scores_each_caption_and_its_negative(encoder, batch, monkeypatch):
    """`train.hard_negative_check_weight`: D's loss adds, weighted, the check of each real
    image with each of its k captions and with that caption's negative, each embedded alone;
    from caption ids or the pipeline's table alike."""
    gan = make_gan(encoder, hard_negative_check_weight=3.0)
    captions, negatives = batch["captions"].numpy(), batch["hard_negative_captions"].numpy()
    rows, k = captions.shape[:2]
    differs = np.any(captions != negatives, axis=2).reshape(-1)

    def alone(ids):
        flat = ids.reshape(rows * k, -1)
        return gan_module.conditioning_vector(gan.text_encoder(flat, training=False)[:, None])

    right, negative = alone(captions), alone(negatives)
    texts = gan._check_texts(batch)
    np.testing.assert_allclose(texts[0], right, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(texts[1], negative, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(texts[2], differs)
    table = {"caption_embeddings": _each_caption(gan, captions),
             "hard_negative_embeddings": _each_caption(gan, negatives),
             "hard_negative_differs": differs.reshape(rows, k)}
    for from_table, from_ids in zip(gan._check_texts(table), texts):
        np.testing.assert_allclose(from_table, from_ids, rtol=1e-5, atol=1e-6)
    # The D step's loss: GAN-CLS's plus 3 x the check, by D's scores before its update; an
    # image's features serve its k captions.
    images = batch["images"]
    embeddings = gan.embed_captions(batch["captions"], training=False)
    wrong = tf.gather(embeddings, batch["wrong_indices"])
    fakes = gan.generator((gan.noise(rows), embeddings), training=True)
    features = np.repeat(gan.discriminator.features(images, training=True).numpy(), k, axis=0)
    expected_check = losses.hard_negative_check_loss(
        gan.discriminator.score(features, right, training=True),
        gan.discriminator.score(features, negative, training=True), differs)
    captured = []
    monkeypatch.setattr(gan_module, "_apply", lambda optimizer, tape, loss, variables:
                        captured.append(float(loss)))
    gan._discriminator_step(images, embeddings, wrong, fake_images=fakes, check_texts=texts)
    d_loss = float(gan.trackers["d_loss"].result())
    check = float(gan.trackers["hard_negative_check_loss"].result())
    assert check == pytest.approx(float(expected_check), rel=1e-4) and check > 0
    assert captured == [pytest.approx(d_loss + 3.0 * check, rel=1e-5)]


def test_generator_matching_scores_g_images_as_the_encoders_were_trained(encoder, batch,
                                                                          monkeypatch):
    """`train.generator_matching_weight`: G's loss adds, weighted, the matching loss of its
    images of the batch's texts (embedded by the image encoder in inference mode) against the
    batch's texts, plus the hard negative term with the encoders' weight."""
    gan = make_gan(encoder, generator_matching_weight=3.0, **ON)
    embeddings, negative_embeddings, has_negative = gan._batch_embeddings(batch)
    texts = gan_module._BatchTexts(negative_embeddings, has_negative, batch["labels"])
    drawn = gan._draw_fakes(embeddings)
    rows = CONFIG.data.batch_size
    image_embeddings = gan.image_encoder(drawn.fake_images[:rows], training=False)
    expected = (losses.matching_loss(embeddings, image_embeddings, batch["labels"])
                + 2.0 * losses.hard_negative_loss(embeddings, negative_embeddings,
                                                  image_embeddings, has_negative))
    captured = []
    monkeypatch.setattr(gan_module, "_apply", lambda optimizer, tape, loss, variables:
                        captured.append(float(loss)))
    gan._generator_step(embeddings, batch["images"], drawn=drawn, texts=texts)
    logged = {name: float(gan.trackers[name].result())
              for name in ("g_loss", "interp_loss", "generator_matching_loss")}
    assert logged["generator_matching_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert float(expected) > 0 and np.any(has_negative.numpy())
    assert captured == [pytest.approx(logged["g_loss"] + logged["interp_loss"]
                                      + 3.0 * logged["generator_matching_loss"], rel=1e-5)]


def test_g_draws_the_recombined_texts_of_every_other_example(encoder, batch):
    """`train.recombined_text_weight`: after GAN-INT's rows, G draws the hard negative text of
    each even row (its own text where it has none), then the twins, each with fresh noise."""
    gan = make_gan(encoder, recombined_text_weight=1.0, mode_seeking_weight=1.0, **ON)
    embeddings, negative_embeddings, has_negative = gan._batch_embeddings(batch)
    has_negative = tf.constant([row % 4 == 0 for row in range(CONFIG.data.batch_size)])
    texts = gan_module._BatchTexts(negative_embeddings, has_negative, batch["labels"])
    drawn = gan._draw_fakes(embeddings, texts)
    rows, half = CONFIG.data.batch_size, CONFIG.data.batch_size // 2
    assert drawn.recombined_rows == half
    assert drawn.conditioning.shape[0] == rows + 2 * half
    assert drawn.fake_images.shape[0] == rows + 3 * half and drawn.noise.shape[0] == rows + 2 * half
    recombined = drawn.conditioning[rows + half:].numpy()
    for i in range(half):
        # Row i of the recombined texts is example 2i's, which has a negative for even i.
        expected = negative_embeddings[2 * i] if i % 2 == 0 else embeddings[2 * i]
        np.testing.assert_allclose(recombined[i], expected, rtol=1e-6, atol=1e-6)


def test_the_recombined_term_adds_ds_score_and_the_encoders_preference(encoder, batch,
                                                                         monkeypatch):
    """G's loss adds, weighted, D's G loss of the recombined rows (scored in the same call as
    the batch's) plus the image encoder's preference for each recombined text over its source
    caption, weighted by `generator_matching_weight`."""
    gan = make_gan(encoder, recombined_text_weight=2.0, generator_matching_weight=0.5, **ON)
    embeddings, negative_embeddings, has_negative = gan._batch_embeddings(batch)
    texts = gan_module._BatchTexts(negative_embeddings, has_negative, batch["labels"])
    drawn = gan._draw_fakes(embeddings, texts)
    rows, half = CONFIG.data.batch_size, CONFIG.data.batch_size // 2
    scored = rows + 2 * half
    logits = gan.discriminator((drawn.fake_images[:scored], drawn.conditioning), training=True)
    recombined_images = drawn.fake_images[rows + half:scored]
    expected = (losses.generator_loss(logits[rows + half:]) + 0.5 * losses.hard_negative_loss(
        drawn.conditioning[rows + half:], embeddings[0::2],
        gan.image_encoder(recombined_images, training=False), has_negative[0::2]))
    captured = []
    monkeypatch.setattr(gan_module, "_apply", lambda optimizer, tape, loss, variables:
                        captured.append(float(loss)))
    gan._generator_step(embeddings, batch["images"], drawn=drawn, texts=texts)
    logged = {name: float(gan.trackers[name].result()) for name in (
        "g_loss", "interp_loss", "generator_matching_loss", "recombined_text_loss")}
    assert logged["recombined_text_loss"] == pytest.approx(float(expected), rel=1e-4)
    assert captured == [pytest.approx(
        logged["g_loss"] + logged["interp_loss"] + 0.5 * logged["generator_matching_loss"]
        + 2.0 * logged["recombined_text_loss"], rel=1e-5)]


def _each_caption(gan, ids):
    """[N, k, E] every caption's embedding, as the pipeline's table holds them."""
    flat = gan.text_encoder(ids.reshape(-1, ids.shape[-1]), training=False)
    return tf.reshape(flat, (*ids.shape[:2], -1))


@pytest.mark.parametrize("rows, fraction, expected", [
    (8, 0.5, [0, 1, 0, 1, 0, 1, 0, 1]),
    (8, 0.25, [0, 0, 0, 1, 0, 0, 0, 1]),
    (4, 1.0, [1, 1, 1, 1]),
    (4, 0.0, [0, 0, 0, 0]),
    (5, 0.4, [0, 0, 1, 0, 1]),
])
def test_evenly_spread_rows(rows, fraction, expected):
    np.testing.assert_array_equal(gan_module._evenly_spread(rows, fraction).numpy(),
                                  np.array(expected, bool))


@pytest.mark.slow  # ~15 s to trace; the eager step above runs the same code
def test_a_compiled_tiny_step_with_both_options_is_finite(encoder, batch):
    gan = make_gan(encoder, **ON)
    logs = tf.function(gan.train_step)(batch)
    assert set(logs) == set(gan_module.METRIC_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
