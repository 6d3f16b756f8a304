"""Does the text embedding bind colours to flower parts? A diagnostic for unseen colour pairs.

    python benchmarks/text_binding.py RUN_DIR [--captions 3000] [--seed 0]

For a run trained on the built-in synthetic dataset, embeds captions with the run's text encoder
and finds, for each, the nearest train colour pair: the centroid (cosine) of the embeddings of
all training captions of that (petal colour, centre colour) pair. Printed per split, on captions
that name both colours:
    petal / centre  the nearest pair has the caption's petal / centre colour.
    swapped         the nearest pair is the caption's two colours the other way round. For unseen
                    pairs (test split) the swapped pair is always a train pair, so a text encoder
                    that reads a bag of colour words puts them there, and G draws the seen
                    pairing: the failure that unseen-pair fidelity shows.
The right pair itself is never a train pair for unseen captions, so "both" is only printed for
seen ones. Then, per colour role:
    colour probe    least-squares linear probes of the petal and of the centre colour, fit on the
                    embeddings of all training captions naming both and scored on the unseen
                    captions (1/7 is chance): whether the embedding holds each colour in a way
                    that carries over to pairings it was never trained on, as G must read it.
Then, for the background (which is not part of a class):
    text probe      a least-squares linear probe of the background from the embeddings of
                    training captions naming it (fit on two thirds, scored on the rest; 0.25
                    is chance): whether the embedding holds it at all.
    D checks it     D's mean score, sigmoid, on real training images with a caption naming their
                    background, against the same caption with another background named, and a
                    caption of another image: whether D would make G draw it.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_t2i.data import synthetic  # noqa: E402  (numpy only: --help stays fast)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder written by train.py (synthetic dataset).")
    parser.add_argument("--captions", type=int, default=3000,
                        help="captions scored per split (%(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="caption choice seed.")
    args = parser.parse_args(argv)
    from tf_t2i.cpu_kernels import enable_onednn

    enable_onednn()  # the kernels train.py trained with, before TensorFlow starts
    for line in report(args.run_dir, args.captions, args.seed):
        print(line)


def report(run_dir: str, num_captions: int = 3000, seed: int = 0) -> list[str]:
    """The printed lines (module docstring)."""
    from tf_t2i.errors import UserInputError
    from tf_t2i.runs import load_run

    run = load_run(run_dir)
    data = run.config.data
    if data.format != "synthetic":
        raise UserInputError(f"{run_dir}: text_binding needs a run on the built-in synthetic "
                             f"dataset; this run used data.format={data.format}.")
    dataset = synthetic.load_synthetic(image_size=data.image_size,
                             images_per_class=data.synthetic_images_per_class, seed=data.seed)
    rng = np.random.default_rng(seed)
    captions, attributes = _flat(dataset.train)
    embeddings = _embed(run, captions)
    colours = len(synthetic.COLOUR_NAMES)
    pair_ids = attributes[:, 0] * colours + attributes[:, 1]
    pairs = np.unique(pair_ids)
    centroids = _normalized(np.stack([embeddings[pair_ids == p].mean(0) for p in pairs]))
    lines = [f"run: {os.path.abspath(run_dir)}"]
    for name, split in (("seen (train)", dataset.train), ("unseen (test)", dataset.test)):
        split_captions, split_attributes = _flat(split)
        chosen = rng.choice(len(split_captions), min(num_captions, len(split_captions)),
                            replace=False)
        names_both = np.array([_names(split_captions[i], split_attributes[i])[:2]
                               for i in chosen]).all(axis=1)
        chosen = chosen[names_both]
        nearest = pairs[(_embed(run, [split_captions[i] for i in chosen]) @ centroids.T)
                        .argmax(axis=1)]
        petal, centre = split_attributes[chosen, 0], split_attributes[chosen, 1]
        petal_right, centre_right = nearest // colours == petal, nearest % colours == centre
        both = f" both {np.mean(petal_right & centre_right):.3f}" if split is dataset.train else ""
        lines.append(f"{name}: n={len(chosen)} nearest train pair: petal "
                     f"{petal_right.mean():.3f} centre {centre_right.mean():.3f}{both} swapped "
                     f"{np.mean(nearest == centre * colours + petal):.3f}")
    names = np.array([_names(c, a) for c, a in zip(captions, attributes)])
    lines.append(_colour_probe_line(embeddings[names[:, :2].all(axis=1)],
                                    attributes[names[:, :2].all(axis=1)], dataset.test, run))
    names_background = names[:, 3]
    lines.append(f"background, text probe: "
                 f"{_probe(embeddings[names_background], attributes[names_background, 3], 4):.3f}"
                 " (chance 0.25)")
    lines.append(_discriminator_check(run, dataset.train, rng))
    return lines


def _flat(split):
    """(captions, attributes [M, 4]) with one row per caption of `split`."""
    counts = [len(c) for c in split.captions]
    return ([c for image in split.captions for c in image],
            np.repeat(split.attributes, counts, axis=0))


def _names(caption, attributes):
    from tf_t2i.evaluation.caption_fidelity import caption_mentions

    return caption_mentions(caption, attributes)


def _normalized(values):
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def _embed(run, captions, chunk=1024):
    """float32 [M, E] unit-norm embeddings of `captions` by the run's text encoder."""
    ids = run.encoder.encode(captions).numpy()
    return _normalized(run.gan.embed_caption_table(ids, chunk_size=chunk).astype(np.float64))


def _probe(features, labels, classes):
    """Held-out accuracy of a ridge least-squares linear probe (fit on 2/3, scored on 1/3)."""
    order = np.random.default_rng(1).permutation(len(features))
    fit, held_out = order[: len(order) * 2 // 3], order[len(order) * 2 // 3:]
    return _fit_and_score(features[fit], labels[fit], features[held_out], labels[held_out],
                          classes)


def _colour_probe_line(train_embeddings, train_attributes, test, run) -> str:
    """Petal and centre colour probes fit on the train captions given (those naming both), scored
    on the unseen (test) captions naming both."""
    colours = len(synthetic.COLOUR_NAMES)
    test_captions, test_attributes = _flat(test)
    scored = np.array([all(_names(c, a)[:2]) for c, a in zip(test_captions, test_attributes)])
    test_embeddings = _embed(run, [c for c, keep in zip(test_captions, scored) if keep])
    accuracies = [_fit_and_score(train_embeddings, train_attributes[:, role],
                                 test_embeddings, test_attributes[scored, role], colours)
                  for role in (0, 1)]
    return (f"colour probe, fit on seen pairs, scored on unseen: petal {accuracies[0]:.3f} "
            f"centre {accuracies[1]:.3f} (chance {1 / colours:.3f}, n={int(scored.sum())})")


def _fit_and_score(features, labels, held_out_features, held_out_labels, classes):
    """Accuracy on the held-out rows of a ridge least-squares linear probe fit on the others."""
    inputs = np.c_[features, np.ones(len(features))]
    gram = inputs.T @ inputs + 1e-2 * np.eye(inputs.shape[1])
    weights = np.linalg.solve(gram, inputs.T @ np.eye(classes)[labels])
    predictions = (np.c_[held_out_features, np.ones(len(held_out_features))] @ weights)
    return float(np.mean(predictions.argmax(axis=1) == held_out_labels))


def _discriminator_check(run, split, rng, images=512) -> str:
    """D's mean sigmoid score on real images with their background-naming caption, the same
    caption with another background, and another image's caption."""
    import tensorflow as tf

    from tf_t2i.gan import conditioning_vector

    chosen, right, other_background = [], [], []
    for index in rng.permutation(len(split.captions)):
        found = _background_swapped(split.captions[index], split.attributes[index], rng)
        if found:
            chosen.append(index)
            right.append(found[0])
            other_background.append(found[1])
        if len(chosen) == images:
            break
    pixels = tf.image.resize(split.images[chosen].astype(np.float32) / 127.5 - 1.0,
                             [run.config.data.image_size] * 2)

    def score(captions):
        ids = run.encoder.encode(captions).numpy()
        table = run.gan.embed_caption_table(ids)
        embeddings = conditioning_vector(tf.constant(table)[:, None, :])
        logits = run.gan.discriminator((pixels, embeddings), training=False)
        return float(tf.reduce_mean(tf.sigmoid(tf.cast(logits, tf.float32))))

    return (f"background, D checks it: true caption {score(right):.3f}, another background "
            f"{score(other_background):.3f}, another image's caption "
            f"{score(right[1:] + right[:1]):.3f} (n={len(chosen)})")


def _background_swapped(captions, attributes, rng):
    """(a caption of the image naming its background, the same caption naming another), or None."""
    names = synthetic._BACKGROUND_WORDS[synthetic.BACKGROUND_NAMES[attributes[3]]]
    backgrounds = len(synthetic.BACKGROUND_NAMES)
    other = synthetic.BACKGROUND_NAMES[(attributes[3] + 1 + rng.integers(backgrounds - 1))
                                       % backgrounds]
    for caption in captions:
        for name in sorted(names, key=len, reverse=True):
            match = re.search(rf"\b{re.escape(name)}\b(?= (background|backdrop|ground))",
                              caption, re.IGNORECASE)
            if match:
                return caption, caption[:match.start()] + other + caption[match.end():]
    return None


if __name__ == "__main__":
    main()
