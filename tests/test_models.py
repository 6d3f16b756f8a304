"""Tiny-size checks of every model: shapes, dtypes, ranges, config and weight round-trips."""
import dataclasses

import keras
import numpy as np
import pytest

from tf_t2i.config import get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.models import builders
from tf_t2i.models.discriminator import Discriminator, discriminator_widths
from tf_t2i.models.generator import Generator, generator_widths
from tf_t2i.models.image_encoder import ImageEncoder
from tf_t2i.models.nearest_upsampling_conv2d import NearestUpsamplingConv2D
from tf_t2i.models.residual_block import ResidualBlock
from tf_t2i.models.style_encoder import StyleEncoder
from tf_t2i.models.text_encoder import TextEncoder, slot_attention_weights

from tests.model_checks import assert_model_checks

BATCH = 2
Z_DIM = 8
EMBEDDING_DIM = 12
TEXT_KWARGS = dict(vocabulary_size=10, sequence_length=20, char_embedding_dim=8,
                   conv_filters=(8, 8), rnn_units=8, embedding_dim=EMBEDDING_DIM)


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _images(size, seed=0):
    return np.tanh(_normal(BATCH, size, size, 3, seed=seed))


def _caption_ids(length, seed=0):
    """Two right-padded captions of 7 and `length` characters."""
    ids = np.random.default_rng(seed).integers(1, TEXT_KWARGS["vocabulary_size"], (BATCH, length))
    ids[0, 7:] = 0
    return ids.astype("int32")


@pytest.fixture
def mixed_bfloat16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def test_residual_block(tmp_path):
    assert_model_checks(ResidualBlock,
                        dict(filters=8, bottleneck_filters=2, activation="leaky_relu"),
                        _normal(BATCH, 4, 4, 8), (BATCH, 4, 4, 8), tmp_path)
    with pytest.raises(ValueError, match="input channels"):
        ResidualBlock(filters=8, bottleneck_filters=2)(_normal(BATCH, 4, 4, 6))


def test_widths_follow_the_paper_schedule():
    assert generator_widths(64, 128) == [1024, 512, 256, 128]
    assert generator_widths(32, 128) == [1024, 512, 256]
    assert generator_widths(128, 128) == [1024, 512, 256, 128, 64]
    assert discriminator_widths(64, 64) == [64, 128, 256, 512]
    assert discriminator_widths(32, 64) == [64, 128, 256]
    assert discriminator_widths(128, 64) == [64, 128, 256, 512, 512]


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("upsampling", ["transpose", "nearest", "nearest_output"])
def test_generator(image_size, upsampling, tmp_path):
    kwargs = dict(image_size=image_size, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM,
                  text_projection_dim=6, ngf=4, upsampling=upsampling)
    inputs = (_normal(BATCH, Z_DIM), _normal(BATCH, EMBEDDING_DIM, seed=1))
    assert_model_checks(Generator, kwargs, inputs, (BATCH, image_size, image_size, 3), tmp_path,
                        output_range=(-1.0, 1.0))


@pytest.mark.parametrize("upsampling, transposed, nearest", [
    ("transpose", 3, 0), ("nearest", 0, 3), ("nearest_output", 2, 1)])
def test_generator_upsampling_layers(upsampling, transposed, nearest):
    """32 px takes three upsamplings; "nearest_output" keeps Reed's transposed convolutions
    but the last, to RGB, which is nearest neighbour + a 3x3 convolution to 3 channels."""
    generator = Generator(image_size=32, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM,
                          text_projection_dim=6, ngf=4, upsampling=upsampling)
    layers = generator.image_decoder.layers
    assert sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in layers) == transposed
    upsamplings = [layer for layer in layers if isinstance(layer, NearestUpsamplingConv2D)]
    assert len(upsamplings) == nearest
    if upsampling == "nearest_output":
        assert (upsamplings[0].filters, upsamplings[0].kernel_size) == (3, (3, 3))
        assert upsamplings[0] is layers[-2]  # then tanh


def test_generator_uses_the_text():
    generator = Generator(image_size=32, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM,
                          text_projection_dim=6, ngf=4)
    z = _normal(1, Z_DIM)
    first = generator((z, _normal(1, EMBEDDING_DIM, seed=1)))
    second = generator((z, _normal(1, EMBEDDING_DIM, seed=2)))
    assert not np.allclose(first, second)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        Generator(image_size=48)
    with pytest.raises(ValueError, match="upsampling"):
        Generator(upsampling="bilinear")


def test_initialisation_is_dcgan():
    generator = Generator(image_size=32, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM,
                          text_projection_dim=6, ngf=8)
    generator((_normal(1, Z_DIM), _normal(1, EMBEDDING_DIM)))
    kernels = [w for w in generator.weights
               if w.path.endswith("kernel") and np.prod(w.shape) > 4000]
    gammas = np.concatenate([keras.ops.convert_to_numpy(w) for w in generator.weights
                             if w.path.endswith("gamma")])
    assert kernels
    for kernel in kernels:
        assert abs(float(np.std(keras.ops.convert_to_numpy(kernel))) - 0.02) < 0.002
    assert abs(float(gammas.mean()) - 1.0) < 0.005 and 0.01 < float(gammas.std()) < 0.03


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_discriminator(image_size, tmp_path):
    kwargs = dict(image_size=image_size, embedding_dim=EMBEDDING_DIM, text_projection_dim=6, ndf=4)
    inputs = (_images(image_size), _normal(BATCH, EMBEDDING_DIM, seed=1))
    assert_model_checks(Discriminator, kwargs, inputs, (BATCH,), tmp_path)


def test_discriminator_with_minibatch_stddev(tmp_path):
    kwargs = dict(image_size=32, embedding_dim=EMBEDDING_DIM, text_projection_dim=6, ndf=4,
                  minibatch_stddev=True)
    inputs = (_images(32), _normal(BATCH, EMBEDDING_DIM, seed=1))
    assert_model_checks(Discriminator, kwargs, inputs, (BATCH,), tmp_path)


def test_minibatch_stddev_channel_sees_a_collapsed_batch():
    from tf_t2i.models.discriminator import _minibatch_stddev

    varied = _normal(BATCH, 4 * 4 * 8, seed=2).reshape(BATCH, 4, 4, 8)
    collapsed = np.repeat(varied[:1], BATCH, axis=0)
    varied_channel = keras.ops.convert_to_numpy(_minibatch_stddev(varied))
    assert varied_channel.shape == (BATCH, 4, 4, 1)
    np.testing.assert_allclose(varied_channel, np.sqrt(varied.var(axis=0) + 1e-8).mean(),
                               rtol=1e-5)
    assert keras.ops.convert_to_numpy(_minibatch_stddev(collapsed)).max() < 1e-3


@pytest.mark.parametrize("state_batch_norm, slots, value_source",
                         [(False, 0, "states"), (True, 0, "states"), (True, 4, "states"),
                          (True, 4, "local")])
def test_text_encoder(tmp_path, state_batch_norm, slots, value_source):
    slot_softmax = "slots" if value_source == "local" else "positions"
    assert_model_checks(TextEncoder,
                        {**TEXT_KWARGS, "state_batch_norm": state_batch_norm, "slots": slots,
                         "value_source": value_source, "slot_softmax": slot_softmax},
                        _caption_ids(20), (BATCH, EMBEDDING_DIM), tmp_path)


def test_slot_attention_weights_by_hand():
    """Two slots, three positions (the last is padding): under "positions" each slot's softmax
    is its own; under "slots" a position goes to the slot that scores it higher, and each slot
    averages what it won."""
    logits = np.array([[[4.0, 0.0, 9.0], [0.0, 4.0, 9.0]]], "float32")
    caption = np.array([[1.0, 1.0, 0.0]], "float32")
    own = keras.ops.convert_to_numpy(slot_attention_weights(logits, caption, "positions"))
    low, high = 1 / (1 + np.exp(4.0)), np.exp(4.0) / (1 + np.exp(4.0))
    np.testing.assert_allclose(own, [[[high, low, 0.0], [low, high, 0.0]]], rtol=1e-5, atol=1e-7)
    shared = keras.ops.convert_to_numpy(slot_attention_weights(logits, caption, "slots"))
    np.testing.assert_allclose(shared, own, rtol=1e-5, atol=1e-7)  # two positions: the same
    equal = np.zeros((1, 2, 3), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(slot_attention_weights(equal, caption, "slots")),
        [[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]], rtol=1e-5)
    # Both slots prefer position 0; under "positions" both read it, under "slots" they split
    # it, so the second slot's weight moves to position 1 (its share there is larger).
    rivals = np.array([[[4.0, 0.0, 0.0], [3.0, 1.0, 0.0]]], "float32")
    alone = keras.ops.convert_to_numpy(slot_attention_weights(rivals, caption, "positions"))
    split = keras.ops.convert_to_numpy(slot_attention_weights(rivals, caption, "slots"))
    assert alone[0, 1, 0] > 0.85 and split[0, 1, 0] < 0.5 < split[0, 1, 1]
    shares = np.exp(rivals[0, :, :2]) / np.exp(rivals[0, :, :2]).sum(axis=0)
    np.testing.assert_allclose(split[0, :, :2], shares / shares.sum(axis=1, keepdims=True),
                               rtol=1e-5)
    empty = keras.ops.convert_to_numpy(slot_attention_weights(rivals, caption * 0, "slots"))
    assert np.all(empty == 0.0)


@pytest.mark.parametrize("value_source", ["local", "states"])
def test_local_slot_values_read_the_first_convolution_and_not_the_gru(value_source):
    """With the keys zeroed every slot attends evenly over the caption's positions, so a "local"
    slot is the mean of Dense(max-pool(first convolution)) over them, and the GRU's weights
    cannot change it; "states" slots read the GRU and do change. (Slots that compete for
    evenly scored positions share them evenly, so "slots" attention gives the same mean.)"""
    encoder = TextEncoder(**TEXT_KWARGS, slots=4, value_source=value_source,
                          slot_softmax="slots")
    ids = _caption_ids(20)
    encoder(ids)
    encoder.slot_keys.kernel.assign(np.zeros(encoder.slot_keys.kernel.shape, "float32"))
    before = keras.ops.convert_to_numpy(encoder(ids))
    encoder.rnn.cell.kernel.assign(encoder.rnn.cell.kernel.numpy() + 0.5)
    after = keras.ops.convert_to_numpy(encoder(ids))
    if value_source == "states":
        assert np.abs(after - before).max() > 1e-3
        return
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    mask = (ids != 0).astype("float32")[..., None]
    features = keras.ops.convert_to_numpy(
        encoder.temporal_conv_0(encoder.char_embedding(ids) * mask)) * mask
    positions = features.shape[1] // 3
    pooled = features[:, :positions * 3].reshape(BATCH, positions, 3, -1).max(axis=2)
    caption = mask[:, :positions * 3, 0].reshape(BATCH, positions, 3).max(axis=2)
    values = keras.ops.convert_to_numpy(encoder.slot_values(pooled))
    mean = (values * caption[..., None]).sum(axis=1) / caption.sum(axis=1, keepdims=True)
    expected = mean * np.sqrt(EMBEDDING_DIM / 4) / np.linalg.norm(mean, axis=-1, keepdims=True)
    np.testing.assert_allclose(before, np.tile(expected, 4), rtol=1e-4, atol=1e-5)


def test_text_slots_each_have_norm_sqrt_of_their_share_and_ignore_padding():
    encoder = TextEncoder(**TEXT_KWARGS, slots=4)
    short = _caption_ids(20)
    short[0, 12:] = 0
    long = np.concatenate([short, np.zeros_like(short)], axis=1)
    short_embeddings = keras.ops.convert_to_numpy(encoder(short))
    slots = short_embeddings.reshape(BATCH, 4, EMBEDDING_DIM // 4)
    np.testing.assert_allclose(np.linalg.norm(slots, axis=-1), np.sqrt(EMBEDDING_DIM / 4),
                               rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(long))[0], short_embeddings[0],
                               rtol=1e-5, atol=1e-5)
    empty = np.zeros_like(short)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(encoder(empty))))
    with pytest.raises(ValueError, match="slots \\(5\\) must be 0 or divide"):
        TextEncoder(**TEXT_KWARGS, slots=5)
    with pytest.raises(ValueError, match="value_source must be one of"):
        TextEncoder(**TEXT_KWARGS, slots=4, value_source="words")
    with pytest.raises(ValueError, match="slot_softmax must be one of"):
        TextEncoder(**TEXT_KWARGS, slots=4, slot_softmax="words")


def test_text_batch_norm_starts_the_captions_apart():
    """`model.text_batch_norm`: at initialisation, the tiny preset's text encoder gives 32
    built-in captions nearly one embedding (mean cosine > 0.95); with BatchNorm on the mean
    GRU state they start spread (mean cosine near 0), so the matching loss has differences to
    work on from its first step."""
    config = get_preset("tiny")
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    captions = [image[0] for image in load_dataset(config.data).train.captions[:32]]
    ids = encoder.encode(captions).numpy()
    mean_cosines = []
    for text_batch_norm in (False, True):
        keras.utils.set_random_seed(0)
        model = builders.build_text_encoder(
            dataclasses.replace(config.model, text_batch_norm=text_batch_norm), config.data,
            encoder.vocabulary_size)
        embeddings = keras.ops.convert_to_numpy(model(ids, training=True))
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        cosines = unit @ unit.T
        mean_cosines.append(cosines[~np.eye(len(ids), dtype=bool)].mean())
    assert mean_cosines[0] > 0.95 and abs(mean_cosines[1]) < 0.3


def test_text_encoder_all_padding_row_is_finite():
    encoder = TextEncoder(**TEXT_KWARGS)
    ids = _caption_ids(20)
    ids[1] = 0
    embeddings = keras.ops.convert_to_numpy(encoder(ids))
    assert np.all(np.isfinite(embeddings))


def test_text_encoder_embeddings_have_norm_sqrt_dim():
    encoder = TextEncoder(**TEXT_KWARGS)
    embeddings = keras.ops.convert_to_numpy(encoder(_caption_ids(20)))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1),
                               np.sqrt(TEXT_KWARGS["embedding_dim"]), rtol=1e-4)


def test_text_encoder_ignores_padding_length():
    encoder = TextEncoder(**TEXT_KWARGS)
    short = _caption_ids(20)
    long = np.concatenate([short, np.zeros_like(short)], axis=1)
    long[1, 20:] = 3  # a full-length second caption does change when it grows
    short_embeddings = keras.ops.convert_to_numpy(encoder(short))
    long_embeddings = keras.ops.convert_to_numpy(encoder(long))
    np.testing.assert_allclose(long_embeddings[0], short_embeddings[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(long_embeddings[1], short_embeddings[1])


def test_text_encoder_rejects_too_short_captions():
    with pytest.raises(ValueError, match="sequence_length"):
        TextEncoder(**{**TEXT_KWARGS, "sequence_length": 8, "conv_filters": (4, 4, 4)})


def test_image_encoder(tmp_path):
    assert_model_checks(ImageEncoder, dict(filters=(4, 8), embedding_dim=EMBEDDING_DIM),
                        _images(32), (BATCH, EMBEDDING_DIM), tmp_path)


def test_style_encoder(tmp_path):
    assert_model_checks(StyleEncoder, dict(z_dim=Z_DIM, filters=(4, 8, 8)), _images(32),
                        (BATCH, Z_DIM), tmp_path)


def test_models_run_under_mixed_bfloat16(mixed_bfloat16):
    generator = Generator(image_size=32, z_dim=Z_DIM, embedding_dim=EMBEDDING_DIM,
                          text_projection_dim=6, ngf=4)
    discriminator = Discriminator(image_size=32, embedding_dim=EMBEDDING_DIM,
                                  text_projection_dim=6, ndf=4)
    text_encoder = TextEncoder(**TEXT_KWARGS)
    embeddings = text_encoder(_caption_ids(20))
    images = generator((_normal(BATCH, Z_DIM), embeddings), training=True)
    logits = discriminator((images, embeddings), training=True)
    assert generator.compute_dtype == "bfloat16"
    for tensor in (embeddings, images, logits):
        assert keras.backend.standardize_dtype(tensor.dtype) == "float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(tensor)))
    assert tuple(logits.shape) == (BATCH,)


def test_builders_use_the_config():
    config = get_preset("tiny")
    model_cfg, data_cfg = config.model, config.data
    size = data_cfg.image_size
    text_encoder = builders.build_text_encoder(model_cfg, data_cfg, vocabulary_size=40)
    models = [text_encoder, builders.build_image_encoder(model_cfg, data_cfg),
              builders.build_generator(model_cfg, data_cfg),
              builders.build_discriminator(model_cfg, data_cfg),
              builders.build_style_encoder(model_cfg, data_cfg)]
    assert all(model.built and model.trainable_variables for model in models)
    assert text_encoder.sequence_length == data_cfg.caption_length
    assert models[2].ngf == model_cfg.ngf and models[2].image_size == size
    assert models[3].ndf == model_cfg.ndf
    images = models[2]((_normal(BATCH, model_cfg.z_dim), _normal(BATCH, model_cfg.embedding_dim)))
    assert tuple(images.shape) == (BATCH, size, size, 3)
    assert tuple(models[4](images).shape) == (BATCH, model_cfg.z_dim)


@pytest.mark.parametrize("sync", [False, True])
def test_sync_batch_norm_reaches_every_batch_norm_and_survives_the_config(sync):
    """`train.sync_batch_norm` -> builders -> every BatchNormalization(synchronized=...)."""
    config = get_preset("tiny")
    model_cfg, data_cfg = config.model, config.data
    models = [builders.build_text_encoder(
                  dataclasses.replace(model_cfg, text_batch_norm=True), data_cfg, 10,
                  sync_batch_norm=sync),
              builders.build_image_encoder(model_cfg, data_cfg, sync),
              builders.build_generator(model_cfg, data_cfg, sync),
              builders.build_discriminator(model_cfg, data_cfg, sync),
              builders.build_style_encoder(model_cfg, data_cfg, sync)]
    for model in models:
        norms = [layer for layer in model._flatten_layers()
                 if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms and all(norm.synchronized == sync for norm in norms), model.name
        clone = type(model).from_config(model.get_config())
        assert clone.sync_batch_norm == sync
