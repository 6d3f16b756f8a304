"""The compiled step loop: events bound each call, XLA matches the plain step, D shares features."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i.config import get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.gan import TextToImageGAN
from tf_t2i.runs import build_gan
from tf_t2i.stage_loop import StageLoop, compile_steps

TINY = get_preset("tiny")
CONFIG = dataclasses.replace(
    TINY, data=dataclasses.replace(TINY.data, synthetic_images_per_class=1),
    train=dataclasses.replace(TINY.train, precision="float32"))


def loop_with(tmp_path, probes=None, **train):
    config = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, **train))
    return StageLoop(config, str(tmp_path), gan=None, checkpoints=None, probes=probes)


@pytest.mark.parametrize("step, expected", [(0, 4), (4, 1), (5, 3), (8, 2), (10, 2), (18, 2)])
def test_a_call_runs_up_to_steps_per_execution_and_stops_at_every_event(tmp_path, step,
                                                                         expected):
    loop = loop_with(tmp_path, log_every=5, checkpoint_every=4, steps_per_execution=10)
    assert loop._steps_until_event("gan", step, total_steps=20) == expected
    assert loop._is_event("gan", step + expected, total_steps=20)


def test_samples_are_events_of_the_gan_stage_only(tmp_path):
    loop = loop_with(tmp_path, probes=object(), log_every=100, checkpoint_every=100,
                     sample_every=3, steps_per_execution=50)
    assert loop._steps_until_event("gan", 0, total_steps=40) == 3
    assert loop._steps_until_event("style", 0, total_steps=40) == 40


@pytest.fixture(scope="module")
def stream():
    encoder = CaptionEncoder(CONFIG.data.alphabet, CONFIG.data.caption_length)
    return make_train_dataset(load_dataset(CONFIG.data).train, CONFIG.data, encoder), encoder


def trained(stream, jit_compile, steps):
    """A tiny GAN (seeded init) after `steps` steps in one compiled call."""
    dataset, encoder = stream
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    config = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train,
                                                                   jit_compile=jit_compile))
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)
    completed, diverged_at = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    run_steps = compile_steps(gan.train_step, tf.distribute.get_strategy(), jit_compile,
                              completed, diverged_at)
    run_steps(iter(dataset), tf.constant(steps, tf.int64))
    assert int(completed.numpy()) == steps and int(diverged_at.numpy()) == 0
    return gan


@pytest.mark.slow  # XLA compiles the tiny step for most of a minute on 2 cores.
def test_xla_compiled_steps_match_the_plain_steps(stream, monkeypatch):
    """Same losses; the same updates up to float noise.

    Inside an XLA cluster TensorFlow's stateless normal sampler gives other (equally
    distributed) numbers than its CPU kernel for the same seed, so both runs draw their noise
    here from one deterministic function of the seed generator's counter.

    Adam's first updates are about lr * sign(gradient), so a weight whose gradient is ~0 can
    move either way on float noise: weights are compared by how far the two runs ended apart
    against how far training moved them, not element by element.
    """
    monkeypatch.setattr(TextToImageGAN, "noise", _deterministic_noise)
    keras.utils.set_random_seed(0)
    initial = build_gan(CONFIG, stream[1].vocabulary_size, steps_per_epoch=10)
    plain, compiled = trained(stream, False, 3), trained(stream, True, 3)
    assert compiled.text_encoder.rnn.use_cudnn is False
    for name, tracker in plain.trackers.items():
        np.testing.assert_allclose(float(compiled.trackers[name].result()),
                                   float(tracker.result()), rtol=1e-3, atol=1e-4, err_msg=name)
    for name in ("text_encoder", "image_encoder", "generator", "discriminator"):
        start, ours, theirs = (getattr(gan, name).trainable_weights
                               for gan in (initial, compiled, plain))
        moved = _distance(theirs, start)
        assert moved > 0, name
        assert _distance(ours, theirs) < 0.05 * moved, name


def _deterministic_noise(gan, batch_size):
    phase = tf.cast(gan.seed_generator.next()[1], tf.float32)
    angles = tf.range(batch_size * gan.z_dim, dtype=tf.float32) * 0.37 + phase
    return tf.reshape(tf.sin(angles) * 1.4, (batch_size, gan.z_dim))


def _distance(weights_a, weights_b):
    return np.sqrt(sum(np.sum((a.numpy() - b.numpy()) ** 2) for a, b in zip(weights_a, weights_b)))


def test_discriminator_scores_shared_features_like_a_full_call():
    keras.mixed_precision.set_global_policy("float32")
    gan = build_gan(CONFIG, 71, steps_per_epoch=10)
    images = tf.random.uniform((4, 32, 32, 3), -1, 1, seed=1)
    text = tf.random.normal((4, CONFIG.model.embedding_dim), seed=2)
    wrong = tf.roll(text, 1, axis=0)
    discriminator = gan.discriminator
    features = discriminator.features(images, training=True)
    for embeddings in (text, wrong):
        np.testing.assert_allclose(discriminator.score(features, embeddings, training=True),
                                   discriminator((images, embeddings), training=True),
                                   rtol=1e-5, atol=1e-6)
