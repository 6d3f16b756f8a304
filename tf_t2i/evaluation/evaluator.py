"""An independent judge for R-precision and domain FID: a text/image encoder pair trained on real
data only.

Scoring a generator with the encoders it trained with rewards overfitting to them, so
`train_evaluator` trains a fresh pair (the project's `TextEncoder` and `ImageEncoder`, with the
matching loss of `tf_t2i.losses`) on real images and their captions, never on generated ones. An
evaluator folder holds `evaluator.json` (its `EvaluatorConfig` and how it was trained) and
`text_encoder.weights.h5` + `image_encoder.weights.h5`; `Evaluator.load` reads it back.

Reference: the DAMSM encoders of Xu et al. 2018 (AttnGAN, section 3.3) play this role there.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from tf_t2i.config import REED_ALPHABET, DataConfig
from tf_t2i.data.dataset_index import DatasetIndex, Split
from tf_t2i.errors import UserInputError, first_line

CONFIG_FILE = "evaluator.json"
WEIGHTS_FILES = {"text": "text_encoder.weights.h5", "image": "image_encoder.weights.h5"}
FORMAT_NAME = "tf_t2i.evaluator"
_BATCH = 128


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """Sizes and training settings of an evaluator (small: it trains in minutes on a CPU).

    Attributes:
        image_size: images are resized to this side before the image encoder.
        caption_length, alphabet: the caption encoding.
        embedding_dim: size of the joint embedding.
        char_embedding_dim, text_conv_filters, text_rnn_units: the text encoder.
        image_filters: the image encoder's stride-2 convolutions.
        batch_size, learning_rate, margin: training (Adam; hinge matching loss margin).
        seed: data order and initialisation.
    """

    image_size: int = 64
    caption_length: int = 201
    alphabet: str = REED_ALPHABET
    embedding_dim: int = 256
    char_embedding_dim: int = 32
    text_conv_filters: tuple[int, ...] = (128, 128)
    text_rnn_units: int = 128
    image_filters: tuple[int, ...] = (32, 64, 128, 256)
    batch_size: int = 64
    learning_rate: float = 1e-3
    margin: float = 0.2
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> "EvaluatorConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class Evaluator:
    """A trained text/image encoder pair: embeddings of captions and of images in one space.

    Args:
        config: its `EvaluatorConfig`.
        info: how it was trained (dataset, steps, final loss), kept in evaluator.json.
    """

    def __init__(self, config: EvaluatorConfig, info: dict | None = None):
        import keras

        from tf_t2i.data.caption_encoder import CaptionEncoder
        from tf_t2i.models.image_encoder import ImageEncoder
        from tf_t2i.models.text_encoder import TextEncoder
        self.config = config
        self.info = dict(info or {})
        self.caption_encoder = CaptionEncoder(config.alphabet, config.caption_length)
        self.text_encoder = TextEncoder(
            vocabulary_size=self.caption_encoder.vocabulary_size,
            sequence_length=config.caption_length, char_embedding_dim=config.char_embedding_dim,
            conv_filters=config.text_conv_filters, rnn_units=config.text_rnn_units,
            embedding_dim=config.embedding_dim, name="evaluator_text_encoder")
        self.image_encoder = ImageEncoder(filters=config.image_filters,
                                          embedding_dim=config.embedding_dim,
                                          name="evaluator_image_encoder")
        self.text_encoder(keras.ops.zeros((1, config.caption_length), dtype="int32"))
        self.image_encoder(keras.ops.zeros((1, config.image_size, config.image_size, 3)))
        self.models = {"text": self.text_encoder, "image": self.image_encoder}

    @property
    def description(self) -> str:
        steps = self.info.get("steps", "?")
        return (f"evaluator ({self.config.image_size} px, {steps} steps on "
                f"{self.info.get('dataset', 'unknown data')})")

    def embed_captions(self, captions: list[str]) -> np.ndarray:
        """float64 [N, E] embeddings of N captions."""
        out = [np.asarray(self.text_encoder(self.caption_encoder.encode(captions[s:s + _BATCH]),
                                            training=False), np.float64)
               for s in range(0, len(captions), _BATCH)]
        return np.concatenate(out) if out else np.zeros([0, self.config.embedding_dim])

    def embed_images(self, images) -> np.ndarray:
        """float64 [N, E] embeddings of uint8 images [N, H, W, 3] (resized to its size)."""
        import tensorflow as tf
        out = []
        for start in range(0, len(images), _BATCH):
            batch = tf.image.resize(tf.cast(images[start:start + _BATCH], tf.float32),
                                    [self.config.image_size] * 2, antialias=True)
            batch = tf.clip_by_value(batch, 0.0, 255.0) / 127.5 - 1.0
            out.append(np.asarray(self.image_encoder(batch, training=False), np.float64))
        return np.concatenate(out) if out else np.zeros([0, self.config.embedding_dim])

    def save(self, folder: str) -> None:
        """Writes evaluator.json and the two weights files into `folder` (created)."""
        os.makedirs(folder, exist_ok=True)
        for name, model in self.models.items():
            temporary = os.path.join(folder, f"{name}.partial.weights.h5")
            model.save_weights(temporary)
            os.replace(temporary, os.path.join(folder, WEIGHTS_FILES[name]))
        with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT_NAME, "config": dataclasses.asdict(self.config),
                       "info": self.info}, f, indent=2)

    @classmethod
    def load(cls, folder: str, flag: str = "--evaluator") -> "Evaluator":
        """Reads an evaluator folder; UserInputError naming `flag` if it is not one."""
        hint = "pass a folder written by `evaluate.py train-evaluator`"
        path = os.path.join(folder, CONFIG_FILE)
        if not os.path.isfile(path):
            raise UserInputError(f"{flag} {folder} has no {CONFIG_FILE}: {hint}.")
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("format") != FORMAT_NAME:
                raise ValueError(f"format is {saved.get('format')!r}")
            evaluator = cls(EvaluatorConfig.from_dict(saved["config"]), saved.get("info"))
            for name, model in evaluator.models.items():
                model.load_weights(os.path.join(folder, WEIGHTS_FILES[name]))
        except Exception as error:  # noqa: BLE001 - json, h5py and Keras raise many types.
            raise UserInputError(f"{flag} {folder} cannot be read ({first_line(error)}): "
                                 f"{hint}.") from None
        return evaluator


def train_evaluator(dataset: DatasetIndex, config: EvaluatorConfig, steps: int,
                    splits: str = "all", log_every: int = 50, log=print) -> Evaluator:
    """Trains an `Evaluator` on real images and captions of `dataset`.

    Each step encodes a batch of images and one random caption of each, and takes an Adam step on
    the bidirectional hinge matching loss (`tf_t2i.losses.matching_loss`, with class labels so
    that captions of the same class are not pushed apart).

    Args:
        splits: "all" (train and test images: the judge should know every class it scores;
            generated images are never used) or "train".
        steps: training steps of `config.batch_size` examples.
    """
    import keras
    import tensorflow as tf

    from tf_t2i.data.pipeline import make_train_dataset
    from tf_t2i.losses import matching_loss
    keras.utils.set_random_seed(config.seed)
    split = dataset.train if splits == "train" else _merged(dataset.train, dataset.test)
    data_cfg = DataConfig(image_size=config.image_size, captions_per_image=1,
                          caption_length=config.caption_length, alphabet=config.alphabet,
                          batch_size=min(config.batch_size, len(split)), seed=config.seed)
    evaluator = Evaluator(config)
    stream = make_train_dataset(split, data_cfg, evaluator.caption_encoder)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    variables = (evaluator.text_encoder.trainable_variables
                 + evaluator.image_encoder.trainable_variables)
    optimizer.build(variables)

    @tf.function
    def train_step(batch):
        with tf.GradientTape() as tape:
            text = evaluator.text_encoder(batch["captions"][:, 0], training=True)
            image = evaluator.image_encoder(batch["images"], training=True)
            loss = matching_loss(text, image, batch["labels"], margin=config.margin)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    loss = float("nan")
    for step, batch in enumerate(stream.take(steps), start=1):
        loss = float(train_step(batch))
        if step % log_every == 0 or step == steps:
            log(f"evaluator step {step}/{steps}: matching loss {loss:.4f}")
    evaluator.info.update(dataset=dataset.name, splits=splits, steps=steps,
                          images=len(split), final_matching_loss=loss)
    return evaluator


def _merged(a: Split, b: Split) -> Split:
    """One split holding the images of `a` then `b` (both in memory or both files)."""
    if a.images is not None and b.images is not None:
        pixels = {"images": np.concatenate([a.images, b.images])}
    elif a.image_paths is not None and b.image_paths is not None:
        pixels = {"image_paths": a.image_paths + b.image_paths}
    else:
        return a
    return Split(captions=a.captions + b.captions,
                 labels=np.concatenate([a.labels, b.labels]).astype(np.int32), **pixels)
