"""Built models from a configuration: unpack `ModelConfig`/`DataConfig` fields into kwargs.

Each builder calls its model once on zeros so that its variables exist before an optimizer,
checkpoint or distribution strategy looks for them. `sync_batch_norm` (from
`TrainConfig.sync_batch_norm`) makes every BatchNorm use the statistics of the global batch of all
replicas.
"""
import keras

from tf_t2i.models.discriminator import Discriminator
from tf_t2i.models.generator import Generator
from tf_t2i.models.image_encoder import ImageEncoder
from tf_t2i.models.style_encoder import StyleEncoder
from tf_t2i.models.text_encoder import TextEncoder


def _images(data_cfg):
    return keras.ops.zeros((1, data_cfg.image_size, data_cfg.image_size, 3))


def build_text_encoder(model_cfg, data_cfg, vocabulary_size, jit_compile=False,
                       sync_batch_norm=False):
    """Returns a built `TextEncoder` for captions of `data_cfg.caption_length` characters.

    Args:
        model_cfg: a `ModelConfig`.
        data_cfg: a `DataConfig`.
        vocabulary_size: number of character ids (2 + distinct alphabet characters).
        jit_compile: the train step is compiled with XLA, so the GRU must not use cuDNN.
        sync_batch_norm: the BatchNorm of `model_cfg.text_batch_norm` synchronised over replicas.
    """
    encoder = TextEncoder(
        vocabulary_size=vocabulary_size, sequence_length=data_cfg.caption_length,
        char_embedding_dim=model_cfg.char_embedding_dim, conv_filters=model_cfg.text_conv_filters,
        rnn_units=model_cfg.text_rnn_units, embedding_dim=model_cfg.embedding_dim,
        use_cudnn=False if jit_compile else "auto", state_batch_norm=model_cfg.text_batch_norm,
        sync_batch_norm=sync_batch_norm, slots=model_cfg.text_slots,
        value_source=model_cfg.text_slot_values, slot_softmax=model_cfg.text_slot_softmax,
        name="text_encoder")
    encoder(keras.ops.zeros((1, data_cfg.caption_length), dtype="int32"))
    return encoder


def build_image_encoder(model_cfg, data_cfg, sync_batch_norm=False):
    """Returns a built `ImageEncoder` for `data_cfg.image_size` images."""
    encoder = ImageEncoder(filters=model_cfg.image_encoder_filters,
                           embedding_dim=model_cfg.embedding_dim, sync_batch_norm=sync_batch_norm,
                           name="image_encoder")
    encoder(_images(data_cfg))
    return encoder


def build_generator(model_cfg, data_cfg, sync_batch_norm=False, name="generator"):
    """Returns a built `Generator` drawing `data_cfg.image_size` images."""
    generator = Generator(
        image_size=data_cfg.image_size, z_dim=model_cfg.z_dim,
        embedding_dim=model_cfg.embedding_dim, text_projection_dim=model_cfg.text_projection_dim,
        ngf=model_cfg.ngf, upsampling=model_cfg.upsampling, sync_batch_norm=sync_batch_norm,
        conditioning=model_cfg.generator_conditioning, text_tokens=model_cfg.text_tokens,
        name=name)
    generator((keras.ops.zeros((1, model_cfg.z_dim)),
               keras.ops.zeros((1, model_cfg.embedding_dim))))
    return generator


def build_discriminator(model_cfg, data_cfg, sync_batch_norm=False):
    """Returns a built `Discriminator` for `data_cfg.image_size` images."""
    discriminator = Discriminator(
        image_size=data_cfg.image_size, embedding_dim=model_cfg.embedding_dim,
        text_projection_dim=model_cfg.text_projection_dim, ndf=model_cfg.ndf,
        minibatch_stddev=model_cfg.minibatch_stddev, sync_batch_norm=sync_batch_norm,
        conditioning=model_cfg.discriminator_conditioning,
        spectral_norm=model_cfg.spectral_norm, batch_norm=model_cfg.discriminator_batch_norm,
        name="discriminator")
    discriminator((_images(data_cfg), keras.ops.zeros((1, model_cfg.embedding_dim))))
    return discriminator


def build_style_encoder(model_cfg, data_cfg, sync_batch_norm=False):
    """Returns a built `StyleEncoder` for `data_cfg.image_size` images."""
    encoder = StyleEncoder(z_dim=model_cfg.z_dim, filters=model_cfg.style_encoder_filters,
                           sync_batch_norm=sync_batch_norm, name="style_encoder")
    encoder(_images(data_cfg))
    return encoder
