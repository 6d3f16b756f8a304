"""S in the GAN stage: latent regression (cLR) and reconstruction of real images (cVAE-GAN style).

Each option's term is checked against a hand computation from the same noise and batch, its
gradient against the models it must (and must not) reach, and the train step against which
weights it moves. With the options off, S stays out of the GAN stage (tests/test_gan.py checks
the generator step leaves S untouched; the paper presets' models are compared here).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_gan import CONFIG, MODELS, OPTIMIZERS, changed, make_gan, snapshot
from tf_t2i.config import apply_overrides, get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.runs import build_gan

STYLE_OPTIONS = ("train.latent_regression_weight=0.5", "train.reconstruction_weight=10",
                 "train.style_prior_weight=1")


@pytest.fixture(scope="module")
def encoder():
    return CaptionEncoder(CONFIG.data.alphabet, CONFIG.data.caption_length)


@pytest.fixture(scope="module")
def batch(encoder):
    return next(iter(make_train_dataset(load_dataset(CONFIG.data).train, CONFIG.data, encoder)))


def style_terms(gan, batch, state):
    """(weighted sum, tape, fakes' noise) of `_style_terms` on G's fakes from noise state `state`."""
    gan.seed_generator.state.assign(state)
    embeddings = gan.embed_captions(batch["captions"])
    z = gan.noise(embeddings.shape[0])
    for tracker in gan.trackers.values():
        tracker.reset_state()
    with tf.GradientTape(persistent=True) as tape:
        fakes = gan.generator((z, embeddings), training=True)
        total = gan._style_terms(z, fakes, batch["images"], embeddings)
    return total, tape, z, embeddings


def tracked(gan, name):
    return float(gan.trackers[name].result())


def test_latent_regression_term_by_hand(encoder, batch):
    gan = make_gan(encoder, latent_regression_weight=0.5)
    state = gan.seed_generator.state.numpy()
    total, _, z, embeddings = style_terms(gan, batch, state)
    # Same noise, same batch: S(G(z, t)) again, and the L1 mean by hand in numpy.
    recovered = gan.style_encoder(gan.generator((z, embeddings), training=True), training=True)
    by_hand = np.abs(z.numpy() - recovered.numpy()).mean()
    assert tracked(gan, "latent_regression_loss") == pytest.approx(by_hand, rel=1e-5)
    assert float(total) == pytest.approx(0.5 * by_hand, rel=1e-5)
    assert tracked(gan, "reconstruction_loss") == 0.0 and tracked(gan, "style_prior_loss") == 0.0


def test_reconstruction_term_by_hand_reaches_g_and_s_only(encoder, batch):
    gan = make_gan(encoder, reconstruction_weight=10.0, style_prior_weight=2.0)
    total, tape, _, embeddings = style_terms(gan, batch, gan.seed_generator.state.numpy())
    styles = gan.style_encoder(batch["images"], training=True)
    images = batch["images"].numpy()
    by_hand = np.abs(gan.generator((styles, embeddings), training=True).numpy() - images).mean()
    s = styles.numpy().astype(np.float64)
    prior = np.mean(s.mean(axis=0) ** 2 + (s.var(axis=0, ddof=1) - 1.0) ** 2)
    assert tracked(gan, "reconstruction_loss") == pytest.approx(by_hand, rel=1e-5)
    assert tracked(gan, "style_prior_loss") == pytest.approx(prior, rel=1e-4)
    assert tracked(gan, "latent_regression_loss") == 0.0
    assert float(total) == pytest.approx(10.0 * by_hand + 2.0 * prior, rel=1e-5)
    for name in MODELS:
        gradients = tape.gradient(total, getattr(gan, name).trainable_variables)
        reached = [g is not None and np.abs(g.numpy()).max() > 0 for g in gradients]
        if name in ("generator", "style_encoder"):
            # Every weight of G and S (BatchNorm scales and offsets included) gets a gradient.
            assert all(reached), f"{name}: {reached.count(False)} weights without gradient"
        else:
            assert not any(reached), f"the reconstruction term reached {name}"


def test_train_step_moves_s_with_latent_regression(encoder, batch):
    """(Without a style term S does not move: tests/test_gan.py, the three-phases test.)"""
    gan = make_gan(encoder, latent_regression_weight=0.5)
    before = snapshot(gan)
    gan.train_step(batch)
    diff = changed(before, snapshot(gan))
    for model in ("style_encoder", "generator"):
        moved, total = diff[f"{model}.trainable"]
        assert total > 0 and moved == total, f"{model}: {moved} of {total} weights moved"
    # G, D and the encoders still take exactly one update each; S takes one in the GAN stage.
    for optimizer in OPTIMIZERS:
        assert int(getattr(gan, optimizer).iterations) == 1, optimizer


def test_s_and_g_updates_come_from_the_terms_gradient(encoder, batch, monkeypatch):
    """With only latent regression on, S's update is the gradient of 0.5 * the cLR term.

    Without GAN-INT, G draws only the batch's fakes, as `style_terms` does by hand.
    """
    gan = make_gan(encoder, latent_regression_weight=0.5, interp_weight=0.0)
    embeddings = gan.embed_captions(batch["captions"])
    state = gan.seed_generator.state.numpy()
    applied = {}

    def capture(optimizer):
        def apply_gradients(pairs):
            applied[optimizer.name] = [g.numpy() for g, _ in pairs]
        return apply_gradients

    for optimizer in (gan.g_optimizer, gan.style_optimizer):
        monkeypatch.setattr(optimizer, "apply_gradients", capture(optimizer))
    gan._generator_step(embeddings, batch["images"])
    total, tape, _, _ = style_terms(gan, batch, state)
    expected = tape.gradient(total, gan.style_encoder.trainable_variables)
    assert len(applied["style_optimizer"]) == len(expected)
    scale = max(np.abs(e.numpy()).max() for e in expected)
    for actual, wanted in zip(applied["style_optimizer"], expected):
        np.testing.assert_allclose(actual, wanted.numpy(), rtol=1e-3, atol=1e-4 * scale)
    assert len(applied["g_optimizer"]) == len(gan.generator.trainable_variables)


def test_tiny_step_with_every_option_gives_finite_losses(encoder, batch):
    """Every option on, then the style stage still runs on the same S and optimizer."""
    config = apply_overrides(CONFIG, list(STYLE_OPTIONS) + ["train.mode_seeking_weight=1"])
    keras.mixed_precision.set_global_policy("float32")
    gan = build_gan(config.validate(), encoder.vocabulary_size, steps_per_epoch=10)
    logs = {name: float(value) for name, value in gan.train_step(batch).items()}
    assert all(np.isfinite(value) for value in logs.values()), logs
    for name in ("latent_regression_loss", "reconstruction_loss", "style_prior_loss"):
        assert logs[name] > 0, name
    before = snapshot(gan)
    assert np.isfinite(float(gan.style_step(batch)["style_loss"]))
    moved, total = changed(before, snapshot(gan))["style_encoder.trainable"]
    assert moved == total and int(gan.style_optimizer.iterations) == 2


def test_style_stage_reconstruction_by_hand(encoder, batch, monkeypatch):
    """train.style_reconstruction_weight: the style stage's S loss is Reed's term on G's images
    plus the weighted L1 of real images redrawn by the frozen G from S(x), S seeing both kinds
    of image in one call; S's update is that sum's gradient (tests/test_gan.py checks that
    the step moves S alone)."""
    gan = make_gan(encoder, style_reconstruction_weight=10.0)
    state = gan.seed_generator.state.numpy()
    embeddings = gan.embed_captions(batch["captions"])
    z = gan.noise(embeddings.shape[0])
    images = batch["images"]
    with tf.GradientTape() as tape:
        fakes = gan.generator((z, embeddings), training=False)
        styles = gan.style_encoder(tf.concat([fakes, images], axis=0), training=True)
        rows = z.shape[0]
        style = np.sum((z.numpy() - styles[:rows].numpy()) ** 2, axis=-1).mean()
        redrawn = gan.generator((styles[rows:], embeddings), training=False)
        reconstruction = np.abs(redrawn.numpy() - images.numpy()).mean()
        total = (tf.reduce_mean(tf.reduce_sum(tf.square(z - styles[:rows]), axis=-1))
                 + 10.0 * tf.reduce_mean(tf.abs(redrawn - images)))
    expected = tape.gradient(total, gan.style_encoder.trainable_variables)
    applied = []
    monkeypatch.setattr(gan.style_optimizer, "apply_gradients",
                        lambda pairs: applied.extend(g.numpy() for g, _ in pairs))
    gan.seed_generator.state.assign(state)
    for tracker in gan.style_trackers.values():
        tracker.reset_state()
    logs = gan.style_step(batch)
    assert float(logs["style_loss"]) == pytest.approx(style, rel=1e-5)
    assert float(logs["style_reconstruction_loss"]) == pytest.approx(reconstruction, rel=1e-5)
    assert len(applied) == len(expected)
    scale = max(np.abs(e.numpy()).max() for e in expected)
    for actual, wanted in zip(applied, expected):
        np.testing.assert_allclose(actual, wanted.numpy(), rtol=1e-3, atol=1e-4 * scale)


def variable_signature(gan):
    """Each model's variables by name and shape, each optimizer's by shape (names and paths
    carry global layer counters)."""
    models = [(name, v.name, tuple(v.shape)) for name in MODELS
              for v in getattr(gan, name).variables]
    return models + [(name, tuple(v.shape)) for name in OPTIMIZERS
                     for v in getattr(gan, name).variables]


def test_paper_preset_is_unchanged_by_the_style_options(encoder):
    """Off in the paper presets; on, they add no variable (S exists in Reed's design)."""
    assert get_preset("cub64").train == get_preset("flowers64").train
    config = get_preset("flowers64")
    assert (config.train.latent_regression_weight, config.train.reconstruction_weight,
            config.train.style_prior_weight) == (0.0, 0.0, 0.0)
    keras.mixed_precision.set_global_policy("float32")
    paper = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)
    assert not paper._trains_style()
    with_options = build_gan(apply_overrides(config, list(STYLE_OPTIONS)),
                             encoder.vocabulary_size, steps_per_epoch=10)
    assert variable_signature(paper) == variable_signature(with_options)


def test_options_off_leave_the_generator_loss_unchanged(encoder, batch, monkeypatch):
    """Off, the style terms add exactly 0 and S is not called in the GAN stage."""
    gan = make_gan(encoder)
    calls = []
    original = gan.style_encoder.call
    monkeypatch.setattr(gan.style_encoder, "call",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    total, _, _, _ = style_terms(gan, batch, gan.seed_generator.state.numpy())
    assert float(total) == 0.0 and not calls


@pytest.mark.parametrize("override, message", [
    ("train.latent_regression_weight=-1", "train.latent_regression_weight must be >= 0"),
    ("train.style_prior_weight=1", "train.style_prior_weight needs train.reconstruction_weight"),
    ("train.style_reconstruction_weight=-1", "train.style_reconstruction_weight must be >= 0"),
])
def test_validate_names_the_style_option(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_preset("tiny"), [override]).validate()
