"""Quality metrics of a text-to-image model on a dataset split, each named by its protocol.

`QualityMetrics` fixes a sample of a split (real images, one caption each, one noise vector each)
once; `evaluate(model)` draws the generated side and returns one JSON-ready dict. The real side
(real images' features, their R-precision, ...) is computed on the first call and reused, so the
training loop can score the same sample every few thousand steps cheaply.

The model is anything with `generate_from_noise(captions, noise) -> uint8 [N, S, S, 3]`,
`styles(uint8 images) -> [N, Z]`, `style_transfer(images, captions) -> uint8 images`,
`image_size` and `z_dim`: a `ModelSource` (run folder or export) or, in training,
`model_source.from_training_model`.

Metrics (the names `--metrics` takes) and their keys in the result:
  r_precision          r_precision_<R>: AttnGAN R-precision of generated images with the
                       evaluator, mean and std over repeats; the real images' beside it.
  fid_inception        fid_inception_<n>: FID on InceptionV3 pool features (user weights file).
  inception_score      inception_score_<n>: IS of generated images (user weights file with the
                       classifier); the real images' beside it.
  fid_domain           fid_domain: the same distance on the evaluator's image embeddings.
  diversity            diversity_pixel_l1: mean pairwise |difference| of images of one caption
                       under different noise; the same for real images of one class beside it.
  style_verification   style_verification_auc: ROC AUC, per style attribute, of cos(S(x), S(y))
                       separating real pairs that share the attribute from pairs that do not.
  style_transfer_fidelity  style_transfer_background: share of style-transfer images whose
                       background (not named in the caption) is the source image's.
  attribute_accuracy   attribute_accuracy: caption fidelity on the built-in dataset, seen and
                       unseen splits, chance and real-image ceilings beside.
  interpolation_monotonicity  interpolation_monotonicity: share of text interpolations from
                       caption A to caption B (fixed noise) whose read-back colours move from A's
                       to B's without jumping back; the endpoints' accuracy beside it.
A metric whose needs are missing (no evaluator, no weights file, no style labels) is left out of
the result with one line in `skipped` saying what it needs.

Every entry holds `num_images` (sample count) and `seed`; where a real-image reference exists it
is under a key starting with `real`.

TensorFlow and Keras are imported where a metric needs them, so that importing this module (and
`evaluate.py --help`) stays fast.
"""
from __future__ import annotations

import numpy as np

from tf_t2i.data.dataset_index import DatasetIndex, Split
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation import statistics
from tf_t2i.evaluation.inception_features import HOW_TO_GET

METRICS = ("r_precision", "fid_inception", "inception_score", "fid_domain", "diversity",
           "style_verification", "style_transfer_fidelity", "attribute_accuracy",
           "interpolation_monotonicity")
#: Columns of the synthetic dataset's attributes that describe style, not content (the class):
#: the background is drawn per image; the petal count is part of the class but is a shape, which
#: the style encoder should also carry. Reed et al. 2016 section 5.2 used pose and background.
STYLE_ATTRIBUTES = ("background", "petal_count")
R_PRECISION_CANDIDATES = 100
R_PRECISION_REPEATS = 10
DIVERSITY_CAPTIONS = 20
DIVERSITY_IMAGES = 8
STYLE_PAIRS_IMAGES = 1000
ATTRIBUTE_CAPTIONS = 256
INTERPOLATION_PAIRS = 50
INTERPOLATION_STEPS = 8
#: The attributes a text interpolation is checked on: the two colours, which every pair differs in
#: at least one of (pairs are drawn from different classes of the same colour-naming captions).
INTERPOLATED_ATTRIBUTES = ("petal_colour", "centre_colour")


def count_name(count: int) -> str:
    """5000 -> "5k", 1120 -> "1120": the sample count as metric names spell it."""
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else str(count)


def parse_metric_names(text: str) -> tuple[str, ...]:
    """"all" or comma-separated names from METRICS; UserInputError naming an unknown one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("all",)):
        return METRICS
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserInputError(f"--metrics names unknown metric '{unknown[0]}': choose from all, "
                             f"{', '.join(METRICS)}.")
    return names


class QualityMetrics:
    """The chosen metrics on a fixed sample of a dataset split.

    Args:
        dataset: the `DatasetIndex` (its `attributes` enable the synthetic-only metrics).
        split: "test" or "train".
        names: metrics from METRICS.
        image_size: the model's image side (real images are resized to it).
        num_images: sample size (None or more than the split: the whole split).
        seed: seeds the sample, the captions and the noise: same seed, same numbers.
        evaluator: an `Evaluator` (R-precision, domain FID) or None.
        inception: an `InceptionFeatures` (FID, IS) or None.

    Attributes:
        skipped: {name: one line saying what the metric needs}, for metrics left out.
        roc_curves: after `evaluate` with style verification, {attribute: (fpr, tpr)}.
    """

    def __init__(self, dataset: DatasetIndex, split: str, names, image_size: int,
                 num_images: int | None = None, seed: int = 0, evaluator=None, inception=None):
        if split not in ("train", "test"):
            raise UserInputError(f"--split {split}: choose train or test.")
        self.dataset = dataset
        self.split_name = split
        self.split: Split = getattr(dataset, split)
        if len(self.split) < 2:
            raise UserInputError(f"the {split} split of {dataset.name} has {len(self.split)} "
                                 "image(s): metrics need at least 2.")
        self.image_size = image_size
        self.seed = seed
        self.evaluator = evaluator
        self.inception = inception
        rng = np.random.default_rng(seed)
        count = len(self.split) if not num_images else min(num_images, len(self.split))
        self.indices = np.sort(rng.choice(len(self.split), size=count, replace=False))
        self.captions = [self.split.captions[i][rng.integers(len(self.split.captions[i]))]
                         for i in self.indices]
        self.labels = self.split.labels[self.indices]
        self.noise_seed = int(rng.integers(2 ** 31))
        self.skipped = {}
        self.names = tuple(n for n in names if self._available(n))
        self.roc_curves = {}
        self._real = {}
        self._of_generated = {}

    @property
    def num_images(self) -> int:
        return len(self.indices)

    def _available(self, name: str) -> bool:
        synthetic = self.split.attributes is not None and tuple(
            self.dataset.attribute_names[:4]) == ("petal_colour", "centre_colour", "petal_count",
                                                  "background")
        needs = {
            "r_precision": (self.evaluator is not None,
                            "needs --evaluator EVAL (train one with `evaluate.py train-evaluator`)"),
            "fid_domain": (self.evaluator is not None,
                           "needs --evaluator EVAL (train one with `evaluate.py train-evaluator`)"),
            "fid_inception": (self.inception is not None, f"needs InceptionV3 weights: {HOW_TO_GET}"),
            "inception_score": (self.inception is not None
                                and getattr(self.inception, "has_classifier", False),
                                "needs InceptionV3 weights with the classifier (the file without "
                                f"'notop'): {HOW_TO_GET}"),
            "style_verification": (synthetic, "needs style labels, which only the built-in "
                                              "dataset has (--format synthetic)"),
            "style_transfer_fidelity": (synthetic, "needs the built-in dataset's attribute reader "
                                                   "(--format synthetic)"),
            "attribute_accuracy": (synthetic, "needs the built-in dataset's attribute reader "
                                              "(--format synthetic)"),
            "interpolation_monotonicity": (synthetic, "needs the built-in dataset's attribute "
                                                      "reader (--format synthetic)"),
            "diversity": (len(np.unique(self.labels)) < len(self.labels),
                          "needs a class with two or more images in the sample"),
        }
        ok, reason = needs.get(name, (True, ""))
        if not ok:
            self.skipped[name] = f"{name} skipped: it {reason}."
        return ok

    def real_images(self) -> np.ndarray:
        """uint8 [n, S, S, 3]: the sample's real images at the model's size."""
        if "images" not in self._real:
            self._real["images"] = load_images(self.split, self.indices, self.image_size)
        return self._real["images"]

    def evaluate(self, model) -> dict:
        """{key: entry} for every available metric (see the module docstring)."""
        generated = model.generate_from_noise(self.captions, self._noise(model.z_dim))
        self._of_generated = {}
        results = {}
        for name in self.names:
            results.update(getattr(self, "_" + name)(model, generated))
        return results

    def _noise(self, z_dim: int) -> np.ndarray:
        return np.random.default_rng(self.noise_seed).standard_normal(
            (self.num_images, z_dim)).astype(np.float32)

    def _entry(self, **values) -> dict:
        return dict(values, num_images=self.num_images, seed=self.seed, split=self.split_name)

    def _cached(self, key: str, compute):
        if key not in self._real:
            self._real[key] = compute()
        return self._real[key]

    # One method per metric: (model, generated uint8 images of the sample) -> {key: entry}.

    def _r_precision(self, model, generated) -> dict:
        captions = self._cached("evaluator_captions",
                                lambda: self.evaluator.embed_captions(self.captions))
        owners = self._owners()
        real = self._cached("real_r_precision", lambda: statistics.r_precision(
            self._cached("evaluator_real", lambda: self.evaluator.embed_images(self.real_images())),
            captions, owners, R_PRECISION_CANDIDATES, R_PRECISION_REPEATS, self.seed))
        mean, std, candidates = statistics.r_precision(
            self.evaluator.embed_images(generated), captions, owners, R_PRECISION_CANDIDATES,
            R_PRECISION_REPEATS, self.seed)
        return {f"r_precision_{candidates}": self._entry(
            mean=mean, std=std, real_mean=real[0], real_std=real[1], chance=1.0 / candidates,
            candidates=candidates, repeats=R_PRECISION_REPEATS,
            mismatched_from="other classes" if owners is self.labels else "other images",
            evaluator=self.evaluator.description)}

    def _owners(self) -> np.ndarray:
        """Class labels when every image has enough captions of other classes, else image ids
        (captions of the same class often say the same thing: they are no mismatch)."""
        wanted = min(R_PRECISION_CANDIDATES - 1, self.num_images - 1)
        other_class = len(self.labels) - np.bincount(self.labels)[self.labels]
        return self.labels if other_class.min() >= wanted else np.arange(self.num_images)

    def _fid_domain(self, model, generated) -> dict:
        real = self._cached("evaluator_real", lambda: self.evaluator.embed_images(self.real_images()))
        return {"fid_domain": self._fid_entry(real, self.evaluator.embed_images(generated),
                                              features=f"{self.evaluator.description}, "
                                                       f"{real.shape[1]}-d embeddings")}

    def _fid_inception(self, model, generated) -> dict:
        real = self._inception_real()[0]
        fake = self._inception_generated(generated)[0]
        return {f"fid_inception_{count_name(self.num_images)}": self._fid_entry(
            real, fake, features=f"InceptionV3 pool 2048-d at {self.inception.input_size} px "
                                 f"({self.inception.weights_path})")}

    def _fid_entry(self, real: np.ndarray, fake: np.ndarray, features: str) -> dict:
        if len(real) < 4:
            return self._entry(value=float("nan"), note="fewer than 4 images")
        halves = np.array_split(np.random.default_rng(self.seed).permutation(len(real)), 2)
        real_halves = self._cached(f"fid_halves_{features}", lambda: statistics.
                                   features_frechet_distance(real[halves[0]], real[halves[1]]))
        return self._entry(value=statistics.features_frechet_distance(real, fake),
                           real_half_vs_half=real_halves, features=features)

    def _inception_real(self):
        return self._cached("inception_real", lambda: self.inception(self.real_images()))

    def _inception_generated(self, generated):
        """FID and IS share one Inception pass over the images of this `evaluate` call."""
        if "inception" not in self._of_generated:
            self._of_generated["inception"] = self.inception(generated)
        return self._of_generated["inception"]

    def _inception_score(self, model, generated) -> dict:
        mean, std = statistics.inception_score(self._inception_generated(generated)[1])
        real = self._cached("inception_score_real",
                            lambda: statistics.inception_score(self._inception_real()[1]))
        return {f"inception_score_{count_name(self.num_images)}": self._entry(
            mean=mean, std=std, real_mean=real[0], real_std=real[1], splits=10)}

    def _diversity(self, model, generated) -> dict:
        captions, real_groups = self._diversity_sample()
        noise = np.random.default_rng(self.noise_seed + 1).standard_normal(
            (len(captions) * DIVERSITY_IMAGES, model.z_dim)).astype(np.float32)
        images = model.generate_from_noise(
            [c for c in captions for _ in range(DIVERSITY_IMAGES)], noise)
        images = images.reshape((len(captions), DIVERSITY_IMAGES) + images.shape[1:])
        value = float(np.mean([statistics.mean_pairwise_distance(group) for group in images]))
        real = self._cached("diversity_real", lambda: float(np.mean(
            [statistics.mean_pairwise_distance(load_images(self.split, group, self.image_size))
             for group in real_groups])))
        return {"diversity_pixel_l1": self._entry(
            value=value, real=real, ratio=value / real if real > 0 else float("nan"),
            captions=len(captions), images_per_caption=DIVERSITY_IMAGES)}

    def _diversity_sample(self):
        """(one caption per class, for up to DIVERSITY_CAPTIONS classes with >= 2 images;
        up to DIVERSITY_IMAGES real image indices of each of those classes)."""
        captions, groups = [], []
        for label in np.unique(self.labels):
            members = self.indices[self.labels == label]
            if len(members) >= 2:
                captions.append(self.captions[int(np.flatnonzero(self.labels == label)[0])])
                groups.append(members[:DIVERSITY_IMAGES])
            if len(captions) == DIVERSITY_CAPTIONS:
                break
        return captions, groups

    def _style_verification(self, model, generated) -> dict:
        count = min(self.num_images, STYLE_PAIRS_IMAGES)
        styles = np.asarray(model.styles(self.real_images()[:count]), np.float64)
        similarity = statistics.cosine_similarity(styles, styles)
        aucs = {}
        for name in STYLE_ATTRIBUTES:
            column = self.dataset.attribute_names.index(name)
            values = self.split.attributes[self.indices[:count], column]
            scores, same = statistics.same_value_pairs(values, similarity)
            aucs[name] = statistics.roc_auc(scores, same)
            self.roc_curves[name] = statistics.roc_curve(scores, same)
        return {"style_verification_auc": dict(self._entry(
            mean=float(np.nanmean(list(aucs.values()))), attributes=aucs, chance=0.5,
            pairs=count * (count - 1) // 2), num_images=count)}

    def _style_transfer_fidelity(self, model, generated) -> dict:
        from tf_t2i.evaluation.synthetic_attributes import read_attributes
        column = self.dataset.attribute_names.index("background")
        sources, captions = self._transfer_pairs()
        images = self.real_images()[sources]
        transferred = read_attributes(model.style_transfer(images, captions),
                                      include_background=True)[:, 3]
        truth = self.split.attributes[self.indices[sources], column]
        read_real = self._cached("background_real", lambda: read_attributes(
            self.real_images(), include_background=True)[:, 3])[sources]
        p_true = np.bincount(truth, minlength=4) / len(truth)
        p_read = np.bincount(transferred, minlength=4) / len(truth)
        return {"style_transfer_background": dict(self._entry(
            accuracy=float(np.mean(transferred == truth)),
            real_ceiling=float(np.mean(read_real == truth)),
            chance=float(np.sum(p_true * p_read)), uniform_chance=0.25), num_images=len(sources))}

    def _transfer_pairs(self):
        """(sample positions of source images, for each a caption of an image of another class
        that does not name a background)."""
        from tf_t2i.evaluation.caption_fidelity import caption_mentions
        rng = np.random.default_rng(self.seed + 2)
        attributes = self.split.attributes[self.indices]
        sources, captions = [], []
        for position in range(self.num_images):
            for other in rng.permutation(self.num_images)[:20]:
                caption = self.captions[other]
                if self.labels[other] != self.labels[position] and \
                        not caption_mentions(caption, attributes[other])[3]:
                    sources.append(position)
                    captions.append(caption)
                    break
        return np.asarray(sources, np.int64), captions

    def _attribute_accuracy(self, model, generated) -> dict:
        from tf_t2i.evaluation.caption_fidelity import attribute_accuracy
        entry = {}
        for split, name in (("train", "seen"), ("test", "unseen")):
            result = attribute_accuracy(model, split, images_per_caption=1,
                                        max_captions=min(ATTRIBUTE_CAPTIONS, self.num_images),
                                        seed=self.seed, dataset=self.dataset)
            entry[name] = {attribute: {k: v for k, v in scores.items() if k != "confusion"}
                           for attribute, scores in result["attributes"].items()}
            entry[f"{name}_mean"] = float(np.nanmean(
                [scores["accuracy"] for scores in result["attributes"].values()]))
            entry["num_captions"] = result["num_captions"]
        return {"attribute_accuracy": dict(self._entry(**entry),
                                           num_images=entry["num_captions"])}

    def _interpolation_monotonicity(self, model, generated) -> dict:
        from tf_t2i.evaluation.synthetic_attributes import read_attributes
        columns = [self.dataset.attribute_names.index(n) for n in INTERPOLATED_ATTRIBUTES]
        attributes = self.split.attributes[self.indices]
        monotone, endpoints = [], []
        for pair, (a, b) in enumerate(self._interpolation_pairs()):
            frames, _ = model.interpolate(self.captions[a], self.captions[b],
                                          INTERPOLATION_STEPS, self.seed + pair)
            read = read_attributes(frames, include_background=False)
            changed = [c for c in columns if attributes[a, c] != attributes[b, c]]
            monotone.append(all(statistics.is_monotone_change(
                read[:, c], attributes[a, c], attributes[b, c]) for c in changed))
            endpoints.append(all(read[0, c] == attributes[a, c] and read[-1, c] == attributes[b, c]
                                 for c in changed))
        monotone, endpoints = np.asarray(monotone), np.asarray(endpoints)
        return {"interpolation_monotonicity": dict(self._entry(
            monotone=float(np.mean(monotone)), endpoints_right=float(np.mean(endpoints)),
            monotone_and_endpoints_right=float(np.mean(monotone & endpoints)),
            pairs=len(monotone), steps=INTERPOLATION_STEPS,
            attributes=list(INTERPOLATED_ATTRIBUTES)), num_images=len(monotone) * INTERPOLATION_STEPS)}

    def _interpolation_pairs(self) -> list[tuple[int, int]]:
        """Up to INTERPOLATION_PAIRS (a, b) sample positions of different colour pairs whose
        captions both name the petal and the centre colour."""
        from tf_t2i.evaluation.caption_fidelity import caption_mentions
        attributes = self.split.attributes[self.indices]
        usable = [i for i in range(self.num_images)
                  if all(caption_mentions(self.captions[i], attributes[i])[:2])]
        rng = np.random.default_rng(self.seed + 3)
        pairs = []
        for a in rng.permutation(usable):
            others = [b for b in usable
                      if tuple(attributes[b, :2]) != tuple(attributes[a, :2])]
            if others:
                pairs.append((int(a), int(others[rng.integers(len(others))])))
            if len(pairs) == INTERPOLATION_PAIRS:
                break
        return pairs



def load_images(split: Split, indices, size: int) -> np.ndarray:
    """uint8 [len(indices), size, size, 3]: images of a split, resized (bilinear, antialiased;
    the whole image, like the export's `preprocess_images`)."""
    import tensorflow as tf
    out = np.empty((len(indices), size, size, 3), np.uint8)
    for position, index in enumerate(indices):
        if split.images is not None:
            image = split.images[index]
        else:
            image = tf.io.decode_image(tf.io.read_file(split.image_paths[index]), channels=3,
                                       expand_animations=False)
        if tuple(image.shape[:2]) != (size, size):
            image = tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        out[position] = np.asarray(image)
    return out
