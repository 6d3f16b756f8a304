"""Hard negative captions: the same words as a caption, with its attributes bound differently.

For each caption, one negative that differs from it only in attribute words
(tf_t2i.data.attribute_words):
  * binding swap, when the caption has two attribute phrases of different text: two of them
    trade places ("red petals, blue centre" -> "blue petals, red centre");
  * replacement, when it has one (or only repeats of one): that phrase becomes another
    attribute word ("red petals" -> "white petals");
  * none, when it has no attribute word: the "negative" is the caption itself, and the train
    step leaves such examples out (their ids equal the caption's).
An attribute phrase is a run of adjacent attribute words ("cherry red", "five crimson"), so
that a swap never just reorders the words of one phrase ("red cherry"), which would describe
the same image. Everything else of the caption (case, spacing, punctuation) is kept.

The choices are drawn from numpy's generator seeded with `seed`, caption by caption in the
split's order: the negatives are a pure function of (captions, words, seed).

Reference: Yuksekgonul et al. 2023, "When and why vision-language models behave like
bags-of-words" (NegCLIP: hard negatives by swapping words of the caption).
"""
from __future__ import annotations

import numpy as np

from tf_t2i.data.attribute_words import token_spans

# Mixed into the data seed, so the negatives' draws are not any other use's of the same seed.
_SEED_TAG = 0x4E4547


def attribute_phrases(caption: str, words) -> list[tuple[int, int]]:
    """(start, end) character spans of the runs of adjacent attribute words in `caption`."""
    phrases, previous_was_attribute = [], False
    for start, end in token_spans(caption):
        attribute = caption[start:end].lower() in words
        if attribute and previous_was_attribute:
            phrases[-1] = (phrases[-1][0], end)
        elif attribute:
            phrases.append((start, end))
        previous_was_attribute = attribute
    return phrases


def hard_negative_caption(caption: str, words: tuple[str, ...], rng: np.random.Generator,
                          word_set=None) -> str:
    """One hard negative of `caption` (module docstring): a swap, a replacement, or itself.

    Args:
        caption: the caption.
        words: the attribute words (replacements are drawn from them).
        rng: the generator the choices are drawn from.
        word_set: `frozenset(words)`, when the caller has it already.
    """
    word_set = frozenset(words) if word_set is None else word_set
    phrases = attribute_phrases(caption, word_set)
    texts = [caption[start:end].lower() for start, end in phrases]
    pairs = [(i, j) for i in range(len(phrases)) for j in range(i + 1, len(phrases))
             if texts[i] != texts[j]]
    if pairs:
        i, j = pairs[rng.integers(len(pairs))]
        (a_start, a_end), (b_start, b_end) = phrases[i], phrases[j]
        return (caption[:a_start] + caption[b_start:b_end] + caption[a_end:b_start]
                + caption[a_start:a_end] + caption[b_end:])
    if not phrases:
        return caption
    chosen = rng.integers(len(phrases))
    start, end = phrases[chosen]
    replacements = [w for w in words if w not in texts[chosen].split()]
    if not replacements:
        return caption
    return caption[:start] + replacements[rng.integers(len(replacements))] + caption[end:]


def hard_negative_captions(captions, words: tuple[str, ...],
                           seed: int) -> tuple[tuple[str, ...], ...]:
    """A hard negative for every caption of a split, in the same layout.

    Args:
        captions: per image a sequence of caption strings (`Split.captions`).
        words: the attribute words.
        seed: the data seed.

    Returns:
        Per image a tuple of negatives, row for row with `captions`.
    """
    rng = np.random.default_rng([seed, _SEED_TAG])
    word_set = frozenset(words)
    return tuple(tuple(hard_negative_caption(c, words, rng, word_set) for c in image_captions)
                 for image_captions in captions)
