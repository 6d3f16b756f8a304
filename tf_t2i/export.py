"""Inference functions on raw caption strings, in process and as a servable SavedModel.

`TextToImageExport` wraps a trained text encoder, generator and style encoder plus the run's
`CaptionEncoder`, and implements five functions entirely in TF ops (tokenisation included):

  generate(captions string [N], seed int64 [])  -- the serving default
      -> images uint8 [N, S, S, 3], noise float32 [N, Z]
  generate_from_noise(captions string [N], noise float32 [N, Z])
      -> images uint8 [N, S, S, 3]
  interpolate(caption_a string [], caption_b string [], steps int32 [], seed int64 [])
      -> images uint8 [steps, S, S, 3], t float32 [steps]
  embed_text(captions string [N])
      -> embeddings float32 [N, E]
  style_transfer(images uint8 [N, H, W, 3], captions string [M])
      -> images uint8 [max(N, M), S, S, 3], styles float32 [max(N, M), Z]

The same object serves in-process code (`TextToImageExport.from_run(load_run(run_dir))`) and is
what `export_saved_model` writes, so the two give the same images. A written export loads with
`tf.saved_model.load(path)` in a process that never imports `tf_t2i`; call
`loaded.generate(captions=tf.constant([...]), seed=tf.constant(0, tf.int64))["images"]` or
`loaded.signatures["generate"](...)` (also under "serving_default"); the function attributes
also take Python lists, ints and numpy arrays, the signatures only tensors of the exact dtype
(seed int64, steps int32). Every function returns a dict in process, after reloading and
through `signatures`, so callers need one code path.

Behaviour shared by every function:
  * Each image is conditioned on phi(caption) of one caption (training conditioned on the mean
    embedding of k captions of an image). Every model runs in inference mode (BatchNorm moving
    statistics).
  * Captions are lower-cased and encoded character by character like in training. Characters
    beyond `caption_length` are dropped and characters outside the alphabet become the "unknown"
    id: the graph cannot warn, so call `check_captions` on the Python side to get a warning per
    such caption.
  * An empty caption is allowed: it encodes to all padding, whose embedding is the text encoder's
    output bias (a fixed "no text" embedding; see `TextEncoder`). `check_captions` warns about it.
  * Noise is stateless Philox normal noise seeded by the seed and the caption's text: a caption
    c of a call with seed s gets z = stateless_normal([Z], seed=[s, h(c)]), where h is the 64-bit
    fingerprint (`tf.strings.to_hash_bucket_fast`) of the lower-cased caption. So the same
    caption and seed always draw the same image, wherever the caption stands in the list and
    whatever N is, on CPU or GPU alike; a caption listed twice draws the same image twice;
    different seeds draw different noise.
  * `interpolate` is GAN-INT at test time: embeddings (1 - t) phi(a) + t phi(b) for
    t = linspace(0, 1, steps), all with caption a's noise for `seed` (so its first image is
    `generate([a], seed)`; its last is b drawn with a's noise). steps must be >= 1.
  * `style_transfer` (Reed et al. section 4.4): z = S(image), then G(z, phi(caption)). Images of
    any height and width are resized to S x S (bilinear, antialiased; non-square images are
    stretched like in the training pipeline). The input must have 3 channels: callers convert
    grayscale, RGBA or CMYK images to RGB first (e.g. `PIL.Image.convert("RGB")`). N images and
    M captions pair up one to one when N == M; a single image (or caption) is paired with every
    caption (or image), e.g. one image's style drawn with many captions.

Export writes `t2i_export.json` (see `export_metadata`) next to the SavedModel files; use
`validate_export` to check an export before use (it rejects, e.g., another image size with one
sentence).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Iterable

import keras
import tensorflow as tf

import tf_t2i
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.errors import UserInputError
from tf_t2i.runs import load_run

METADATA_FILE = "t2i_export.json"
FORMAT_NAME = "tf_t2i.export"
FORMAT_VERSION = 1
SERVING_DEFAULT = "generate"
SIGNATURE_NAMES = ("generate", "generate_from_noise", "interpolate", "embed_text",
                   "style_transfer")
# Metadata fields that `validate_export` may compare.
CHECKED_FIELDS = ("image_size", "z_dim", "embedding_dim", "caption_length", "alphabet")

_CAPTIONS = tf.TensorSpec([None], tf.string, name="captions")
_SEED = tf.TensorSpec([], tf.int64, name="seed")


class TextToImageExport:
    """The five inference functions of a trained model, as `tf.function`s on raw strings.

    Args:
        text_encoder: built caption ids [N, T] -> embeddings [N, E] model.
        generator: built (z [N, Z], embeddings [N, E]) -> images in [-1, 1] model; its
            `image_size`, `z_dim` and `embedding_dim` fix the functions' shapes.
        style_encoder: built images [N, S, S, 3] -> z [N, Z] model.
        caption_encoder: the run's `CaptionEncoder` (alphabet and caption length).
        info: extra metadata for the export (config name, checkpoint record, config dict).

    Attributes (each a `tf.function` with a fixed input signature, returning a dict; see the
    module docstring): generate, generate_from_noise, interpolate, embed_text, style_transfer.
    """

    def __init__(self, text_encoder, generator, style_encoder, caption_encoder: CaptionEncoder,
                 info: dict | None = None):
        self.text_encoder = text_encoder
        self.generator = generator
        self.style_encoder = style_encoder
        self.caption_encoder = caption_encoder
        self.image_size = int(generator.image_size)
        self.z_dim = int(generator.z_dim)
        self.embedding_dim = int(generator.embedding_dim)
        self.info = dict(info or {})
        self.input_signatures = {
            "generate": [_CAPTIONS, _SEED],
            "generate_from_noise": [_CAPTIONS, tf.TensorSpec([None, self.z_dim], tf.float32,
                                                             name="noise")],
            "interpolate": [tf.TensorSpec([], tf.string, name="caption_a"),
                            tf.TensorSpec([], tf.string, name="caption_b"),
                            tf.TensorSpec([], tf.int32, name="steps"), _SEED],
            "embed_text": [_CAPTIONS],
            "style_transfer": [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
                               _CAPTIONS],
        }
        # autograph=False: the bodies are plain TF ops, exactly what ExportArchive traces.
        for name in SIGNATURE_NAMES:
            setattr(self, name, tf.function(getattr(self, "_" + name),
                                            input_signature=self.input_signatures[name],
                                            autograph=False))

    @classmethod
    def from_run(cls, run) -> "TextToImageExport":
        """From a `tf_t2i.runs.LoadedRun` (`load_run(run_dir)`)."""
        record = {k: v for k, v in run.record.items() if k in ("stage", "step", "style_step")}
        if "weights" in run.record:
            record["weights"] = os.path.basename(str(run.record["weights"]))
        return cls(run.gan.text_encoder, run.gan.sampling_generator, run.gan.style_encoder,
                   run.encoder,
                   info={"config_name": run.config.name, "checkpoint": record,
                         "config": run.config.to_dict()})

    # The function bodies: TF ops only (no Python control flow on tensors).

    def _generate(self, captions, seed):
        noise = self.noise(seed, captions)
        return {"images": self._draw(noise, self._embed(captions)), "noise": noise}

    def _generate_from_noise(self, captions, noise):
        tf.debugging.assert_equal(
            tf.shape(noise)[0], tf.shape(captions)[0],
            message="generate_from_noise needs one noise row per caption")
        return {"images": self._draw(noise, self._embed(captions))}

    def _interpolate(self, caption_a, caption_b, steps, seed):
        tf.debugging.assert_positive(steps, message="interpolate needs steps >= 1")
        ends = self._embed(tf.stack([caption_a, caption_b]))
        t = tf.linspace(0.0, 1.0, steps)
        embeddings = (1.0 - t)[:, None] * ends[0][None] + t[:, None] * ends[1][None]
        noise = tf.tile(self.noise(seed, caption_a[None]), [steps, 1])
        return {"images": self._draw(noise, embeddings), "t": t}

    def _embed_text(self, captions):
        return {"embeddings": self._embed(captions)}

    def _style_transfer(self, images, captions):
        count_images, count_captions = tf.shape(images)[0], tf.shape(captions)[0]
        count = tf.maximum(count_images, count_captions)
        tf.debugging.assert_equal(
            tf.logical_and(tf.logical_or(count_images == count, count_images == 1),
                           tf.logical_or(count_captions == count, count_captions == 1)), True,
            message="style_transfer pairs N images with N captions, or broadcasts a single "
                    "image or caption: got different counts")
        index = tf.range(count)
        styles = _unless_empty(
            count_images,
            lambda: tf.cast(self.style_encoder(self.preprocess_images(images), training=False),
                            tf.float32),
            [self.z_dim], tf.float32)
        styles = tf.gather(styles, index % tf.maximum(count_images, 1))
        embeddings = tf.gather(self._embed(captions), index % tf.maximum(count_captions, 1))
        return {"images": self._draw(styles, embeddings), "styles": styles}

    # Building blocks, usable from Python too.

    def noise(self, seed, captions):
        """float32 [N, Z] for captions string [N]: row i is stateless Philox N(0, 1) noise of
        seed [seed, fingerprint of lower-cased captions[i]], so it depends on the caption's
        text and not on its position."""
        seed = tf.cast(seed, tf.int64)
        lowered = tf.strings.lower(tf.convert_to_tensor(captions, tf.string), encoding="utf-8")
        # Fingerprint64 of the text, in [0, 2^63 - 1): a stable function of the bytes alone.
        texts = tf.strings.to_hash_bucket_fast(lowered, 2**63 - 1)
        seeds = tf.stack([tf.fill(tf.shape(texts), seed), texts], axis=1)
        return tf.map_fn(
            lambda s: tf.random.stateless_normal([self.z_dim], seed=s, alg="philox"), seeds,
            fn_output_signature=tf.TensorSpec([self.z_dim], tf.float32))

    def preprocess_images(self, images):
        """uint8 [N, H, W, 3] of any H, W -> float32 [N, S, S, 3] in [-1, 1] (antialiased)."""
        images = tf.image.resize(tf.cast(images, tf.float32), [self.image_size, self.image_size],
                                 method="bilinear", antialias=True)
        return tf.clip_by_value(images, 0.0, 255.0) / 127.5 - 1.0

    def _embed(self, captions):
        ids = self.caption_encoder.encode(captions)
        return _unless_empty(
            tf.shape(ids)[0], lambda: tf.cast(self.text_encoder(ids, training=False), tf.float32),
            [self.embedding_dim], tf.float32)

    def _draw(self, noise, embeddings):
        return _unless_empty(
            tf.shape(noise)[0],
            lambda: to_uint8(self.generator((noise, embeddings), training=False)),
            [self.image_size, self.image_size, 3], tf.uint8)

    def export_metadata(self) -> dict:
        """What `t2i_export.json` holds: shapes, caption encoding, versions, provenance."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "tf_t2i_version": tf_t2i.__version__,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "config_name": self.info.get("config_name"),
            "checkpoint": self.info.get("checkpoint"),
            "image_size": self.image_size,
            "z_dim": self.z_dim,
            "embedding_dim": self.embedding_dim,
            "caption_length": self.caption_encoder.length,
            "alphabet": self.caption_encoder.alphabet,
            "serving_default": SERVING_DEFAULT,
            "signatures": {name: [spec.name for spec in self.input_signatures[name]]
                           for name in SIGNATURE_NAMES},
            "config": self.info.get("config"),
        }


def _unless_empty(count, fn, row_shape, dtype):
    """fn() when count > 0, else an empty [0, *row_shape] tensor (some layers fail on batch 0)."""
    return tf.cond(count > 0, fn, lambda: tf.zeros([0] + list(row_shape), dtype))


def to_uint8(images):
    """float images in [-1, 1] -> uint8 [0, 255] in TF ops (rounds like image_grid.to_uint8)."""
    images = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def export_saved_model(source, path: str, overwrite: bool = False) -> str:
    """Writes a SavedModel with the five signatures (serving default: generate); returns `path`.

    Args:
        source: a `TextToImageExport` or a `tf_t2i.runs.LoadedRun`.
        path: the SavedModel folder to write; `t2i_export.json` is written inside it.
        overwrite: replace an existing non-empty folder (otherwise UserInputError).

    The archive is written next to `path` under a temporary name and renamed into place, so a
    crash never leaves a half-written export at `path`.
    """
    exporter = source if isinstance(source, TextToImageExport) else TextToImageExport.from_run(
        source)
    path = os.fspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)) and not overwrite:
        raise UserInputError(f"{path} already exists: choose another export folder or remove it.")
    temporary = path.rstrip(os.sep) + ".partial"
    shutil.rmtree(temporary, ignore_errors=True)
    archive = keras.export.ExportArchive()
    for model in (exporter.text_encoder, exporter.generator, exporter.style_encoder):
        archive.track(model)
    # The first endpoint is also registered as "serving_default".
    for name in SIGNATURE_NAMES:
        archive.add_endpoint(name, getattr(exporter, "_" + name),
                             input_signature=exporter.input_signatures[name])
    archive.write_out(temporary, verbose=False)
    with open(os.path.join(temporary, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(exporter.export_metadata(), f, indent=2)
    if os.path.exists(path):
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.replace(temporary, path)
    return path


def export_from_run_dir(run_dir: str, out_dir: str, overwrite: bool = False) -> str:
    """Loads a run folder's latest checkpoint (`load_run`) and exports it to `out_dir`."""
    return export_saved_model(load_run(run_dir), out_dir, overwrite=overwrite)


def read_export_metadata(path: str) -> dict:
    """The `t2i_export.json` of an export folder; UserInputError if it is not one."""
    metadata_path = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")) or not os.path.isfile(
            metadata_path):
        raise UserInputError(f"{path} is not a tf_t2i export (no saved_model.pb and "
                             f"{METADATA_FILE}): write one with export_saved_model.")
    with open(metadata_path, encoding="utf-8") as f:
        metadata = json.load(f)
    if metadata.get("format") != FORMAT_NAME or metadata.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"{path} holds export format {metadata.get('format')!r} version "
            f"{metadata.get('format_version')!r}, but this tf_t2i reads {FORMAT_NAME!r} version "
            f"{FORMAT_VERSION}: export the run again with this version.")
    return metadata


def validate_export(path: str, **expected: Any) -> dict:
    """Reads an export's metadata and checks fields against `expected`; returns the metadata.

    Args:
        path: the export folder.
        **expected: values of CHECKED_FIELDS the caller needs, e.g. `image_size=64`.

    Raises:
        UserInputError: one sentence naming the first field that differs.
    """
    unknown = set(expected) - set(CHECKED_FIELDS)
    if unknown:
        raise ValueError(f"validate_export checks only {CHECKED_FIELDS}, not {sorted(unknown)}.")
    metadata = read_export_metadata(path)
    for field in CHECKED_FIELDS:
        if field in expected and expected[field] is not None and \
                metadata.get(field) != expected[field]:
            raise UserInputError(
                f"{path} was exported with {field} {metadata.get(field)!r} but "
                f"{expected[field]!r} is needed here: export a run trained with "
                f"{field} {expected[field]!r}.")
    return metadata


def load_export(path: str, **expected: Any):
    """(`tf.saved_model.load(path)`, metadata) after `validate_export(path, **expected)`."""
    metadata = validate_export(path, **expected)
    return tf.saved_model.load(path), metadata


def check_captions(captions: Iterable[str | bytes], encoder: CaptionEncoder) -> list[str]:
    """Python-side warnings for what the in-graph encoding silently does to captions.

    One warning (a sentence) per caption that is empty, longer than `encoder.length` characters
    (truncated), or has characters outside the alphabet (encoded as unknown). Captions are
    lower-cased with TF's Unicode lower-casing first, exactly like the encoder does.

    Returns:
        the warnings, in caption order; empty when every caption encodes as written.
    """
    captions = list(captions)
    if not captions:
        return []
    known = set(encoder.alphabet)
    lowered = tf.strings.lower(tf.constant(captions, dtype=tf.string), encoding="utf-8").numpy()
    warnings = []
    for index, (caption, text) in enumerate(zip(captions, lowered)):
        text = text.decode("utf-8", errors="replace")
        shown = _shorten(caption if isinstance(caption, str) else
                         caption.decode("utf-8", errors="replace"))
        if not text:
            warnings.append(f"caption {index} is empty: it is drawn from the text encoder's "
                            "'no text' embedding.")
            continue
        if len(text) > encoder.length:
            warnings.append(f"caption {index} ({shown}) has {len(text)} characters: only the "
                            f"first {encoder.length} are used.")
        unknown = sorted(set(text) - known)
        if unknown:
            listed = " ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10
                                                                 else "")
            warnings.append(f"caption {index} ({shown}) has characters outside the alphabet "
                            f"({listed}): they are encoded as unknown.")
    return warnings


def _shorten(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[:width - 3] + "...")
