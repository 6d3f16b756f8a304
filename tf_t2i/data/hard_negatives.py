"""Hard negative captions: the same words as a caption, with its attributes bound differently.

For each caption, one negative that differs from it only in attribute words
(tf_t2i.data.attribute_words):
  * binding swap, when the caption has two attribute phrases of different text: two of them
    trade places ("red petals, blue centre" -> "blue petals, red centre");
  * replacement, when it has one (or only repeats of one), and for the share 1 - `swap_share`
    of the captions with more (by default none): one phrase becomes another attribute phrase
    that the corpus has before the same next word ("on a green background" -> "on a grey
    background", "red petals" -> "white petals"),
    or, where it has none, another attribute word. Swaps teach which word goes with which part;
    replacements teach every attribute the caption names, even one (such as a background) that
    a swap with a colour of the flower would leave the model free to ignore. A replacement is
    never a phrase that the captions of one image put before the same word as the replaced
    phrase (a synonym, "tangerine" and "orange"; or a compatible phrase, "red" and "3 red"),
    nor one of the image's own captions' phrases, so that it does not describe the image too;
  * none, when it has no attribute word: the "negative" is the caption itself, and the train
    step leaves such examples out (their ids equal the caption's).
An attribute phrase is a run of adjacent attribute words ("cherry red", "five crimson"), so
that a swap never just reorders the words of one phrase ("red cherry"), which would describe
the same image. Everything else of the caption (case, spacing, punctuation) is kept.

The choices are drawn from numpy's generator seeded with `seed`, caption by caption in the
split's order: the negatives are a pure function of (captions, words, seed, swap_share).

Reference: Yuksekgonul et al. 2023, "When and why vision-language models behave like
bags-of-words" (NegCLIP: hard negatives by swapping words of the caption).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tf_t2i.data.attribute_words import token_spans

# Mixed into the data seed, so the negatives' draws are not any other use's of the same seed.
_SEED_TAG = 0x4E4547


def attribute_phrases(caption: str, words) -> list[tuple[int, int]]:
    """(start, end) character spans of the runs of adjacent attribute words in `caption`."""
    return [(phrase.start, phrase.end) for phrase in _phrases(caption, words)]


@dataclasses.dataclass(frozen=True)
class _Phrase:
    """A run of adjacent attribute words: its character span, lower-cased text and next word
    (the token after it, lower-cased; "" at the caption's end)."""

    start: int
    end: int
    text: str
    following: str


def _phrases(caption: str, words) -> list[_Phrase]:
    spans = token_spans(caption)
    runs, previous_was_attribute = [], False
    for index, (start, end) in enumerate(spans):
        attribute = caption[start:end].lower() in words
        if attribute and previous_was_attribute:
            runs[-1][1:] = [end, index]
        elif attribute:
            runs.append([start, end, index])
        previous_was_attribute = attribute
    return [_Phrase(start, end, caption[start:end].lower(),
                    caption[slice(*spans[last + 1])].lower() if last + 1 < len(spans) else "")
            for start, end, last in runs]


@dataclasses.dataclass(frozen=True)
class PhraseContext:
    """What a replacement may be, learnt from a corpus (`phrase_context`).

    Attributes:
        by_next_word: {next word: attribute phrases seen right before it}; phrases are
            lower-cased, the next word is the token after the phrase ("" at a caption's end).
        compatible: {phrase: phrases that the captions of one image put before the same next
            word}: synonyms or compatible descriptions, never a replacement for each other.
    """

    by_next_word: dict
    compatible: dict


def phrase_context(captions, word_set) -> PhraseContext:
    """The `PhraseContext` of a corpus: per image a sequence of caption strings."""
    return _context([[_phrases(c, word_set) for c in image_captions]
                     for image_captions in captions])


def _context(phrases_per_image) -> PhraseContext:
    """`phrase_context` from per image, per caption, the caption's `_phrases`."""
    by_next_word: dict[str, set[str]] = {}
    compatible: dict[str, set[str]] = {}
    for image_phrases in phrases_per_image:
        image_slots: dict[str, set[str]] = {}
        for phrase in (p for caption_phrases in image_phrases for p in caption_phrases):
            image_slots.setdefault(phrase.following, set()).add(phrase.text)
        for following, texts in image_slots.items():
            by_next_word.setdefault(following, set()).update(texts)
            for text in texts:
                compatible.setdefault(text, set()).update(texts)
    return PhraseContext({k: tuple(sorted(v)) for k, v in by_next_word.items()},
                         {k: frozenset(v) for k, v in compatible.items()})


def hard_negative_caption(caption: str, words: tuple[str, ...], rng: np.random.Generator,
                          word_set=None, context: PhraseContext | None = None,
                          image_phrases=frozenset(), swap_share: float = 1.0) -> str:
    """One hard negative of `caption` (module docstring): a swap, a replacement, or itself.

    Args:
        caption: the caption.
        words: the attribute words (a replacement's fallback).
        rng: the generator the choices are drawn from.
        word_set: `frozenset(words)`, when the caller has it already.
        context: the corpus's `phrase_context`; None: every caption with two attribute phrases
            of different text gets a swap, the others any other word of `words`.
        image_phrases: the attribute phrases of all captions of the caption's image, which a
            replacement never is.
        swap_share: the chance that a caption with two attribute phrases of different text
            gets a swap rather than a replacement (with a `context`).
    """
    word_set = frozenset(words) if word_set is None else word_set
    return _negative(caption, _phrases(caption, word_set), words, rng, context, image_phrases,
                     swap_share)


def _negative(caption, phrases, words, rng, context, image_phrases, swap_share) -> str:
    """`hard_negative_caption` given the caption's `_phrases`."""
    if not phrases:
        return caption
    texts = [phrase.text for phrase in phrases]
    pairs = [(i, j) for i in range(len(phrases)) for j in range(i + 1, len(phrases))
             if texts[i] != texts[j]]
    if not pairs or (context is not None and swap_share < 1 and rng.random() >= swap_share):
        chosen = phrases[rng.integers(len(phrases))]
        replacement = _replacement(chosen, words, context, image_phrases, rng, pairs)
        if replacement is not None:
            return caption[:chosen.start] + replacement + caption[chosen.end:]
        if not pairs:
            return caption
    i, j = pairs[rng.integers(len(pairs))]
    a, b = phrases[i], phrases[j]
    return (caption[:a.start] + caption[b.start:b.end] + caption[a.end:b.start]
            + caption[a.start:a.end] + caption[b.end:])


def _replacement(phrase, words, context, image_phrases, rng, pairs):
    """A replacement for `phrase`, or None: a phrase of the same next word that neither the
    phrase's compatible ones nor the image's own are; else, when the caption has no swap,
    another attribute word; else None (the caller swaps)."""
    excluded = image_phrases | frozenset(phrase.text.split())
    if context is not None:
        excluded |= context.compatible.get(phrase.text, frozenset())
        candidates = [p for p in context.by_next_word.get(phrase.following, ())
                      if p not in excluded]
        if candidates or pairs:
            return candidates[rng.integers(len(candidates))] if candidates else None
    candidates = [w for w in words if w not in excluded]
    return candidates[rng.integers(len(candidates))] if candidates else None


def hard_negative_captions(captions, words: tuple[str, ...], seed: int,
                           swap_share: float = 1.0) -> tuple[tuple[str, ...], ...]:
    """A hard negative for every caption of a split, in the same layout.

    Args:
        captions: per image a sequence of caption strings (`Split.captions`).
        words: the attribute words.
        seed: the data seed.
        swap_share: of the captions with two attribute phrases, the share that get a swap
            (`data.hard_negative_swap_share`); the others get a replacement.

    Returns:
        Per image a tuple of negatives, row for row with `captions`.
    """
    rng = np.random.default_rng([seed, _SEED_TAG])
    word_set = frozenset(words)
    phrases = [[_phrases(c, word_set) for c in image_captions] for image_captions in captions]
    context = _context(phrases)
    negatives = []
    for image_captions, image_phrases in zip(captions, phrases):
        texts = frozenset(p.text for caption_phrases in image_phrases for p in caption_phrases)
        negatives.append(tuple(_negative(c, p, words, rng, context, texts, swap_share)
                               for c, p in zip(image_captions, image_phrases)))
    return tuple(negatives)
