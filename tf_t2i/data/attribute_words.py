"""Attribute words of a caption corpus: the words that describe the image, not the phrasing.

Hard negative captions (tf_t2i.data.hard_negatives) swap or replace these words. They are found
in the training captions themselves, so any dataset works without a hand-made list. A word is
an attribute word when it predicts the image's class, or when it recurs in other captions of the
same image (what an image shows that its class leaves free, such as the background):

    class_score(w) = KL(P(class | w in caption) || P(class)) - (classes with w - 1) / (2 n_w)
    image_score(w) = log(P(w in another caption of the image | w in a caption) / P(w in a caption))
    score(w) = max(class_score(w), image_score(w))

in nats. class_score is over the images whose captions contain w (n_w of them): the
information one occurrence of w gives about the class, ~0 for words every class uses alike
("a", "with", "petals"), up to log(classes) for a word only one class uses, less the
Miller-Madow correction of the upward bias a rare word seen in few classes by chance has.
image_score is the pointwise mutual information of w's occurrences in two captions of one image,
over the images with two or more captions (without such images, class_score decides alone):
~0 for words that come with a sentence template ("surrounded", "backdrop"), which the annotator
of each caption picks anew, and log(2) or more for words the image dictates ("green" of a green
background, in the built-in dataset 1.4). Words below a frequency floor, non-alphanumeric
tokens and a fixed list of English function words are never discovered ("an" predicts "orange"
and "ivory" in the built-in dataset, but swapping it makes no attribute negative). A user list
(`data.attribute_words`) is added to what is discovered.

Tokens are nltk's `wordpunct_tokenize` (a regular expression: it needs no downloaded data),
lower-cased. Multi-word attributes ("sky blue") are not discovered as phrases: their words are
scored one by one, and `hard_negatives` treats adjacent attribute words as one phrase.

Reference: Yuksekgonul et al. 2023, "When and why vision-language models behave like
bags-of-words" (NegCLIP hard negatives by word swaps).
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from tf_t2i.config import DataConfig
from tf_t2i.data.dataset_index import Split
from tf_t2i.errors import UserInputError


@functools.cache
def _tokenizer():
    # Imported on first use: importing nltk takes 1-2 s (it loads scipy.stats), which every
    # train.py and evaluate.py start paid while only runs with hard negatives tokenize.
    from nltk.tokenize import WordPunctTokenizer
    return WordPunctTokenizer()


# Closed-class English words (articles, pronouns, prepositions, conjunctions, auxiliaries):
# never attributes, whatever their statistics.
FUNCTION_WORDS = frozenset("""
a an the this that these those it its they them their there here which who whom whose what
of in on at by for from with without within into onto over under above below between among
around about across along against through toward towards upon beside besides near off out up
down and or nor but so yet if then than as while because although though whereas
is are was were be been being am has have had having do does did can could will would shall
should may might must not no very too also just only quite rather some any each every all both
either neither one ones such own other another more most less least much many few several
i me my we us our you your he him his she her
""".split())


@dataclasses.dataclass(frozen=True)
class ScoredWord:
    """One discovered attribute word: its score (nats) and the images whose captions have it."""

    word: str
    score: float
    images: int


def tokenize(caption: str) -> list[str]:
    """Lower-cased word and punctuation tokens: "Red petals, 5!" -> [red, petals, ",", 5, !]."""
    return [token.lower() for token in _tokenizer().tokenize(caption)]


def token_spans(caption: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of `tokenize(caption)`'s tokens in `caption`."""
    return list(_tokenizer().span_tokenize(caption))


def is_word(token: str) -> bool:
    """Word tokens (not punctuation) that are not function words: the candidates."""
    return _has_letter_or_digit(token) and token not in FUNCTION_WORDS


def _has_letter_or_digit(token: str) -> bool:
    """Word tokens ("red", "5", "class_01"), not punctuation ones (",", "-", "!)")."""
    return any(char.isalnum() for char in token)


def discover_attribute_words(captions, labels, min_count: int = 10,
                             min_score: float = 0.2) -> list[ScoredWord]:
    """Words that predict their image's class or recur in its other captions, best first.

    Args:
        captions: per image a sequence of caption strings.
        labels: int [N] class ids of the images.
        min_count: the frequency floor: a word must occur in the captions of this many images.
        min_score: the least score (nats, module docstring) of a discovered word.

    Returns:
        The discovered words, highest score first (ties by word).
    """
    vocabulary: dict[str, int] = {}
    word_rows, image_rows, captions_with_word, captions_of_image = [], [], [], []
    for image, image_captions in enumerate(captions):
        per_caption = [{t for t in tokenize(caption) if is_word(t)} for caption in image_captions]
        for word in set().union(*per_caption):
            word_rows.append(vocabulary.setdefault(word, len(vocabulary)))
            image_rows.append(image)
            captions_with_word.append(sum(word in words for words in per_caption))
            captions_of_image.append(len(image_captions))
    if not vocabulary:
        return []
    word_rows = np.array(word_rows)
    scores = np.maximum(
        _class_scores(word_rows, np.asarray(labels)[image_rows], len(vocabulary), labels),
        _image_scores(word_rows, np.array(captions_with_word, np.float64),
                      np.array(captions_of_image, np.float64), len(vocabulary),
                      sum(len(c) for c in captions if len(c) >= 2)))
    n_word = np.bincount(word_rows, minlength=len(vocabulary))
    words = list(vocabulary)
    found = [ScoredWord(words[i], float(scores[i]), int(n_word[i])) for i in range(len(words))
             if n_word[i] >= min_count and scores[i] >= min_score]
    return sorted(found, key=lambda w: (-w.score, w.word))


def _class_scores(word_rows, image_labels, vocabulary_size, labels) -> np.ndarray:
    """class_score (module docstring) per word; a row is a (word, image whose captions hold it)."""
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1
    counts = np.zeros([vocabulary_size, classes])
    np.add.at(counts, (word_rows, image_labels), 1.0)
    prior = np.bincount(labels, minlength=classes) / len(labels)
    n_word = counts.sum(axis=1)
    posterior = counts / n_word[:, None]
    present = counts > 0
    ratio = np.where(present, posterior, 1.0) / np.where(present, prior, 1.0)
    information = np.sum(posterior * np.log(ratio), axis=1)
    return information - (present.sum(axis=1) - 1) / (2 * n_word)


def _image_scores(word_rows, captions_with_word, captions_of_image, vocabulary_size,
                  total_captions) -> np.ndarray:
    """image_score (module docstring) per word, from the images with two or more captions.

    For a (word, image) row with m of the image's n captions containing the word, m (m - 1)
    ordered pairs of its captions both have it, out of m (n - 1) that start at one that has it.
    Words never in two captions of one image get -inf, and so does every word of a corpus
    without multi-caption images: no evidence, so the class score decides.
    """
    if total_captions == 0:
        return np.full(vocabulary_size, -np.inf)
    several = captions_of_image >= 2
    rows, m, n = word_rows[several], captions_with_word[several], captions_of_image[several]
    both = np.bincount(rows, m * (m - 1), minlength=vocabulary_size)
    pairs = np.bincount(rows, m * (n - 1), minlength=vocabulary_size)
    base = np.bincount(rows, m, minlength=vocabulary_size) / total_captions
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.log(both / pairs / base)
    return np.where(both > 0, scores, -np.inf)


def read_attribute_words(spec: str) -> tuple[str, ...]:
    """The user's attribute words: `spec` is comma-separated words or a text file, one per line.

    A multi-word entry adds each of its words. Raises UserInputError for a path that names
    no file.
    """
    spec = spec.strip()
    if not spec:
        return ()
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            entries = f.read().splitlines()
    elif os.sep in spec or "/" in spec or spec.endswith(".txt"):
        raise UserInputError(f"data.attribute_words={spec}: no such file; pass comma-separated "
                             "words or a text file with one word per line.")
    else:
        entries = spec.split(",")
    words = [token for entry in entries for token in tokenize(entry) if _has_letter_or_digit(token)]
    return tuple(dict.fromkeys(words))


def attribute_words(split: Split, config: DataConfig, announce: bool = False,
                    shown: int = 40) -> tuple[str, ...]:
    """The attribute words hard negatives use: discovered in `split`, plus the user's.

    Args:
        split: the training split.
        config: `attribute_words`, `attribute_min_count` and `attribute_min_score`.
        announce: print the `shown` best discovered words and the user's, once at start-up.

    Returns:
        The words, discovered first (best first), then the user's that were not discovered.
    """
    discovered = discover_attribute_words(split.captions, split.labels,
                                          config.attribute_min_count, config.attribute_min_score)
    user = read_attribute_words(config.attribute_words)
    words = tuple(dict.fromkeys([w.word for w in discovered] + list(user)))
    if announce:
        best = ", ".join(f"{w.word} ({w.score:.2f})" for w in discovered[:shown])
        more = f" and {len(discovered) - shown} more" if len(discovered) > shown else ""
        print(f"attribute words: {len(discovered)} discovered"
              + (f" (score in nats): {best}{more}" if discovered else "")
              + (f"; {len(user)} given: {', '.join(user)}" if user else ""))
        if not words:
            print("attribute words: none, so no caption has a hard negative; lower "
                  "data.attribute_min_count or data.attribute_min_score, or set "
                  "data.attribute_words.")
    return words
