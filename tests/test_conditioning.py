"""Conditioning where it is drawn: G's affine modulation, D's projection term, spectral norm.

Each option is checked against the design it extends (Reed's, with the option off) and against
a hand computation; the `flowers64` preset's models are pinned to Reed's exact variables.
"""
import hashlib
import re

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i.config import apply_overrides, get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.models import blocks, builders
from tf_t2i.models.conditional_affine import ConditionalAffine
from tf_t2i.models.discriminator import Discriminator
from tf_t2i.models.generator import Generator
from tf_t2i.models.residual_block import ResidualBlock
from tf_t2i.models.token_attention_affine import TokenAttentionAffine
from tf_t2i.runs import build_gan

from tests.model_checks import assert_model_checks

BATCH = 2
Z_DIM = 8
EMBEDDING_DIM = 12
G_KWARGS = dict(image_size=32, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM, text_projection_dim=6,
                ngf=8)
D_KWARGS = dict(image_size=32, embedding_dim=EMBEDDING_DIM, text_projection_dim=6, ndf=4)
ALL_ON = ("model.generator_conditioning=affine", "model.discriminator_conditioning=projection",
          "model.spectral_norm=true")

# sha256 of "<path without _<n> suffixes> <shape> <trainable>" per variable, one per line, of
# the flowers64 generator and discriminator as Reed's design builds them (main at 6027cba,
# before these options existed). Any change of a layer, name, shape or order changes it.
FLOWERS64_SIGNATURES = {
    "generator": (54, "caedea5bab71e3cd81d9acebca89e069a4a3183d828438c5b70ab929a640d59b"),
    "discriminator": (44, "6e8ab10e30daa7d9a455a6204379ed427a0603a4b44c68a1f109eaacba256b5d"),
}


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _signature(model):
    lines = "\n".join(f"{re.sub(r'_[0-9]+', '', w.path)} {tuple(w.shape)} {w.trainable}"
                      for w in model.weights)
    return len(model.weights), hashlib.sha256(lines.encode()).hexdigest()


def _largest_singular_value(kernel):
    matrix = np.reshape(_numpy(kernel), (-1, kernel.shape[-1]))
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


def _copy_shared_weights(source, target, skip):
    """Copies `source`'s weights into the weights of `target` whose path contains none of
    `skip`, in order (the two models share every other layer)."""
    shared = [w for w in target.weights if not any(part in w.path for part in skip)]
    assert [tuple(w.shape) for w in shared] == [tuple(w.shape) for w in source.weights]
    for variable, value in zip(shared, source.weights):
        variable.assign(value)


# ConditionalAffine

def test_conditional_affine_checks(tmp_path):
    inputs = (_normal(BATCH, 4, 4, 5), _normal(BATCH, 7, seed=1))
    assert_model_checks(ConditionalAffine, dict(hidden_units=3), inputs, (BATCH, 4, 4, 5),
                        tmp_path)


def test_conditional_affine_starts_as_the_identity_and_computes_its_formula():
    features, condition = _normal(BATCH, 4, 4, 5), _normal(BATCH, 7, seed=1)
    layer = ConditionalAffine()
    np.testing.assert_array_equal(_numpy(layer((features, condition))), features)
    layer.modulation.kernel.assign(_normal(5, 10, seed=2))
    layer.modulation.bias.assign(_normal(10, seed=3))
    hidden = np.maximum(condition @ _numpy(layer.hidden.kernel) + _numpy(layer.hidden.bias), 0)
    modulation = hidden @ _numpy(layer.modulation.kernel) + _numpy(layer.modulation.bias)
    gamma, beta = 1 + modulation[:, None, None, :5], modulation[:, None, None, 5:]
    np.testing.assert_allclose(_numpy(layer((features, condition))), features * gamma + beta,
                               rtol=1e-5, atol=1e-5)


def test_conditional_residual_block_checks(tmp_path):
    inputs = (_normal(BATCH, 4, 4, 8), _normal(BATCH, 6, seed=1))
    assert_model_checks(ResidualBlock, dict(filters=8, bottleneck_filters=2, conditional=True),
                        inputs, (BATCH, 4, 4, 8), tmp_path)


# Generator: affine conditioning

def test_affine_generator_checks(tmp_path):
    inputs = (_normal(BATCH, Z_DIM), _normal(BATCH, EMBEDDING_DIM, seed=1))
    generator = assert_model_checks(Generator, dict(G_KWARGS, conditioning="affine"), inputs,
                                    (BATCH, 32, 32, 3), tmp_path, output_range=(-1.0, 1.0))
    # One modulation after each BatchNorm: 2 outside and 3 in each of the 2 residual blocks,
    # plus the 32x32 preset's one upsampling with a BatchNorm.
    modulations = {w.path.rsplit("/", 2)[0] for w in generator.weights
                   if "modulation/kernel" in w.path}
    assert len(modulations) == 2 + 2 * 3 + 1


@pytest.mark.parametrize("training", [False, True])
def test_affine_generator_with_a_zero_modulation_draws_what_reeds_generator_draws(training):
    """The zero-initialised modulation leaves every BatchNorm output as it is."""
    inputs = (_normal(BATCH, Z_DIM), _normal(BATCH, EMBEDDING_DIM, seed=1))
    concat = Generator(**G_KWARGS)
    affine = Generator(**G_KWARGS, conditioning="affine")
    concat(inputs)
    affine(inputs)
    _copy_shared_weights(concat, affine, skip=("affine",))
    np.testing.assert_allclose(_numpy(affine(inputs, training=training)),
                               _numpy(concat(inputs, training=training)), rtol=1e-5, atol=1e-6)
    # A modulation that is not zero makes the text act at that BatchNorm.
    modulation = next(w for w in affine.weights if "modulation/bias" in w.path)
    modulation.assign(np.full(modulation.shape, 0.5, "float32"))
    assert not np.allclose(_numpy(affine(inputs)), _numpy(concat(inputs)), atol=1e-4)


# TokenAttentionAffine and the generator's attention conditioning

def test_token_attention_affine_checks(tmp_path):
    inputs = (_normal(BATCH, 4, 4, 5), _normal(BATCH, 3, 6, seed=1))
    assert_model_checks(TokenAttentionAffine, dict(key_dim=4), inputs, (BATCH, 4, 4, 5), tmp_path)


def test_token_attention_affine_starts_as_the_identity_and_computes_its_formula():
    features, tokens = _normal(BATCH, 4, 4, 5), _normal(BATCH, 3, 6, seed=1)
    layer = TokenAttentionAffine(key_dim=4)
    np.testing.assert_array_equal(_numpy(layer((features, tokens))), features)
    layer.modulation.kernel.assign(_normal(5, 10, seed=2))
    layer.modulation.bias.assign(_normal(10, seed=3))
    slotted = tokens + _numpy(layer.slot_embedding)
    logits = np.einsum("bhwk,btk->bhwt", features @ _numpy(layer.query.kernel),
                       slotted @ _numpy(layer.key.kernel)) / 2.0
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    values = np.maximum(slotted @ _numpy(layer.value.kernel) + _numpy(layer.value.bias), 0)
    context = np.einsum("bhwt,btc->bhwc", weights, values)
    modulation = context @ _numpy(layer.modulation.kernel) + _numpy(layer.modulation.bias)
    expected = features * (1 + modulation[..., :5]) + modulation[..., 5:]
    np.testing.assert_allclose(_numpy(layer((features, tokens))), expected, rtol=1e-4, atol=1e-4)


def test_attention_generator_checks(tmp_path):
    inputs = (_normal(BATCH, Z_DIM), _normal(BATCH, EMBEDDING_DIM, seed=1))
    generator = assert_model_checks(
        Generator, dict(G_KWARGS, conditioning="attention", text_tokens=3), inputs,
        (BATCH, 32, 32, 3), tmp_path, output_range=(-1.0, 1.0))
    # The 4x4 BatchNorm is modulated by [z, t]; the two of 8x8 and the two of 16x16 by attention
    # over 3 tokens of 4; no residual blocks.
    paths = {w.path.rsplit("/", 2)[0] for w in generator.weights if "modulation/kernel" in w.path}
    assert sum("token_attention_affine" in p for p in paths) == 4
    assert len(paths) == 1 + 4
    assert not any("residual_block" in w.path for w in generator.weights)
    slots = [w for w in generator.weights if "slot_embedding" in w.path]
    assert [tuple(w.shape) for w in slots] == [(3, 4)] * 4


def test_token_slots_tell_tokens_of_the_same_content_apart():
    """Swapping two tokens changes a pixel's modulation only through the slot embeddings: without
    them the layer reads a bag of tokens, which cannot bind a colour to a part."""
    features, tokens = _normal(BATCH, 4, 4, 5), _normal(BATCH, 3, 6, seed=1)
    swapped = tokens[:, [1, 0, 2]]
    layer = TokenAttentionAffine(key_dim=4)
    layer((features, tokens))
    layer.modulation.kernel.assign(_normal(5, 10, seed=2))
    layer.slot_embedding.assign(_normal(3, 6, seed=3))
    assert not np.allclose(_numpy(layer((features, tokens))), _numpy(layer((features, swapped))),
                           atol=1e-3)
    layer.slot_embedding.assign(np.zeros((3, 6), "float32"))
    np.testing.assert_allclose(_numpy(layer((features, tokens))),
                               _numpy(layer((features, swapped))), rtol=1e-5, atol=1e-5)


def test_attention_conditioning_needs_tokens_that_divide_the_embedding():
    with pytest.raises(ValueError, match="text_tokens \\(5\\) must divide embedding_dim"):
        Generator(**G_KWARGS, conditioning="attention", text_tokens=5)
    with pytest.raises(ValueError, match="model.text_tokens \\(5\\) must divide"):
        apply_overrides(get_preset("tiny"), ["model.generator_conditioning=attention",
                                             "model.text_tokens=5"]).validate()
    # Other conditionings ignore the field.
    apply_overrides(get_preset("tiny"), ["model.text_tokens=5"]).validate()


def test_generator_rejects_an_unknown_conditioning():
    with pytest.raises(ValueError, match="conditioning"):
        Generator(conditioning="film")


# Discriminator: projection term, spectral normalisation, no BatchNorm

@pytest.mark.parametrize("extra", [dict(conditioning="projection"),
                                   dict(spectral_norm=True, batch_norm=False),
                                   dict(conditioning="projection", spectral_norm=True,
                                        minibatch_stddev=True)])
def test_discriminator_option_checks(extra, tmp_path):
    inputs = (np.tanh(_normal(BATCH, 32, 32, 3)), _normal(BATCH, EMBEDDING_DIM, seed=1))
    assert_model_checks(Discriminator, dict(D_KWARGS, **extra), inputs, (BATCH,), tmp_path)


@pytest.mark.parametrize("training", [False, True])
def test_projection_logit_is_reeds_logit_plus_the_inner_product(training):
    """W starts at zero (D is Reed's); with any W the logit gains <W t, sum-pooled features>."""
    images = np.tanh(_normal(BATCH, 32, 32, 3))
    text, wrong_text = _normal(BATCH, EMBEDDING_DIM, seed=1), _normal(BATCH, EMBEDDING_DIM, seed=2)
    concat = Discriminator(**D_KWARGS)
    projection = Discriminator(**D_KWARGS, conditioning="projection")
    concat((images, text))
    projection((images, text))
    _copy_shared_weights(concat, projection, skip=("embedding_projection",))
    np.testing.assert_array_equal(_numpy(projection((images, text), training=training)),
                                  _numpy(concat((images, text), training=training)))
    projection.embedding_projection.kernel.assign(_normal(EMBEDDING_DIM, 16, seed=3))
    weight = _numpy(projection.embedding_projection.kernel)
    features = projection.features(images, training=training)
    pooled = _numpy(features).sum(axis=(1, 2))
    for caption in (text, wrong_text):
        expected = (_numpy(concat.score(features, caption, training=training))
                    + np.sum((caption @ weight) * pooled, axis=-1))
        # The inner product sums float32 terms of up to ~40 that largely cancel (to 0.94 on
        # row 0): their rounding, whose order the CPU kernels may change, reaches ~1e-5.
        np.testing.assert_allclose(
            _numpy(projection.score(features, caption, training=training)), expected,
            rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_numpy(projection((images, text), training=training)),
                               _numpy(projection.score(features, text, training=training)),
                               rtol=1e-5, atol=1e-5)


def test_discriminator_without_batch_norm_has_none():
    discriminator = Discriminator(**D_KWARGS, spectral_norm=True, batch_norm=False)
    discriminator((np.tanh(_normal(BATCH, 32, 32, 3)), _normal(BATCH, EMBEDDING_DIM)))
    assert not [w for w in discriminator.weights if "batch_normalization" in w.path]


def test_spectral_norm_brings_the_largest_singular_value_to_one():
    layer = blocks.spectral_norm(keras.layers.Dense(6, kernel_initializer="random_normal"))
    inputs = _normal(BATCH, 9)
    layer(inputs)
    layer.layer.kernel.assign(3.0 * _normal(9, 6, seed=4))
    # Keras draws u unseeded: fix it, so the test does not depend on the draw.
    layer.vector_u.assign(_normal(1, 6, seed=6))
    assert _largest_singular_value(layer.layer.kernel) > 14
    for _ in range(6):
        layer(inputs, training=True)
    assert abs(_largest_singular_value(layer.layer.kernel) - 1.0) < 0.002


def test_every_kernel_of_a_spectrally_normalised_discriminator_is_normalised():
    discriminator = Discriminator(**D_KWARGS, conditioning="projection", spectral_norm=True)
    inputs = (np.tanh(_normal(BATCH, 32, 32, 3)), _normal(BATCH, EMBEDDING_DIM))
    discriminator(inputs)
    wrapped = [w for w in discriminator.weights if w.path.endswith("vector_u")]
    for seed, vector_u in enumerate(wrapped):
        vector_u.assign(_normal(*vector_u.shape, seed=seed))
    # One power iteration per call: the estimate of sigma converges at the rate of the
    # second to the first singular value, slow for random kernels (training moves kernels
    # little between calls, so there u tracks them).
    train_call = tf.function(lambda: discriminator(inputs, training=True))
    for _ in range(30):
        train_call()
    kernels = [w for w in discriminator.trainable_weights
               if w.path.endswith("kernel") and "embedding_projection" not in w.path]
    # 3 downsamplings, 3 residual convolutions, the text projection and 2 joint convolutions;
    # the projection term's W stays out (a zero start rescaled to norm 1 gave logits of ~100).
    assert len(kernels) == len(wrapped) == 9
    assert "spectral_norm" not in discriminator.embedding_projection.kernel.path
    for kernel in kernels:
        assert abs(_largest_singular_value(kernel) - 1.0) < 0.05, kernel.path


def test_spectral_norm_keeps_the_kernel_in_float32_under_mixed_bfloat16():
    """Keras's wrapper under a bfloat16 policy would round the kernel to bfloat16 at every
    training call, erasing small optimizer updates."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    layer = blocks.spectral_norm(keras.layers.Dense(4))
    inputs = _normal(BATCH, 3)
    outputs = layer(inputs, training=True)
    assert keras.backend.standardize_dtype(layer.layer.compute_dtype) == "bfloat16"
    kernel = layer.layer.kernel
    kernel.assign(_numpy(kernel) + 1e-5)
    layer(inputs, training=True)
    value = _numpy(kernel)
    assert keras.backend.standardize_dtype(kernel.dtype) == "float32"
    assert not np.array_equal(value, value.astype(ml_dtypes.bfloat16).astype("float32"))
    assert np.all(np.isfinite(_numpy(outputs)))


# Configuration and the training model

def test_flowers64_models_keep_reeds_exact_variables():
    config = get_preset("flowers64")
    for build in (builders.build_generator, builders.build_discriminator):
        model = build(config.model, config.data)
        assert _signature(model) == FLOWERS64_SIGNATURES[model.name], model.name


DEFAULT_SLOTS = 16


def test_reeds_presets_have_the_options_off_and_the_default_its_measured_choice():
    """flowers64, cub64 (and tiny) keep Reed's conditioning; `default` uses what measured best
    in the ablation (docs/BENCHMARKS.md): affine G, projection D, over five seeds the text
    encoder's BatchNorm, and over five G's nearest-neighbour upsampling at ngf 32 and its rate
    of four times D's, (session 11) the hinge loss and a slower encoder warm-up with a
    stronger hard negative term, and (session 16) competing text slots that read words, with
    per-pixel attention over them in G and a longer warm-up, and (sessions 17-18) spectral
    normalisation instead of BatchNorm in D, without GAN-INT, and (session 19) an encoder rate
    of 1e-3, single captions for G and D and a style stage that also redraws real images."""
    for name in ("tiny", "flowers64", "cub64"):
        model, train = get_preset(name).model, get_preset(name).train
        assert (model.generator_conditioning, model.discriminator_conditioning,
                model.spectral_norm, model.discriminator_batch_norm, model.text_batch_norm,
                model.upsampling) == ("concat", "concat", False, True, False, "transpose"), name
        assert (train.learning_rate, train.d_learning_rate) == (2e-4, 0.0), name
        assert (train.gan_loss, train.mode_seeking_weight) == ("bce", 0.0), name
    default = get_preset("default")
    model = default.model
    assert (model.generator_conditioning, model.discriminator_conditioning,
            model.spectral_norm, model.discriminator_batch_norm, model.text_batch_norm,
            model.upsampling, model.ngf) == ("attention", "projection", True, False, True,
                                             "nearest", 32)
    assert (model.text_slots, model.text_tokens, model.text_slot_values,
            model.text_slot_softmax) == (DEFAULT_SLOTS, DEFAULT_SLOTS, "local", "slots")
    assert (default.train.learning_rate, default.train.d_learning_rate) == (8e-4, 2e-4)
    assert (default.train.gan_loss, default.train.mode_seeking_weight,
            default.train.encoder_learning_rate,
            default.train.encoder_warmup_steps) == ("hinge", 1.0, 1e-3, 500)
    assert default.train.interp_weight == 0.0
    # (Session 19) single captions for G and D, and a style stage that redraws real images.
    assert (default.train.conditioning_captions,
            default.train.style_reconstruction_weight) == (1, 1000.0)
    for name in ("tiny", "flowers64", "cub64"):
        assert get_preset(name).train.interp_weight == 1.0, name
        assert get_preset(name).model.text_slots == 0, name
        assert (get_preset(name).train.conditioning_captions,
                get_preset(name).train.style_reconstruction_weight) == (0, 0.0), name


@pytest.mark.parametrize("override, field", [
    ("model.generator_conditioning=film", "model.generator_conditioning"),
    ("model.discriminator_conditioning=hinge", "model.discriminator_conditioning"),
    ("model.text_slot_values=words", "model.text_slot_values"),
    ("model.text_slot_softmax=words", "model.text_slot_softmax"),
])
def test_validate_names_a_bad_conditioning(override, field):
    with pytest.raises(ValueError, match=f"^{field} must be one of"):
        apply_overrides(get_preset("tiny"), [override]).validate()


def test_builders_pass_the_options_on():
    config = apply_overrides(get_preset("tiny"), [*ALL_ON, "model.discriminator_batch_norm=false"])
    generator = builders.build_generator(config.model, config.data)
    discriminator = builders.build_discriminator(config.model, config.data)
    slots = apply_overrides(config, ["model.text_slots=4", "model.text_slot_values=local",
                                     "model.text_slot_softmax=slots"])
    text_encoder = builders.build_text_encoder(slots.model, slots.data, vocabulary_size=12)
    assert (text_encoder.slots, text_encoder.value_source,
            text_encoder.slot_softmax) == (4, "local", "slots")
    assert generator.conditioning == "affine"
    assert (discriminator.conditioning, discriminator.spectral_norm,
            discriminator.batch_norm) == ("projection", True, False)


@pytest.mark.slow  # ~20-35 s; tests/test_gan.py trains a step with every option on in the default suite
def test_a_train_step_with_every_option_on_is_finite_and_moves_g_and_d():
    tiny = apply_overrides(get_preset("tiny"), [*ALL_ON, "data.synthetic_images_per_class=1"])
    encoder = CaptionEncoder(tiny.data.alphabet, tiny.data.caption_length)
    batch = next(iter(make_train_dataset(load_dataset(tiny.data).train, tiny.data, encoder)))
    gan = build_gan(tiny, encoder.vocabulary_size, steps_per_epoch=10)
    before = {name: [_numpy(w).copy() for w in getattr(gan, name).trainable_weights]
              for name in ("generator", "discriminator")}
    # Two steps: on the first, the zero-initialised modulation passes no gradient to the
    # hidden layer of each ConditionalAffine MLP.
    for _ in range(2):
        logs = gan.train_step(batch)
        assert all(np.isfinite(float(value)) for value in logs.values()), logs
    for name, values in before.items():
        after = getattr(gan, name).trainable_weights
        moved = sum(not np.array_equal(a, _numpy(b)) for a, b in zip(values, after))
        assert moved == len(values), (name, moved, len(values))
        # D starts as Reed's (the projection's W at zero), so the losses start near log 2,
        # not at the ~100 of a projection rescaled to norm 1.
        assert float(logs["g_loss"]) < 5, logs
    # Spectral normalisation: D's kernels stay near norm 1 after its updates.
    kernel = gan.discriminator.joint_classifier.layers[-1].layer.kernel
    assert _largest_singular_value(kernel) < 1.2


def _train_cli_arrays(tmp_path, name, argv, mirrored):
    """Every variable (each replica's copy) after train.py `argv`, on two logical CPUs under
    MirroredStrategy or on one device."""
    from tests import test_distribution as distributed

    code = distributed.TRAIN_CLI
    if mirrored:
        code = ("import sys, tests.test_distribution as t\nt.use_logical_cpus(2)\n"
                "t.train_cli(*sys.argv[1:])\n")
        argv = [*argv, "--strategy", "mirrored"]
    distributed.run_python(code, str(tmp_path / f"{name}.npz"), *argv, "--out",
                           str(tmp_path / name))
    arrays = distributed.load_arrays(tmp_path / f"{name}.npz")
    for key, value in arrays.items():
        if key.endswith("@1"):
            np.testing.assert_array_equal(value, arrays[key[:-2] + "@0"], err_msg=key)
    assert sum("vector_u" in key for key in arrays) >= 9
    return distributed.single_copies(arrays)


def _one_gan_step_argv(**train):
    from tests import test_distribution as distributed

    return ["--preset", "tiny", *distributed.cli_overrides(steps=1, style_steps=0,
                                                           steps_per_execution=1, **train),
            *[flag for option in ALL_ON for flag in ("--set", option)]]


@pytest.mark.slow
def test_every_option_on_trains_alike_on_two_mirrored_replicas_and_one_device(tmp_path):
    """One GAN step of train.py with the three options on: under MirroredStrategy on two
    logical CPUs both replicas end with the same weights (spectral norm's kernel rewrites
    included), equal to one device's.

    One step, because the zero-started weights (the modulation MLPs' last layers, the
    projection) move by Adam's first step lr * g / (|g| + eps), which for gradients near eps
    depends on the order of the replica sums: after one step they agree to ~1e-6 (of values
    ~2e-4), after three steps they had drifted apart by up to half their size.
    """
    argv = _one_gan_step_argv()
    mirrored = _train_cli_arrays(tmp_path, "mirrored", argv, mirrored=True)
    one = _train_cli_arrays(tmp_path, "one", argv, mirrored=False)
    assert set(mirrored) >= set(one)
    for name, value in one.items():
        scale = max(float(np.abs(value).max()) if value.size else 0.0, 1e-2)
        np.testing.assert_allclose(mirrored[name], value, rtol=0, atol=1e-3 * scale,
                                   err_msg=name)


@pytest.mark.slow
def test_every_option_on_trains_under_xla(tmp_path):
    """The same step compiled with XLA on one device: every variable is finite. (XLA under
    MirroredStrategy fails before any option's code, in the encoder step's all_gather:
    "merge_call called while defining a new graph".)"""
    argv = [*_one_gan_step_argv(), "--set", "train.jit_compile=true"]
    arrays = _train_cli_arrays(tmp_path, "one", argv, mirrored=False)
    assert all(np.all(np.isfinite(value)) for value in arrays.values())


def test_a_train_step_with_attention_conditioning_moves_the_token_attention():
    tiny = apply_overrides(get_preset("tiny"), ["model.generator_conditioning=attention",
                                                "model.text_tokens=4",
                                                "data.synthetic_images_per_class=1"])
    encoder = CaptionEncoder(tiny.data.alphabet, tiny.data.caption_length)
    batch = next(iter(make_train_dataset(load_dataset(tiny.data).train, tiny.data, encoder)))
    gan = build_gan(tiny, encoder.vocabulary_size, steps_per_epoch=10)
    attention = [w for w in gan.generator.trainable_weights if "token_attention_affine" in w.path]
    # Per layer: slots, query and key kernels, value and modulation kernels and biases.
    assert len(attention) == 4 * 7
    before = [_numpy(w).copy() for w in attention]
    # Two steps: on the first, the zero-initialised modulation passes no gradient to the
    # queries, keys and values.
    for _ in range(2):
        logs = gan.train_step(batch)
        assert all(np.isfinite(float(value)) for value in logs.values()), logs
    assert all(not np.array_equal(_numpy(w), b) for w, b in zip(attention, before))
