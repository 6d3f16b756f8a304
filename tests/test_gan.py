"""TextToImageGAN's train step: each phase updates only its own models; GAN-INT; GAN-CLS pairs.

The phases (`_encoder_step`, `_discriminator_step`, `_generator_step`, `style_step`) are called
directly, eagerly, on one batch of the tiny synthetic data, and every variable is compared
before/after. BatchNorm moving statistics are not trained weights: a training-mode forward pass
updates them (G's in the D step, D's in the G step; documented in gan.py), so "unchanged" is
checked on trainable weights and optimizer variables, and on *every* variable of the models a
phase never runs.
"""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i import gan as gan_module
from tf_t2i import losses
from tf_t2i.config import get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.runs import build_gan

TINY = get_preset("tiny")
# One image per synthetic class (140 training images, one per class): a quicker first batch.
CONFIG = dataclasses.replace(TINY, data=dataclasses.replace(TINY.data,
                                                            synthetic_images_per_class=1))
MODELS = ("text_encoder", "image_encoder", "generator", "discriminator", "style_encoder")
OPTIMIZERS = ("encoder_optimizer", "d_optimizer", "g_optimizer", "style_optimizer")


@pytest.fixture(scope="module")
def encoder():
    return CaptionEncoder(CONFIG.data.alphabet, CONFIG.data.caption_length)


@pytest.fixture(scope="module")
def batch(encoder):
    dataset = load_dataset(CONFIG.data)
    return next(iter(make_train_dataset(dataset.train, CONFIG.data, encoder)))


# train overrides -> (GAN, every variable it holds with its value when built).
_BUILT = {}


def make_gan(encoder, **train_overrides):
    """The tiny GAN with `train_overrides`, as build_gan returns it.

    Built once per set of overrides (a second or more each); later calls put back every
    variable's built value: weights, BatchNorm statistics, optimizer slots and counters, the
    noise states and the loss trackers. Tests change its other attributes with monkeypatch.
    """
    keras.mixed_precision.set_global_policy("float32")
    key = tuple(sorted(train_overrides.items()))
    if key not in _BUILT:
        config = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train,
                                                                       **train_overrides))
        gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)
        _BUILT[key] = gan, [(v, np.array(v.numpy())) for v in _state_variables(gan)]
    gan, built = _BUILT[key]
    for variable, value in built:
        variable.assign(value)
    return gan


def _state_variables(gan):
    """Every variable of the GAN, its optimizers and its trackers, each once."""
    variables = list(gan.variables)
    for name in OPTIMIZERS:
        variables += list(getattr(gan, name).variables)
    for tracker in gan.metrics:
        variables += list(tracker.variables)
    return list({id(v): v for v in variables}.values())


def groups(gan):
    """name -> list of variables: each model's trainable / non-trainable ones, each optimizer's."""
    out = {}
    for name in MODELS:
        model = getattr(gan, name)
        out[f"{name}.trainable"] = list(model.trainable_variables)
        out[f"{name}.non_trainable"] = list(model.non_trainable_variables)
    for name in OPTIMIZERS:
        out[name] = list(getattr(gan, name).variables)
    return out


def snapshot(gan):
    return {group: [np.array(v.numpy()) for v in variables]
            for group, variables in groups(gan).items()}


def changed(before, after):
    """group -> (number of variables that changed, number of variables)."""
    return {group: (sum(not np.array_equal(a, b) for a, b in zip(before[group], after[group])),
                    len(before[group]))
            for group in before}


def assert_phase(before, after, own_models, own_optimizer, untouched, trainable_only):
    """Every trainable variable of `own_models` and the optimizer's state moved; `untouched`
    groups (all variables) and the `trainable_only` models' trainable weights did not."""
    diff = changed(before, after)
    for model in own_models:
        moved, total = diff[f"{model}.trainable"]
        assert total > 0 and moved == total, f"{model}: only {moved} of {total} weights moved"
    assert diff[own_optimizer][0] > 0, f"{own_optimizer} did not update"
    for group in untouched:
        assert diff[group][0] == 0, f"{group} changed: {diff[group]}"
    for model in trainable_only:
        assert diff[f"{model}.trainable"][0] == 0, f"{model}'s trainable weights changed"
    for optimizer in OPTIMIZERS:
        if optimizer != own_optimizer:
            assert diff[optimizer][0] == 0, f"{optimizer} changed: {diff[optimizer]}"


def all_groups(*models):
    return [f"{m}.{kind}" for m in models for kind in ("trainable", "non_trainable")]


def test_encoder_step_updates_only_the_encoders(encoder, batch):
    gan = make_gan(encoder)
    before = snapshot(gan)
    embeddings, negative_embeddings = gan._encoder_step(batch["images"], batch["captions"],
                                                        batch["labels"])
    after = snapshot(gan)
    assert tuple(embeddings.shape) == (CONFIG.data.batch_size, CONFIG.model.embedding_dim)
    assert negative_embeddings is None
    assert_phase(before, after, own_models=("text_encoder", "image_encoder"),
                 own_optimizer="encoder_optimizer",
                 untouched=all_groups("generator", "discriminator", "style_encoder"),
                 trainable_only=())


def test_discriminator_step_updates_only_the_discriminator(encoder, batch):
    gan = make_gan(encoder)
    embeddings = gan.embed_captions(batch["captions"])
    wrong = tf.gather(embeddings, batch["wrong_indices"])
    before = snapshot(gan)
    gan._discriminator_step(batch["images"], embeddings, wrong)
    after = snapshot(gan)
    # G runs in training mode to draw the fakes, so its BatchNorm statistics may move; its
    # trainable weights and optimizer must not.
    assert_phase(before, after, own_models=("discriminator",), own_optimizer="d_optimizer",
                 untouched=all_groups("text_encoder", "image_encoder", "style_encoder"),
                 trainable_only=("generator",))
    assert changed(before, after)["generator.trainable"][0] == 0


@pytest.mark.parametrize("generator_matching_weight", [0.0, 2.0])
def test_generator_step_updates_only_the_generator(encoder, batch, generator_matching_weight):
    """With G's matching term, the image encoder embeds G's images but stays as it was, its
    BatchNorm statistics included."""
    gan = make_gan(encoder, generator_matching_weight=generator_matching_weight)
    embeddings = gan.embed_captions(batch["captions"])
    before = snapshot(gan)
    gan._generator_step(embeddings)
    after = snapshot(gan)
    matching = float(gan.trackers["generator_matching_loss"].result())
    assert (matching > 0) == (generator_matching_weight > 0)
    assert_phase(before, after, own_models=("generator",), own_optimizer="g_optimizer",
                 untouched=all_groups("text_encoder", "image_encoder", "style_encoder"),
                 trainable_only=("discriminator",))


@pytest.mark.parametrize("style_reconstruction_weight", [0.0, 10.0])
def test_style_step_updates_only_the_style_encoder(encoder, batch, style_reconstruction_weight):
    gan = make_gan(encoder, style_reconstruction_weight=style_reconstruction_weight)
    before = snapshot(gan)
    logs = gan.style_step(batch)
    after = snapshot(gan)
    assert np.isfinite(float(logs["style_loss"])) and float(logs["style_loss"]) > 0
    reconstruction = float(logs["style_reconstruction_loss"])
    assert (reconstruction > 0) == (style_reconstruction_weight > 0)
    # G and the text encoder run in inference mode: not even their statistics move.
    assert_phase(before, after, own_models=("style_encoder",), own_optimizer="style_optimizer",
                 untouched=all_groups("text_encoder", "image_encoder", "generator",
                                      "discriminator"),
                 trainable_only=())


def test_train_step_runs_the_three_phases_once(encoder, batch):
    """(run_training compiles it with tf.function; tests/test_training.py runs that path.)"""
    gan = make_gan(encoder)
    before = snapshot(gan)
    noise_state = gan.seed_generator.state.numpy()
    logs = gan.train_step(batch)
    after = snapshot(gan)
    assert set(logs) == set(gan_module.METRIC_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name in ("d_real", "d_wrong", "d_fake"):
        assert 0.0 <= float(logs[name]) <= 1.0
    for optimizer in ("encoder_optimizer", "d_optimizer", "g_optimizer"):
        assert int(getattr(gan, optimizer).iterations) == 1
    assert int(gan.style_optimizer.iterations) == 0
    assert changed(before, after)["style_encoder.trainable"][0] == 0
    # The noise generator advanced (D's fakes, G's fakes): the next step draws new noise.
    assert not np.array_equal(noise_state, gan.seed_generator.state.numpy())


@pytest.mark.parametrize("shared_fakes", [False, True])
def test_shared_fakes_show_d_the_g_steps_fakes_and_draw_once(encoder, batch, monkeypatch,
                                                             shared_fakes):
    """`train.shared_fakes`: G runs forward once per step and D trains on the first N rows of
    that pass (the batch's texts), as constants; off, the D step draws fakes of its own."""
    gan = make_gan(encoder, mode_seeking_weight=1.0, shared_fakes=shared_fakes)
    before = snapshot(gan)
    generator_class, seen = type(gan.generator), {"generator_calls": 0}
    original_call, original_draw = generator_class.call, gan._draw_fakes
    original_discriminator_step = gan._discriminator_step

    def counting_call(self, *args, **kwargs):
        seen["generator_calls"] += self is gan.generator
        return original_call(self, *args, **kwargs)

    def draw_spy(embeddings, texts=None):
        seen["drawn"] = original_draw(embeddings, texts)
        return seen["drawn"]

    def discriminator_spy(images, embeddings, wrong_embeddings, fake_images=None, **options):
        seen["fake_images"] = fake_images
        return original_discriminator_step(images, embeddings, wrong_embeddings,
                                           fake_images=fake_images, **options)

    monkeypatch.setattr(generator_class, "call", counting_call)
    monkeypatch.setattr(gan, "_draw_fakes", draw_spy)
    monkeypatch.setattr(gan, "_discriminator_step", discriminator_spy)
    logs = gan.train_step(batch)
    rows = batch["images"].shape[0]
    # The batch's texts, their interpolations and the mode-seeking twins in one pass.
    assert seen["drawn"].fake_images.shape[0] == 2 * rows
    assert seen["generator_calls"] == (1 if shared_fakes else 2)
    if shared_fakes:
        np.testing.assert_array_equal(seen["fake_images"].numpy(),
                                      seen["drawn"].fake_images[:rows].numpy())
    else:
        assert seen["fake_images"] is None
    assert all(np.isfinite(float(value)) for value in logs.values())
    diff = changed(before, snapshot(gan))
    for model in ("discriminator", "generator"):
        moved, total = diff[f"{model}.trainable"]
        assert moved == total, f"{model}: only {moved} of {total} weights moved"


@pytest.mark.parametrize("shared_fakes", [False, True])
@pytest.mark.parametrize("interp_fakes", [False, True])
def test_interp_fakes_for_discriminator_show_d_the_interpolated_texts_fakes(
        encoder, batch, monkeypatch, shared_fakes, interp_fakes):
    """`train.interp_fakes_for_discriminator`: D's fake term scores the batch's fakes [N], then
    G's images of GAN-INT's interpolated texts [N // 2] with those texts; off, the first N."""
    gan = make_gan(encoder, shared_fakes=shared_fakes,
                   interp_fakes_for_discriminator=interp_fakes)
    seen = {"calls": []}
    discriminator_class = type(gan.discriminator)
    original_call, original_draw, original_loss = (discriminator_class.call, gan._draw_fakes,
                                                   gan._d_loss)

    def call_spy(self, inputs, training=None):
        seen["calls"].append([np.array(value) for value in inputs])
        return original_call(self, inputs, training=training)

    def draw_spy(embeddings, texts=None):
        seen["drawn"] = original_draw(embeddings, texts)
        return seen["drawn"]

    def loss_spy(real_logits, wrong_logits, fake_logits, **options):
        seen["fake_rows"] = fake_logits.shape[0]
        return original_loss(real_logits, wrong_logits, fake_logits, **options)

    monkeypatch.setattr(discriminator_class, "call", call_spy)
    monkeypatch.setattr(gan, "_draw_fakes", draw_spy)
    monkeypatch.setattr(gan, "_d_loss", loss_spy)
    logs = gan.train_step(batch)
    rows = batch["images"].shape[0]
    fake_images, fake_texts = seen["calls"][0]  # the D step's fakes come first
    expected_rows = rows + rows // 2 if interp_fakes else rows
    assert seen["fake_rows"] == fake_images.shape[0] == fake_texts.shape[0] == expected_rows
    if interp_fakes:
        np.testing.assert_allclose(fake_texts[rows:], np.array(losses.interpolate_embeddings(
            fake_texts[0:rows:2], fake_texts[1:rows:2], gan.interp_beta)), rtol=1e-6)
    if shared_fakes:
        np.testing.assert_array_equal(fake_images,
                                      seen["drawn"].fake_images[:expected_rows].numpy())
    assert all(np.isfinite(float(value)) for value in logs.values())


def test_interp_fakes_for_discriminator_need_gan_int():
    train = dataclasses.replace(CONFIG.train, interp_fakes_for_discriminator=True,
                                interp_weight=0.0)
    with pytest.raises(ValueError, match="interp_fakes_for_discriminator needs GAN-INT"):
        dataclasses.replace(CONFIG, train=train).validate()


def test_discriminator_sees_wrong_text_of_another_class(encoder, batch, monkeypatch):
    """GAN-CLS: D's {real image, wrong text} pairs use the captions of another-class example."""
    gan = make_gan(encoder)
    expected = gan.embed_captions(batch["captions"], training=True).numpy()
    seen = {}
    original = gan._discriminator_step

    def spy(images, embeddings, wrong_embeddings, **options):
        seen.update(images=images.numpy(), embeddings=embeddings.numpy(),
                    wrong=wrong_embeddings.numpy())
        return original(images, embeddings, wrong_embeddings, **options)

    monkeypatch.setattr(gan, "_discriminator_step", spy)
    gan.train_step(batch)
    labels, partners = batch["labels"].numpy(), batch["wrong_indices"].numpy()
    np.testing.assert_array_equal(seen["images"], batch["images"].numpy())
    # D's right texts are the pre-update embeddings of the example's own captions...
    np.testing.assert_allclose(seen["embeddings"], expected, rtol=1e-5, atol=1e-6)
    for i, partner in enumerate(partners):
        # ...and each wrong text is the embedding of a different-class example's captions.
        assert labels[partner] != labels[i]
        np.testing.assert_array_equal(seen["wrong"][i], seen["embeddings"][partner])
        assert not np.allclose(seen["wrong"][i], seen["embeddings"][i])


def generator_gradients(gan, embeddings, state, monkeypatch):
    """G's loss and gradients in `_generator_step` from the noise state `state`, not applied."""
    captured = {}

    def capture(optimizer, tape, loss, variables):
        captured["loss"] = float(loss)
        captured["gradients"] = [g.numpy() for g in tape.gradient(loss, variables)]

    monkeypatch.setattr(gan_module, "_apply", capture)
    for tracker in gan.trackers.values():
        tracker.reset_state()
    gan.seed_generator.state.assign(state)
    gan._generator_step(embeddings)
    captured["g_loss"] = float(gan.trackers["g_loss"].result())
    captured["interp_loss"] = float(gan.trackers["interp_loss"].result())
    return captured


def hand_generator_gradients(gan, embeddings, state):
    """G's gradients of the GAN-CLS term and of the GAN-INT term (beta = 0.5), by hand.

    GAN-INT mixes adjacent examples (0, 1), (2, 3), ...; the interpolated texts draw their noise
    after the batch's.
    """
    gan.seed_generator.state.assign(state)
    batch_size = embeddings.shape[0]
    assert batch_size % 2 == 0
    interpolated = np.stack([0.5 * embeddings[i] + 0.5 * embeddings[i + 1]
                             for i in range(0, batch_size, 2)])
    conditioning = tf.concat([embeddings, interpolated], axis=0)
    z = tf.concat([gan.noise(batch_size), gan.noise(batch_size // 2)], axis=0)
    variables = gan.generator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        logits = gan.discriminator((gan.generator((z, conditioning), training=True),
                                    conditioning), training=True)
        g_loss = losses.generator_loss(logits[:batch_size])
        interp_loss = losses.interpolation_loss(logits[batch_size:])
    return ([g.numpy() for g in tape.gradient(g_loss, variables)],
            [g.numpy() for g in tape.gradient(interp_loss, variables)],
            float(g_loss), float(interp_loss))


def hand_plain_generator_gradients(gan, embeddings, state):
    """G's gradients of BCE(D(G(z, t), t), 1) alone (no interpolated texts), by hand."""
    gan.seed_generator.state.assign(state)
    z = gan.noise(embeddings.shape[0])
    variables = gan.generator.trainable_variables
    with tf.GradientTape() as tape:
        logits = gan.discriminator((gan.generator((z, embeddings), training=True), embeddings),
                                   training=True)
        loss = losses.generator_loss(logits)
    return [g.numpy() for g in tape.gradient(loss, variables)], float(loss)


def assert_all_close(actual, expected):
    """Equal up to float32 round-off (summation order differs between the two computations)."""
    assert len(actual) == len(expected)
    scale = max(np.abs(e).max() for e in expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-4 * scale)


def test_gan_int_term_changes_the_generator_gradient(encoder, batch, monkeypatch):
    gan = make_gan(encoder)
    embeddings = gan.embed_captions(batch["captions"])
    state = gan.seed_generator.state.numpy()
    before = snapshot(gan)

    monkeypatch.setattr(gan, "interp_weight", 1.0)
    with_int = generator_gradients(gan, embeddings, state, monkeypatch)
    monkeypatch.setattr(gan, "interp_weight", 0.0)
    without_int = generator_gradients(gan, embeddings, state, monkeypatch)
    # The patched _apply updated nothing.
    assert changed(before, snapshot(gan))["generator.trainable"][0] == 0

    difference = max(np.abs(a - b).max()
                     for a, b in zip(with_int["gradients"], without_int["gradients"]))
    assert difference > 1e-6

    # interp_weight = 1: G's loss is the GAN-CLS term on the batch plus the GAN-INT term on
    # interpolated texts, drawn together (same noise draw, same BatchNorm batch).
    g_grads, int_grads, g_loss, interp_loss = hand_generator_gradients(gan, embeddings, state)
    assert with_int["g_loss"] == pytest.approx(g_loss, rel=1e-5)
    assert with_int["interp_loss"] == pytest.approx(interp_loss, rel=1e-5)
    assert with_int["loss"] == pytest.approx(g_loss + interp_loss, rel=1e-5)
    assert_all_close(with_int["gradients"], [g + i for g, i in zip(g_grads, int_grads)])
    # The GAN-INT term's own gradient is not negligible next to the total.
    assert max(np.abs(i).max() for i in int_grads) > 1e-3 * max(
        np.abs(g).max() for g in with_int["gradients"])

    # interp_weight = 0: no interpolated texts are drawn and the loss is the GAN-CLS term only.
    plain_grads, plain_loss = hand_plain_generator_gradients(gan, embeddings, state)
    assert without_int["interp_loss"] == 0.0
    assert without_int["loss"] == pytest.approx(plain_loss, rel=1e-5)
    assert without_int["g_loss"] == pytest.approx(plain_loss, rel=1e-5)
    assert_all_close(without_int["gradients"], plain_grads)


def test_interp_weight_scales_the_gan_int_term(encoder, batch, monkeypatch):
    """Same forward pass (same noise and batch): gradient(w) = gradient_cls + w * gradient_int."""
    gan = make_gan(encoder)
    embeddings = gan.embed_captions(batch["captions"])
    state = gan.seed_generator.state.numpy()
    runs = {}
    for weight in (1.0, 2.0, 3.0):
        monkeypatch.setattr(gan, "interp_weight", weight)
        runs[weight] = generator_gradients(gan, embeddings, state, monkeypatch)
    assert runs[1.0]["interp_loss"] == pytest.approx(runs[3.0]["interp_loss"], rel=1e-6)
    for weight, run in runs.items():
        assert run["loss"] == pytest.approx(run["g_loss"] + weight * run["interp_loss"],
                                            rel=1e-5)
    step_1_2 = [b - a for a, b in zip(runs[1.0]["gradients"], runs[2.0]["gradients"])]
    step_2_3 = [b - a for a, b in zip(runs[2.0]["gradients"], runs[3.0]["gradients"])]
    assert max(np.abs(d).max() for d in step_1_2) > 1e-6
    scale = max(np.abs(g).max() for g in runs[3.0]["gradients"])
    for a, b in zip(step_1_2, step_2_3):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)


def test_mode_seeking_term_enters_the_generator_gradient(encoder, batch, monkeypatch):
    gan = make_gan(encoder)
    embeddings = gan.embed_captions(batch["captions"])
    state = gan.seed_generator.state.numpy()
    without = generator_gradients(gan, embeddings, state, monkeypatch)
    monkeypatch.setattr(gan, "mode_seeking_weight", 1.0)
    with_term = generator_gradients(gan, embeddings, state, monkeypatch)
    term = float(gan.trackers["mode_seeking_loss"].result())
    assert np.isfinite(term) and term > 0
    # The total is the GAN-CLS and GAN-INT terms plus the weighted mode-seeking term.
    assert with_term["loss"] == pytest.approx(
        with_term["g_loss"] + with_term["interp_loss"] + term, rel=1e-5)
    assert max(np.abs(a - b).max()
               for a, b in zip(with_term["gradients"], without["gradients"])) > 1e-6


def test_mode_seeking_twins_redraw_the_first_text_of_each_adjacent_pair(encoder, batch,
                                                                       monkeypatch):
    """By hand: G draws the batch, the GAN-INT texts and the twins (texts 0, 2, 4, ...) in one
    batch with noise drawn in that order; the term compares each twin with the image of the
    same text in the batch."""
    gan = make_gan(encoder, mode_seeking_weight=1.0)
    embeddings = gan.embed_captions(batch["captions"])
    state = gan.seed_generator.state.numpy()
    generator_gradients(gan, embeddings, state, monkeypatch)
    term = float(gan.trackers["mode_seeking_loss"].result())

    gan.seed_generator.state.assign(state)
    size = embeddings.shape[0]
    z, z_interpolated, z_twins = gan.noise(size), gan.noise(size // 2), gan.noise(size // 2)
    texts = embeddings.numpy()
    interpolated = 0.5 * texts[0::2] + 0.5 * texts[1::2]
    images = gan.generator((tf.concat([z, z_interpolated, z_twins], axis=0),
                            np.concatenate([texts, interpolated, texts[0::2]])),
                           training=True).numpy()
    twins = images[size + size // 2:]
    originals = images[[i for i in range(0, size, 2)]]
    ratio = (np.abs(originals - twins).mean()
             / np.abs(z.numpy()[0::2] - z_twins.numpy()).mean())
    assert term == pytest.approx(1.0 / (ratio + 1e-5), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# Quality options (issue 10): hinge loss, MA-GP, DiffAugment translation, EMA generator.

QUALITY_OFF = {"gan_loss": "bce", "gradient_penalty_weight": 0.0, "diff_augment": "",
               "ema_decay": 0.0, "beta_2": 0.999, "d_learning_rate": 0.0}
QUALITY_ON = {"gan_loss": "hinge", "gradient_penalty_weight": 2.0, "gradient_penalty_power": 6.0,
              "diff_augment": "translation", "ema_decay": 0.9, "beta_2": 0.9,
              "d_learning_rate": 4e-4}
# flowers64's variables (paths without Keras's _<n> name counters, and shapes; models and
# optimizers) as main built them before these options existed: 355 variables, 101523137 values.
FLOWERS64_VARIABLES = (355, 101523137,
                       "52da0cda9bcc7b553252a72c115426f1581aa7f8cb7a5218c2bd6b73ad52ddb8")


def variable_fingerprint(gan):
    import hashlib
    import re
    variables = gan.variables + [v for name in OPTIMIZERS for v in getattr(gan, name).variables]
    names = [f"{re.sub(r'_[0-9]+', '', v.path)}:{tuple(v.shape)}" for v in variables]
    return (len(names), sum(int(np.prod(v.shape)) for v in variables),
            hashlib.sha256("\n".join(names).encode()).hexdigest())


def test_every_preset_keeps_the_quality_options_off():
    """All off, but the `default` preset's own rate for D (Reed's 2e-4, while its G learns at
    8e-4) and the hinge loss of `default` and the plus presets (test_conditioning and
    test_config pin those measured choices)."""
    from tf_t2i.config import PRESETS
    for name in PRESETS:
        train = get_preset(name).train
        expected = (dict(QUALITY_OFF, d_learning_rate=2e-4, gan_loss="hinge") if name == "default"
                    else dict(QUALITY_OFF, gan_loss="hinge") if name.endswith("-plus")
                    else QUALITY_OFF)
        assert {field: getattr(train, field) for field in QUALITY_OFF} == expected, name


@pytest.mark.parametrize("name", ["flowers64", "cub64", "tiny"])
def test_reeds_presets_draw_ds_fakes_apart_from_gs(name):
    """Reed's code draws the D step's fakes with noise of their own (`train.shared_fakes` off);
    the CPU-sized default saves that G pass."""
    assert get_preset(name).train.shared_fakes is False
    assert get_preset("default").train.shared_fakes is True


def test_flowers64_models_and_losses_are_unchanged_with_the_options_off():
    config = get_preset("flowers64")
    keras.mixed_precision.set_global_policy("float32")
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)
    assert variable_fingerprint(gan) == FLOWERS64_VARIABLES
    assert gan.ema_generator is None and gan.sampling_generator is gan.generator
    assert (gan._d_loss, gan._g_loss, gan._interp_loss) == (
        losses.discriminator_loss, losses.generator_loss, losses.interpolation_loss)
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(config.train.learning_rate)
    assert float(gan.d_optimizer.beta_2) == 0.999


def test_the_options_switch_on_what_they_name(encoder):
    gan = make_gan(encoder, **QUALITY_ON)
    assert (gan._d_loss, gan._g_loss, gan._interp_loss) == (
        losses.hinge_discriminator_loss, losses.hinge_generator_loss,
        losses.hinge_generator_loss)
    assert gan.sampling_generator is gan.ema_generator
    assert gan.ema_generator.name == "ema_generator"
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(CONFIG.train.learning_rate)
    assert float(gan.g_optimizer.beta_2) == pytest.approx(0.9)
    # The average starts at G's weights.
    for average, weight in zip(gan.ema_generator.weights, gan.generator.weights):
        np.testing.assert_array_equal(average.numpy(), weight.numpy())


def test_a_train_step_with_every_option_on_gives_finite_losses(encoder, batch):
    gan = make_gan(encoder, **QUALITY_ON)
    logs = gan.train_step(batch)
    assert set(logs) == set(gan_module.METRIC_NAMES)
    assert all(np.isfinite(float(value)) for value in logs.values())
    assert float(logs["gradient_penalty"]) > 0.0


class LinearDiscriminator:
    """D(x, t) = <a, flatten(x)> + <b, t>: its input gradient is (a, b) for every example."""

    def __init__(self, a, b):
        self.a, self.b = tf.Variable(a), tf.Variable(b)

    def features(self, images, training):
        return tf.reshape(images, (images.shape[0], -1))

    def score(self, features, embeddings, training):
        return tf.linalg.matvec(features, self.a) + tf.linalg.matvec(embeddings, self.b)


def test_ma_gp_of_a_linear_discriminator_has_its_closed_form():
    """Penalty (|a|^2 + |b|^2)^(p / 2), and through the nested tape its gradient with respect
    to D's weights: d/da (|a|^2 + |b|^2)^3 = 6 (|a|^2 + |b|^2)^2 a (p = 6)."""
    import types
    rng = np.random.default_rng(0)
    a = rng.normal(size=2 * 2 * 3).astype(np.float32) * 0.3
    b = rng.normal(size=4).astype(np.float32) * 0.3
    stub = types.SimpleNamespace(discriminator=LinearDiscriminator(a, b),
                                 gradient_penalty_weight=2.0, gradient_penalty_power=6.0)
    images = tf.constant(rng.normal(size=(5, 2, 2, 3)).astype(np.float32))
    embeddings = tf.constant(rng.normal(size=(5, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        _, logits, penalty = gan_module.TextToImageGAN._real_scores(stub, images, embeddings)
    squared = float(np.sum(a.astype(np.float64) ** 2) + np.sum(b.astype(np.float64) ** 2))
    assert float(penalty) == pytest.approx(squared ** 3, rel=1e-5)
    np.testing.assert_allclose(logits.numpy(), images.numpy().reshape(5, -1) @ a
                               + embeddings.numpy() @ b, rtol=1e-5)
    grad_a, grad_b = tape.gradient(penalty, [stub.discriminator.a, stub.discriminator.b])
    np.testing.assert_allclose(grad_a.numpy(), 6 * squared ** 2 * a, rtol=1e-4)
    np.testing.assert_allclose(grad_b.numpy(), 6 * squared ** 2 * b, rtol=1e-4)


def test_ema_after_one_step_is_the_hand_formula(encoder, batch):
    gan = make_gan(encoder, ema_decay=0.9)
    before = [w.numpy() for w in gan.generator.weights]
    gan.train_step(batch)
    assert len(gan.ema_generator.weights) == len(gan.generator.weights) > 0
    checked = {True: 0, False: 0}
    for average, weight, old in zip(gan.ema_generator.weights, gan.generator.weights, before):
        assert average.shape == weight.shape
        expected = (0.9 * old + 0.1 * weight.numpy()) if weight.trainable else weight.numpy()
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-7,
                                   err_msg=weight.path)
        checked[weight.trainable] += not np.array_equal(old, weight.numpy())
    # Trained weights moved and were averaged; BatchNorm statistics moved and were copied.
    assert checked[True] > 0 and checked[False] > 0
    # Samples come from the average.
    z = gan.noise(2)
    np.testing.assert_allclose(
        gan((z, batch["captions"][:2]), training=False).numpy(),
        gan.ema_generator((z, gan.embed_captions(batch["captions"][:2])), training=False).numpy(),
        rtol=1e-5, atol=1e-6)


def test_diff_augment_shows_d_translated_images_in_both_steps(encoder, batch, monkeypatch):
    from tf_t2i import diff_augment
    seen = []
    translate = diff_augment.translate
    monkeypatch.setattr(diff_augment, "translate",
                        lambda images, shifts: seen.append(shifts.numpy()) or translate(images,
                                                                                         shifts))
    gan = make_gan(encoder, diff_augment="translation")
    gan.train_step(batch)
    batch_size = CONFIG.data.batch_size
    # Real and fake in D's step, then G's fakes: the batch's, and GAN-INT's half batch drawn on
    # its own (a block of the global batch under a strategy).
    assert [len(shifts) for shifts in seen] == [batch_size, batch_size, batch_size,
                                                batch_size // 2]
    bound = diff_augment.max_translation(CONFIG.data.image_size)
    shifts = np.concatenate(seen)
    assert shifts.min() >= -bound and shifts.max() <= bound and len(np.unique(shifts)) > 2
    # Options off: no translation, no penalty.
    seen.clear()
    logs = make_gan(encoder).train_step(batch)
    assert seen == [] and float(logs["gradient_penalty"]) == 0.0


def test_caption_table_skips_padding_and_keeps_every_rows_embedding(encoder):
    """The table embeds shortest first on chunks cut to their longest caption: each row is the
    encoder's embedding of the full padded ids, in the input's order."""
    gan = make_gan(encoder)
    rng = np.random.default_rng(0)
    length = CONFIG.data.caption_length
    lengths = rng.integers(1, length + 1, size=50)
    lengths[:2] = (length, 1)
    ids = rng.integers(1, encoder.vocabulary_size, size=(50, length)).astype(np.int32)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    table = gan.embed_caption_table(ids, chunk_size=8)
    expected = keras.ops.convert_to_numpy(gan.text_encoder(ids, training=False))
    assert table.shape == (50, gan.text_encoder.embedding_dim) and table.dtype == np.float32
    np.testing.assert_allclose(table, expected, atol=1e-5)
