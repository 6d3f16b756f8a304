"""A run folder: its layout, and the training model it describes.

A run folder holds:
    config.json         the resolved configuration (what `--resume` reads), plus the
                        "history" of what each resume changed (tf_t2i.resume)
    train.lock          the pid of the train.py writing here, while it runs (tf_t2i.run_lock)
    checkpoints/        the newest two checkpoints and `latest.json` (tf_t2i.checkpoints)
    logs/               TensorBoard scalars and sample grids
    samples/            step-<n>.png sample grids of fixed probe captions and fixed noise
    export/             the SavedModel of the final weights (tf_t2i.export), string inputs

This module sits below training, export and evaluation: each of them reads runs through it, and
it imports none of them.
"""
from __future__ import annotations

import dataclasses
import json
import os

import keras

from tf_t2i.checkpoints import RunCheckpoints
from tf_t2i.config import Config
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.errors import UserInputError
from tf_t2i.gan import TextToImageGAN
from tf_t2i.models import builders
from tf_t2i.precision import AUTO, resolve_precision

CONFIG_FILE = "config.json"
EXPORT_DIR = "export"


def build_gan(config: Config, vocabulary_size: int, steps_per_epoch: int) -> TextToImageGAN:
    """The training model with built sub-models, compiled with built optimizers."""
    model_cfg, data_cfg, train_cfg = config.model, config.data, config.train
    sync = train_cfg.sync_batch_norm
    gan = TextToImageGAN(
        text_encoder=builders.build_text_encoder(model_cfg, data_cfg, vocabulary_size,
                                                  jit_compile=train_cfg.jit_compile,
                                                  sync_batch_norm=sync),
        image_encoder=builders.build_image_encoder(model_cfg, data_cfg, sync),
        generator=builders.build_generator(model_cfg, data_cfg, sync),
        discriminator=builders.build_discriminator(model_cfg, data_cfg, sync),
        style_encoder=builders.build_style_encoder(model_cfg, data_cfg, sync),
        cls_weight=train_cfg.cls_weight, interp_weight=train_cfg.interp_weight,
        interp_beta=train_cfg.interp_beta, interp_type=train_cfg.interp_type,
        interp_fakes_for_discriminator=train_cfg.interp_fakes_for_discriminator,
        mode_seeking_weight=train_cfg.mode_seeking_weight,
        matching_margin=train_cfg.matching_margin,
        same_class_negatives=train_cfg.same_class_negatives,
        hard_negative_weight=train_cfg.hard_negative_weight,
        hard_negative_wrong_fraction=train_cfg.hard_negative_wrong_fraction, seed=data_cfg.seed,
        gan_loss=train_cfg.gan_loss, gradient_penalty_weight=train_cfg.gradient_penalty_weight,
        gradient_penalty_power=train_cfg.gradient_penalty_power,
        diff_augment=train_cfg.diff_augment, ema_decay=train_cfg.ema_decay,
        ema_generator=(builders.build_generator(model_cfg, data_cfg, sync, name="ema_generator")
                       if train_cfg.ema_decay > 0 else None),
        latent_regression_weight=train_cfg.latent_regression_weight,
        reconstruction_weight=train_cfg.reconstruction_weight,
        style_prior_weight=train_cfg.style_prior_weight,
        shared_fakes=train_cfg.shared_fakes,
        hard_negative_check_weight=train_cfg.hard_negative_check_weight,
        generator_matching_weight=train_cfg.generator_matching_weight,
        recombined_text_weight=train_cfg.recombined_text_weight,
        style_reconstruction_weight=train_cfg.style_reconstruction_weight,
        train_encoders=not train_cfg.freeze_encoders)
    gan.compile(encoder_optimizer=make_optimizer(train_cfg, steps_per_epoch, "encoder_optimizer",
                                                 train_cfg.encoder_learning_rate or None),
                d_optimizer=make_optimizer(train_cfg, steps_per_epoch, "d_optimizer",
                                           train_cfg.d_learning_rate or None),
                g_optimizer=make_optimizer(train_cfg, steps_per_epoch, "g_optimizer"),
                style_optimizer=make_optimizer(train_cfg, 0, "style_optimizer"))
    gan.build_optimizers()
    # The wrapper has no call() of its own during training: mark it built (its sub-models are),
    # or save_weights/load_weights refuse it ("model that has not yet been built").
    gan.built = True
    return gan


def make_optimizer(train_cfg, steps_per_epoch: int, name: str,
                   learning_rate: float | None = None) -> keras.optimizers.Optimizer:
    """Adam(lr, beta_1, beta_2), the rate halved every `lr_decay_every_epochs` epochs (Reed: 100).

    `steps_per_epoch` 0 means a constant rate; `learning_rate` None means `train.learning_rate`.
    """
    learning_rate = learning_rate or train_cfg.learning_rate
    if train_cfg.lr_decay_every_epochs > 0 and steps_per_epoch > 0:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=train_cfg.lr_decay_every_epochs * steps_per_epoch,
            decay_rate=0.5, staircase=True)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=train_cfg.beta_1,
                                      beta_2=train_cfg.beta_2, name=name)
    if train_cfg.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=name)
    return optimizer


def with_resolved_precision(config: Config, announce: bool = False) -> Config:
    """`config` with `train.precision=auto` replaced by this machine's choice (`tf_t2i.precision`).

    Args:
        announce: print the choice and why, as a run does once at start-up.
    """
    choice = resolve_precision(config.train.precision)
    if announce:
        origin = "auto: " if config.train.precision == AUTO else ""
        print(f"precision: {choice.policy} ({origin}{choice.reason})")
    return dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                 precision=choice.policy))


def read_run_config(run_dir: str) -> Config:
    """The configuration saved in a run folder."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserInputError(f"{run_dir} has no {CONFIG_FILE}: pass a run folder written by train.py.")
    with open(path, encoding="utf-8") as f:
        return Config.from_dict(json.load(f))



@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run folder's configuration, caption encoder, trained model and checkpoint record."""

    config: Config
    encoder: CaptionEncoder
    gan: TextToImageGAN
    record: dict


def load_run(run_dir: str) -> LoadedRun:
    """Builds the models of a run folder and loads its latest checkpoint (also of a stopped run)."""
    if not os.path.isdir(run_dir):
        raise UserInputError(f"{run_dir} does not exist: pass a run folder written by train.py.")
    config = read_run_config(run_dir)
    checkpoints = RunCheckpoints(run_dir)
    if checkpoints.latest() is None:
        raise UserInputError(f"{run_dir} has no checkpoint yet: train longer (checkpoints every "
                             f"{config.train.checkpoint_every} steps) or pass another run.")
    config = with_resolved_precision(config)
    keras.mixed_precision.set_global_policy(config.train.precision)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    record = checkpoints.restore(gan)
    return LoadedRun(config, encoder, gan, record)
