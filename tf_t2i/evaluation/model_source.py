"""evaluate.py's `--model PATH`: a run folder or an exported SavedModel, behind one interface.

  run folder   config.json + checkpoints/ (written by train.py): its latest complete checkpoint is
               loaded (`tf_t2i.runs.load_run`; a run stopped early works) and wrapped in
               `TextToImageExport.from_run`.
  export       saved_model.pb + t2i_export.json (written by `evaluate.py export` or
               `export_saved_model`): checked with `validate_export` and loaded with
               `tf.saved_model.load`.

Both expose the same functions (generate, generate_from_noise, interpolate, style_transfer)
returning dicts, so `ModelSource` calls them in one way and gives numpy arrays back; an export and
the run it came from draw the same images (to within one uint8 level).

`detect_model_kind` needs no TensorFlow: a missing folder, or a folder that is neither kind, is
reported before TensorFlow starts.
"""
from __future__ import annotations

import os
import re

import numpy as np

from tf_t2i.checkpoints import CheckpointLayoutError
from tf_t2i.errors import UserInputError, first_line

RUN = "run"
EXPORT = "export"
# The files that mark each kind (tf_t2i.training's run layout, tf_t2i.export.METADATA_FILE);
# spelled out here so that detection does not import TensorFlow.
RUN_FILES = ("config.json", "checkpoints")
EXPORT_FILES = ("saved_model.pb", "t2i_export.json")
_KINDS_HINT = ("pass a run folder written by train.py (config.json + checkpoints/) or an export "
               "folder (saved_model.pb + t2i_export.json)")
_BATCH = 64


def detect_model_kind(path: str, flag: str = "--model") -> str:
    """RUN or EXPORT for a model folder; UserInputError if it is missing or neither.

    A folder with either export file counts as an export and one with config.json as a run (the
    loaders then name whatever else is missing, e.g. a run with no checkpoint yet).
    """
    if not os.path.exists(path):
        raise UserInputError(f"{flag} {path} does not exist: {_KINDS_HINT}.")
    if not os.path.isdir(path):
        raise UserInputError(f"{flag} {path} is a file, not a folder: {_KINDS_HINT}.")
    if any(os.path.isfile(os.path.join(path, name)) for name in EXPORT_FILES):
        return EXPORT
    if os.path.isfile(os.path.join(path, RUN_FILES[0])):
        return RUN
    inside = sorted(name for name in os.listdir(path)
                    if _looks_like_model(os.path.join(path, name)))
    if inside:
        listed = ", ".join(inside[:3]) + (", ..." if len(inside) > 3 else "")
        raise UserInputError(f"{flag} {path} is neither a run folder nor an export, but holds "
                             f"model folders ({listed}): pass one of them.")
    raise UserInputError(f"{flag} {path} is neither a run folder nor an export: {_KINDS_HINT}.")


def _looks_like_model(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, name)) for name in (RUN_FILES[0],) + EXPORT_FILES)


class ModelSource:
    """A loaded model: the inference functions of a run or an export, called with numpy in/out.

    Attributes:
        path, kind: the folder and RUN or EXPORT.
        functions: the `TextToImageExport` (run) or the loaded SavedModel (export).
        caption_encoder: a `CaptionEncoder` with the model's alphabet and caption length.
        image_size, z_dim: the generator's output size and noise size.
        description: one line naming the folder and its checkpoint, for the console.
        config: the training configuration as a dict (`Config.to_dict()`), or None if unknown.
    """

    def __init__(self, path, kind, functions, caption_encoder, image_size, z_dim, description,
                 config: dict | None = None):
        self.path = path
        self.kind = kind
        self.functions = functions
        self.caption_encoder = caption_encoder
        self.image_size = int(image_size)
        self.z_dim = int(z_dim)
        self.description = description
        self.config = config

    def generate(self, captions: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, S, S, 3], noise [N, Z]); a caption gets the noise of (seed, caption
        text), wherever it stands in the list."""
        import tensorflow as tf
        out = self.functions.generate(captions=_strings(captions),
                                      seed=tf.constant(seed, tf.int64))
        return out["images"].numpy(), out["noise"].numpy()

    def noise(self, seed: int) -> np.ndarray:
        """float32 [Z]: a noise vector of `seed` (the one `generate([""], seed)` draws)."""
        return self.generate([""], seed)[1][0]

    def generate_from_noise(self, captions: list[str], noise: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] for N captions and noise [N, Z] (drawn in batches of 64)."""
        import tensorflow as tf
        noise = np.asarray(noise, np.float32).reshape([-1, self.z_dim])
        return self._batched(len(captions), lambda s: self.functions.generate_from_noise(
            captions=_strings(captions[s]), noise=tf.constant(noise[s]))["images"].numpy())

    def interpolate(self, caption_a: str, caption_b: str, steps: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 [steps, S, S, 3], t [steps]): phi(a) to phi(b) with the noise of (seed, a)."""
        import tensorflow as tf
        out = self.functions.interpolate(
            caption_a=tf.constant(caption_a, tf.string),
            caption_b=tf.constant(caption_b, tf.string),
            steps=tf.constant(steps, tf.int32), seed=tf.constant(seed, tf.int64))
        return out["images"].numpy(), out["t"].numpy()

    def style_transfer(self, images: np.ndarray, captions: list[str]) -> np.ndarray:
        """uint8 [N, S, S, 3]: G(S(images[i]), phi(captions[i])) for N images and N captions."""
        import tensorflow as tf
        images = np.asarray(images, np.uint8)
        if len(images) != len(captions):
            raise ValueError("style_transfer here pairs images and captions one to one.")
        return self._batched(len(captions), lambda s: self.functions.style_transfer(
            images=tf.constant(images[s]), captions=_strings(captions[s]))["images"].numpy())

    def styles(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, Z]: the style encoder's S(images[i]) for uint8 images [N, H, W, 3]."""
        import tensorflow as tf
        images = np.asarray(images, np.uint8)
        if len(images) == 0:
            return np.zeros([0, self.z_dim], np.float32)
        return np.concatenate([self.functions.style_transfer(
            images=tf.constant(images[start:start + _BATCH]), captions=_strings([""]))[
                "styles"].numpy() for start in range(0, len(images), _BATCH)])

    def resize(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [S, S, 3], resized like the training pipeline resizes images
        (bilinear, antialiased; a non-square image is stretched). This is exactly what the style
        encoder sees: resizing S x S again inside `style_transfer` changes nothing."""
        import tensorflow as tf
        image = np.asarray(image, np.uint8)
        if image.shape[:2] == (self.image_size, self.image_size):
            return image
        resized = tf.image.resize(image.astype(np.float32), [self.image_size, self.image_size],
                                  method="bilinear", antialias=True)
        return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)

    def caption_warnings(self, captions: list[str], names: list[str] | None = None) -> list[str]:
        """`check_captions` warnings (empty, truncated, characters outside the alphabet), with
        "caption i" replaced by `names[i]` (e.g. the flag the caption came from)."""
        from tf_t2i.export import check_captions
        warnings = check_captions(captions, self.caption_encoder)
        if names is None:
            return warnings
        renamed = []
        for warning in warnings:
            match = re.match(r"caption (\d+)\b", warning)
            if match and int(match[1]) < len(names):
                warning = names[int(match[1])] + warning[match.end():]
            renamed.append(warning)
        return renamed

    def _batched(self, count: int, call) -> np.ndarray:
        if count == 0:
            return np.zeros([0, self.image_size, self.image_size, 3], np.uint8)
        return np.concatenate([call(slice(start, start + _BATCH))
                               for start in range(0, count, _BATCH)])


def _strings(captions):
    import tensorflow as tf
    return tf.constant(list(captions), dtype=tf.string, shape=[len(captions)])


def open_model(path: str, image_size: int | None = None, flag: str = "--model") -> ModelSource:
    """Loads a run folder or an export as a ModelSource.

    Args:
        path: the model folder (see the module docstring).
        image_size: when given, the model must draw images of this size (UserInputError naming
            both sizes otherwise; for an export through `validate_export`).
        flag: the flag named in error messages.
    """
    kind = detect_model_kind(path, flag)
    return _open_export(path, image_size) if kind == EXPORT else _open_run(path, image_size)


def _open_export(path: str, image_size: int | None) -> ModelSource:
    import tensorflow as tf

    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.export import validate_export
    metadata = validate_export(path, image_size=image_size)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # noqa: BLE001 - a corrupt SavedModel raises many types.
        raise UserInputError(f"{path} cannot be loaded as a SavedModel ({first_line(error)}): "
                             "export the run again with `evaluate.py export`.") from None
    missing = [name for name in ("generate", "generate_from_noise", "interpolate", "style_transfer")
               if not hasattr(loaded, name)]
    if missing:
        raise UserInputError(f"{path} has no {', '.join(missing)} function: export the run again "
                             "with `evaluate.py export`.")
    encoder = CaptionEncoder(metadata["alphabet"], metadata["caption_length"])
    return ModelSource(path, EXPORT, loaded, encoder, metadata["image_size"], metadata["z_dim"],
                       f"export {path} ({_checkpoint_text(metadata.get('checkpoint'))})",
                       config=metadata.get("config"))


def _open_run(path: str, image_size: int | None) -> ModelSource:
    from tf_t2i.export import TextToImageExport
    from tf_t2i.runs import load_run, read_run_config
    try:
        config = read_run_config(path)
    except UserInputError:
        raise
    except (ValueError, TypeError, AttributeError) as error:
        raise UserInputError(f"{os.path.join(path, 'config.json')} is not a configuration this "
                             f"version can read ({first_line(error)}): pass a run folder written "
                             "by train.py.") from None
    if image_size is not None and config.data.image_size != image_size:
        raise UserInputError(f"{path} was trained with image_size {config.data.image_size} but "
                             f"{image_size} is needed here: pass a run trained with image_size "
                             f"{image_size}.")
    try:
        run = load_run(path)
    except UserInputError:
        raise
    except CheckpointLayoutError as error:
        raise UserInputError(f"the checkpoints of {path} hold layers that this version of tf-t2i "
                             f"builds differently ({first_line(error)}): load it with the "
                             "version that trained it (its export/ folder, if it has one, loads "
                             "here), or pass another run.") from None
    except Exception as error:  # noqa: BLE001 - h5py, Keras and TF raise many types.
        raise UserInputError(f"the latest checkpoint of {path} cannot be loaded "
                             f"({first_line(error)}): resume training to write a new one, or "
                             "pass another run.") from None
    functions = TextToImageExport.from_run(run)
    return ModelSource(path, RUN, functions, run.encoder, functions.image_size, functions.z_dim,
                       f"run folder {path} ({_checkpoint_text(functions.info.get('checkpoint'))})",
                       config=functions.info.get("config"))


def _checkpoint_text(record: dict | None) -> str:
    if not record:
        return "checkpoint unknown"
    text = f"checkpoint at GAN step {record.get('step', '?')}"
    if record.get("style_step"):
        text += f", style step {record['style_step']}"
    return text


def from_training_model(gan, caption_encoder, config: dict | None = None,
                        path: str = "") -> ModelSource:
    """The models of a live `TextToImageGAN` (during training) behind the same interface; draws
    with the current weights at every call."""
    from tf_t2i.export import TextToImageExport
    functions = TextToImageExport(gan.text_encoder, gan.sampling_generator, gan.style_encoder,
                                  caption_encoder, info={"config": config})
    return ModelSource(path, RUN, functions, caption_encoder, functions.image_size,
                       functions.z_dim, f"training model in {path}", config=config)
