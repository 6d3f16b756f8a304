"""The tf.data input pipeline: decode once, cache, then augment and pair captions every epoch.

Once:        decode + resize every image to `load_size` (parallel) into memory (uint8)
Per epoch:   a permutation of the whole split by a seed of (seed, epoch), gathered from memory
Per example: random crop to `image_size`, random flip, pick k of the image's captions (and,
             for hard negatives, the same k rows of their negatives, made once at load time;
             with frozen text encoders, their embeddings, computed once at load time)
Per batch:   a wrong caption set for every example: the captions of a batch example of another class

Every random choice is a stateless function of (seed, epoch) or (seed, example index), so the
stream is a pure function of the seed and the step: `start_step` resumes it exactly, without
replaying the epochs before.

Reference: Reed et al. 2016, section 4.2 (GAN-CLS needs {real image, mismatched text} pairs) and
section 5 (crops of 64 from 76, flips; the conditioning text is the mean of 4 caption embeddings).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_t2i.config import DataConfig
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.dataset_index import Split
from tf_t2i.data.hard_negatives import hard_negative_captions
from tf_t2i.errors import DataError


def caption_id_dtype(vocabulary_size: int) -> np.dtype:
    """The narrowest unsigned integer type holding every id (the cache holds every caption)."""
    for dtype in (np.uint8, np.uint16):
        if vocabulary_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int32)


def encode_split_captions(split: Split, encoder: CaptionEncoder) -> tuple[np.ndarray, np.ndarray]:
    """Encodes every caption of a split once.

    Returns:
        caption_ids: [N, max_captions, length] of `caption_id_dtype` (uint8 for Reed's
            alphabet), zero rows past each image's count.
        caption_counts: int32 [N] captions per image.
    """
    counts = np.array([len(c) for c in split.captions], dtype=np.int32)
    max_count = int(counts.max()) if len(counts) else 1
    flat = [caption for captions in split.captions for caption in captions]
    dtype = caption_id_dtype(encoder.vocabulary_size)
    flat_ids = encoder.encode(flat).numpy().astype(dtype) if flat else np.zeros(
        [0, encoder.length], dtype)
    caption_ids = np.zeros([len(counts), max_count, encoder.length], dtype=dtype)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    caption_ids[rows, cols] = flat_ids
    return caption_ids, counts


def _decoded_images(split: Split, load_size: int) -> tf.data.Dataset:
    """uint8 [load_size, load_size, 3] per image, in split order, decoded and resized in
    parallel."""
    if split.images is not None:
        source = tf.data.Dataset.from_tensor_slices(split.images)
        read = tf.identity
    else:
        source = tf.data.Dataset.from_tensor_slices(list(split.image_paths))

        def read(path):
            # The scanners verified every file, so a decode failure here is not expected.
            return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def resize(image):
        image = tf.image.resize(read(image), [load_size, load_size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    return source.map(resize, num_parallel_calls=tf.data.AUTOTUNE)


def _per_image(split: Split, config: DataConfig, encoder: CaptionEncoder) -> tf.data.Dataset:
    """(image uint8 [L, L, 3], caption ids [C, T], caption count, label) per image."""
    caption_ids, caption_counts = encode_split_captions(split, encoder)
    return tf.data.Dataset.zip((
        _decoded_images(split, config.load_size),
        tf.data.Dataset.from_tensor_slices(caption_ids),
        tf.data.Dataset.from_tensor_slices(caption_counts),
        tf.data.Dataset.from_tensor_slices(split.labels.astype(np.int32)),
    ))


def _cached_split(split: Split, config: DataConfig, encoder: CaptionEncoder):
    """The split decoded once into memory: (images uint8 [N, L, L, 3], caption ids [N, C, T],
    caption counts int32 [N], labels int32 [N]) as tensors an epoch's indices gather from.

    The memory is the decoded split's, whatever `data.shuffle_buffer` says.
    """
    load_size = config.load_size
    images = np.empty([len(split), load_size, load_size, 3], np.uint8)
    filled = 0
    for chunk in _decoded_images(split, load_size).batch(256):
        images[filled:filled + len(chunk)] = chunk.numpy()
        filled += len(chunk)
    caption_ids, caption_counts = encode_split_captions(split, encoder)
    return (tf.constant(images), tf.constant(caption_ids), tf.constant(caption_counts),
            tf.constant(split.labels.astype(np.int32)))


def _embedded(caption_ids, caption_counts, embed_captions):
    """float32 [N, C, E]: the embedding of every caption of `caption_ids` [N, C, T] (zeros
    past each image's count, which are never chosen), each caption embedded once."""
    ids, counts = caption_ids.numpy(), caption_counts.numpy()
    present = np.arange(ids.shape[1])[None, :] < counts[:, None]
    embeddings = np.asarray(embed_captions(ids[present].astype(np.int32)), np.float32)
    table = np.zeros(ids.shape[:2] + embeddings.shape[1:], np.float32)
    table[present] = embeddings
    return tf.constant(table)


def _as_batch_dtype(values):
    """Caption ids (stored as narrow unsigned ints) as int32; embeddings and flags unchanged."""
    return tf.cast(values, tf.int32) if values.dtype.is_unsigned else values


def _caption_choice(slots, count, k, seed):
    """Indices of k of an image's `slots` caption rows: without replacement when it has >= k
    captions (`count`), else with."""
    # At least k sort keys, so both branches below have k rows even when every image of the
    # split has fewer than k captions (then the rows past `count` are never chosen).
    slots = tf.maximum(slots, k)
    keys = tf.random.stateless_uniform([slots], seed=seed)
    keys = tf.where(tf.range(slots) < count, keys, 2.0)
    without_replacement = tf.argsort(keys)[:k]
    with_replacement = tf.random.stateless_uniform(
        [k], seed=seed + 1, minval=0, maxval=tf.maximum(count, 1), dtype=tf.int32)
    return tf.where(count >= k, without_replacement, with_replacement)


def wrong_partners(labels, seed):
    """For each example, the index of another batch example of a different class.

    Reed et al. pair a real image with a caption of a *different class*; drawing from the batch
    with same-class pairs masked out keeps that exact. If a batch holds a single class, any other
    example is used.

    Args:
        labels: int32 [B].
        seed: int32 [2] stateless seed.

    Returns:
        int32 [B] partner indices.
    """
    batch = tf.shape(labels)[0]
    other_class = labels[:, None] != labels[None, :]
    not_self = ~tf.eye(batch, dtype=tf.bool)
    has_other_class = tf.reduce_any(other_class, axis=1, keepdims=True)
    allowed = tf.where(has_other_class, other_class, not_self)
    logits = tf.where(allowed, 0.0, -1e9)
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed=seed)[:, 0], tf.int32)


def make_train_dataset(split: Split, config: DataConfig, encoder: CaptionEncoder,
                       start_step: int = 0,
                       attribute_words: tuple[str, ...] | None = None,
                       embed_captions=None) -> tf.data.Dataset:
    """An endless stream of training batches.

    Args:
        split: the training split.
        config: image size, crop margin, k, batch size, shuffle buffer, seed.
        encoder: the caption encoder.
        start_step: the first batch produced is the one an uninterrupted run produces at this step.
        attribute_words: with words (tf_t2i.data.attribute_words), every batch also holds
            each caption's hard negative (tf_t2i.data.hard_negatives), made once here.
        embed_captions: for a stage whose text encoder does not train, a function from caption
            ids int32 [M, T] to embeddings float32 [M, E]
            (`TextToImageGAN.embed_caption_table`): every caption and hard negative of the split
            is embedded once here, and batches carry embeddings instead of ids. The stream of
            examples and caption choices is the same either way.

    Returns:
        A dataset of dicts:
            images: float32 [B, S, S, 3] in [-1, 1];
            captions: int32 [B, k, T], k captions of each image;
            labels: int32 [B];
            wrong_indices: int32 [B], for each example another example of the batch whose class
                differs: its captions are this example's wrong captions (the train step gathers
                their embeddings instead of encoding the same captions twice);
            wrong_labels: int32 [B], labels[wrong_indices];
            hard_negative_captions (with `attribute_words`): int32 [B, k, T], row for row the
                hard negatives of `captions` (equal to a caption that has no attribute word).
        With `embed_captions`, instead of `captions` and `hard_negative_captions`:
            caption_embeddings: float32 [B, k, E];
            hard_negative_embeddings (with `attribute_words`): float32 [B, k, E];
            hard_negative_differs (with `attribute_words`): bool [B, k], whether the hard
                negative differs from its caption.
    """
    num_images = len(split)
    if num_images < config.batch_size:
        raise DataError(f"the training split has {num_images} images, fewer than "
                        f"data.batch_size={config.batch_size}: lower the batch size.")
    images, caption_ids, caption_counts, labels = _cached_split(split, config, encoder)
    # Caption tables gathered alike: the captions, then (optionally) their hard negatives.
    caption_tables = (caption_ids,)
    if attribute_words is not None:
        negatives = hard_negative_captions(split.captions, attribute_words, config.seed,
                                           config.hard_negative_swap_share)
        caption_tables += (tf.constant(encode_split_captions(
            dataclasses.replace(split, captions=negatives), encoder)[0]),)
    table_names = ("captions", "hard_negative_captions")
    if embed_captions is not None:
        table_names = ("caption_embeddings", "hard_negative_embeddings", "hard_negative_differs")
        differs = (() if attribute_words is None
                   else (tf.reduce_any(caption_tables[0] != caption_tables[1], axis=-1),))
        caption_tables = tuple(_embedded(table, caption_counts, embed_captions)
                               for table in caption_tables) + differs

    start_example = start_step * config.batch_size
    start_epoch, skip_in_epoch = divmod(start_example, num_images)
    seed = tf.constant(config.seed, tf.int64)

    def epoch_order(epoch):
        """The epoch's image indices: a permutation of the whole split by a stateless seed of
        (seed, epoch), so no TF global seed or op state is involved."""
        keys = tf.random.stateless_uniform([num_images], seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

    def lookup(index):
        return (tf.gather(images, index), tuple(tf.gather(t, index) for t in caption_tables),
                tf.gather(caption_counts, index), tf.gather(labels, index))

    stream = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_order)
    stream = stream.skip(skip_in_epoch).map(lookup).enumerate(start=start_example)

    size, k = config.image_size, config.captions_per_image

    def augment(index, element):
        image, tables, count, label = element
        example_seed = tf.stack([seed, index * 4])
        image = tf.image.stateless_random_crop(image, [size, size, 3], seed=example_seed)
        if config.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=example_seed + [0, 1])
        image = tf.cast(image, tf.float32) / 127.5 - 1.0
        chosen = _caption_choice(tf.shape(tables[0])[0], count, k, example_seed + [0, 2])
        captions = tuple(_as_batch_dtype(tf.gather(table, chosen)) for table in tables)
        return index, image, captions, label

    batches = stream.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    batches = batches.batch(config.batch_size, drop_remainder=True)

    def pair_wrong(index, images, captions, labels):
        batch_seed = tf.stack([seed + 1, index[0]])
        partners = wrong_partners(labels, batch_seed)
        batch = {
            "images": images,
            "labels": labels,
            "wrong_indices": partners,
            "wrong_labels": tf.gather(labels, partners),
        }
        batch.update(zip(table_names, captions))
        return batch

    batches = batches.map(pair_wrong, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(split: Split, config: DataConfig, encoder: CaptionEncoder,
                      batch_size: int | None = None) -> tf.data.Dataset:
    """One pass over a split in order, without augmentation (centre crop, first k captions).

    Returns:
        A dataset of dicts: images float32 [b, S, S, 3] in [-1, 1], captions int32 [b, k, T],
        labels int32 [b]; the last batch may be smaller.
    """
    size, k = config.image_size, config.captions_per_image
    offset = (config.load_size - size) // 2

    def prepare(image, ids, count, label):
        image = image[offset:offset + size, offset:offset + size]
        chosen = tf.range(k) % tf.maximum(count, 1)
        return {
            "images": tf.cast(image, tf.float32) / 127.5 - 1.0,
            "captions": tf.cast(tf.gather(ids, chosen), tf.int32),
            "labels": label,
        }

    dataset = _per_image(split, config, encoder).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size or config.batch_size).prefetch(tf.data.AUTOTUNE)
