"""Caption fidelity on the built-in synthetic dataset: does the generator draw what captions say?

For captions of one split, the trained generator draws images (fixed noise), `read_attributes`
reads their petal colour, centre colour, petal count and background back from the pixels, and the
result is compared, attribute by attribute, with the ground truth of the image the caption
describes. Seen classes are the train split's captions; unseen combinations (the zero-shot setting:
colour pairings never seen in training) are the test split's. Per-attribute numbers matter: a
text encoder that memorises classes instead of composing attributes gets the dominant colour right
and the second attribute at chance, which an average would hide.

An attribute is scored only on captions that mention it (the synonym tables of
`tf_t2i.data.synthetic`; a few templates leave out the count or the centre, about half leave out
the background). "mentioned" means the caption names the true value; in the one template that
names both colours as "{P} and {C} flower" the roles are implicit but both count as mentioned.
"""
from __future__ import annotations

import re

import keras
import numpy as np

from tf_t2i.data import synthetic
from tf_t2i.data.synthetic import load_synthetic
from tf_t2i.errors import UserInputError
from tf_t2i.image_grid import to_uint8
from tf_t2i.evaluation.statistics import high_frequency_energy, noise_like_share
from tf_t2i.evaluation.synthetic_attributes import NUM_VALUES, READ_ATTRIBUTES, read_attributes
from tf_t2i.runs import LoadedRun, load_run

#: Keys of `attribute_accuracy(...)["attributes"]`: the four read attributes, then "colour_pair"
#: (petal and centre colour both right, on captions that mention both).
SCORED = READ_ATTRIBUTES + ("colour_pair",)
_SPLITS = ("train", "test")
_BATCH = 256


def attribute_accuracy(model, split: str = "test", images_per_caption: int = 4,
                       max_captions: int = 512, seed: int = 0, dataset=None) -> dict:
    """Per-attribute accuracy of images drawn for captions of a split of the synthetic dataset.

    Args:
        model: a `tf_t2i.runs.LoadedRun` (from `load_run`) of a run trained on the built-in
            synthetic dataset, or the path of such a run folder; or any model with
            `generate_from_noise(captions, noise) -> uint8 images` and `z_dim` (a
            `tf_t2i.evaluation.model_source.ModelSource`), with `dataset`.
        split: "train" (seen classes) or "test" (unseen attribute combinations).
        images_per_caption: images drawn per caption, each with its own noise vector.
        max_captions: captions scored, drawn without replacement from all (image, caption) pairs
            of the split (all of them if there are fewer).
        seed: seeds the choice of captions and the noise; the same seed gives the same numbers.
        dataset: the synthetic `DatasetIndex` the model was trained on (only for a model that is
            not a run; a run's is drawn again from its configuration).

    Returns:
        {"split", "num_captions", "images_per_caption", "image_size", "attributes": {name: {
            "accuracy": generated images reading as the caption's value, over captions that
                mention the attribute (NaN if none does),
            "real_ceiling": the same read-back on the real images the captions describe: what a
                perfect generator would score given the reader's own errors,
            "chance": the accuracy if what the generator draws were independent of the caption
                (sum over values of P(true value) * P(read value)),
            "uniform_chance": 1 / number of values,
            "accuracy_all_captions": like "accuracy" but over every caption,
            "mentioned": number of captions that mention the attribute,
            "confusion": [true value][read value] counts of generated images (mentioned captions),
        }} for every name in SCORED, "speckle": {
            "energy_ratio": the generated images' median `high_frequency_energy` over the real
                images' (1 = as smooth as the data; speckle raises it),
            "noise_like": `noise_like_share` of the generated images (rougher than almost any
                real image: the noise-like samples of docs/BENCHMARKS.md, session 17),
        }}. All accuracies are in [0, 1].

    Raises:
        UserInputError: for a run not trained on the synthetic dataset, or bad arguments.
    """
    if isinstance(model, str):
        model = load_run(model)
    if split not in _SPLITS:
        raise UserInputError(f"split must be one of {_SPLITS}, got '{split}'.")
    if images_per_caption < 1 or max_captions < 1:
        raise UserInputError("images_per_caption and max_captions must be >= 1.")
    if isinstance(model, LoadedRun):
        dataset, z_dim, draw = _run_parts(model)
    else:
        if dataset is None or dataset.attribute_names[:len(READ_ATTRIBUTES)] != READ_ATTRIBUTES:
            raise UserInputError("attribute accuracy needs the built-in synthetic dataset "
                                 "(--format synthetic).")
        z_dim, draw = model.z_dim, model.generate_from_noise
    part = getattr(dataset, split)

    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i, captions in enumerate(part.captions) for j in range(len(captions))]
    chosen = rng.choice(len(pairs), size=min(max_captions, len(pairs)), replace=False)
    image_index = np.array([pairs[c][0] for c in chosen], dtype=np.int64)
    captions = [part.captions[pairs[c][0]][pairs[c][1]] for c in chosen]
    truth = part.attributes[image_index]                                     # [n, 4]
    mentions = np.array([caption_mentions(c, row) for c, row in zip(captions, truth)])

    noise = rng.standard_normal((len(captions) * images_per_caption, z_dim)).astype(np.float32)
    repeated = [caption for caption in captions for _ in range(images_per_caption)]
    generated_images = draw(repeated, noise)
    real_images = part.images[image_index]
    generated = read_attributes(generated_images, include_background=True)
    real = read_attributes(real_images, include_background=True)

    per_image = np.repeat(np.arange(len(captions)), images_per_caption)
    results = {}
    for column, name in enumerate(SCORED):
        true_values, num_values = _values(truth, column)
        read_generated, _ = _values(generated, column)
        read_real, _ = _values(real, column)
        mentioned = _mentioned(mentions, column)
        results[name] = _scores(true_values[per_image], read_generated, mentioned[per_image],
                                true_values, read_real, mentioned, num_values)
    speckle = {"energy_ratio": float(np.median(high_frequency_energy(generated_images))
                                     / np.median(high_frequency_energy(real_images))),
               "noise_like": noise_like_share(generated_images, real_images)}
    return {"split": split, "num_captions": len(captions), "images_per_caption": images_per_caption,
            "image_size": int(part.images.shape[1]), "attributes": results, "speckle": speckle}


def caption_mentions(caption: str, attributes) -> tuple[bool, bool, bool, bool]:
    """Whether `caption` names the (petal colour, centre colour, count, background) of `attributes`
    (a row of `Split.attributes`), using the synthetic dataset's synonym tables."""
    petal, centre, count, background = (int(a) for a in attributes[:4])
    text = caption.lower()
    background_words = synthetic._BACKGROUND_WORDS[synthetic.BACKGROUND_NAMES[background]]
    says_background = any(re.search(rf"\b{re.escape(w)}\b (background|backdrop|ground)", text)
                          for w in background_words)
    # Remove background phrases first: "sky blue background" must not count as a blue flower part.
    for words in synthetic._BACKGROUND_WORDS.values():
        for word in sorted(words, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(word)}\b (background|backdrop|ground)", " ", text)

    def says(words):
        return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)

    return (says(synthetic._COLOUR_WORDS[synthetic.COLOUR_NAMES[petal]]),
            says(synthetic._COLOUR_WORDS[synthetic.COLOUR_NAMES[centre]]),
            says(synthetic._COUNT_WORDS[synthetic._COUNTS[count]]),
            says_background)


def _run_parts(run: LoadedRun):
    """(the synthetic dataset, z_dim, draw(captions, noise) -> uint8 images) of a loaded run."""
    data_cfg = run.config.data
    if data_cfg.format != "synthetic":
        raise UserInputError(f"caption fidelity needs a run trained on the built-in synthetic "
                             f"dataset; this run used data.format={data_cfg.format}.")
    dataset = load_synthetic(image_size=data_cfg.image_size,
                             images_per_class=data_cfg.synthetic_images_per_class,
                             seed=data_cfg.seed)

    def draw(captions, noise):
        return _draw(run.gan, noise, run.encoder.encode(captions).numpy()[:, None, :])

    return dataset, run.gan.z_dim, draw


def _draw(gan, noise: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S, 3] images of the generator for noise [N, Z] and caption ids [N, 1, T]."""
    images = []
    for start in range(0, len(noise), _BATCH):
        batch = gan((noise[start:start + _BATCH], ids[start:start + _BATCH]), training=False)
        images.append(to_uint8(keras.ops.convert_to_numpy(batch).astype(np.float32)))
    return np.concatenate(images)


def _values(attributes: np.ndarray, column: int) -> tuple[np.ndarray, int]:
    """Values of a SCORED column and their number ("colour_pair": petal * 7 + centre)."""
    if column < len(READ_ATTRIBUTES):
        return attributes[:, column], NUM_VALUES[column]
    return attributes[:, 0] * NUM_VALUES[1] + attributes[:, 1], NUM_VALUES[0] * NUM_VALUES[1]


def _mentioned(mentions: np.ndarray, column: int) -> np.ndarray:
    if column < len(READ_ATTRIBUTES):
        return mentions[:, column]
    return mentions[:, 0] & mentions[:, 1]


def _scores(true_values, read_values, mask, real_true, real_read, real_mask, num_values) -> dict:
    """The per-attribute entry of `attribute_accuracy` (see there)."""
    def accuracy(a, b, m):
        return float(np.mean(a[m] == b[m])) if m.any() else float("nan")

    true_m, read_m = true_values[mask], read_values[mask]
    p_true = np.bincount(true_m, minlength=num_values) / max(len(true_m), 1)
    p_read = np.bincount(read_m, minlength=num_values) / max(len(read_m), 1)
    confusion = np.zeros((num_values, num_values), dtype=np.int64)
    np.add.at(confusion, (true_m, read_m), 1)
    return {
        "accuracy": accuracy(true_values, read_values, mask),
        "real_ceiling": accuracy(real_true, real_read, real_mask),
        "chance": float(np.sum(p_true * p_read)) if mask.any() else float("nan"),
        "uniform_chance": 1.0 / num_values,
        "accuracy_all_captions": accuracy(true_values, read_values, np.ones_like(mask)),
        "mentioned": int(real_mask.sum()),
        "confusion": confusion.tolist(),
    }
