"""Attribute words (tokenising, discovery, the user's list) and hard negative captions, alone
and as a batch field of the training pipeline."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tf_t2i.config import DataConfig
from tf_t2i.data import attribute_words as attribute_module
from tf_t2i.data.attribute_words import (attribute_words, discover_attribute_words,
                                         read_attribute_words, tokenize)
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.dataset_index import Split
from tf_t2i.data import synthetic
from tf_t2i.data.hard_negatives import (attribute_phrases, hard_negative_caption,
                                        hard_negative_captions, phrase_context)
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.data.synthetic import BACKGROUND_NAMES, COLOUR_NAMES, COUNT_NAMES, load_synthetic
from tf_t2i.errors import UserInputError

WORDS = ("red", "blue", "white", "cherry")


@pytest.fixture(scope="module")
def synthetic_train():
    """The built-in training split at the default preset's 40 images per class."""
    return load_synthetic(image_size=16, images_per_class=40, seed=0).train


def test_tokenize_splits_words_and_punctuation_without_downloaded_data():
    assert tokenize("A red flower, with 5 petals; sky-blue!") == [
        "a", "red", "flower", ",", "with", "5", "petals", ";", "sky", "-", "blue", "!"]


def test_discovery_on_the_built_in_dataset_finds_what_the_image_shows(synthetic_train):
    found = discover_attribute_words(synthetic_train.captions, synthetic_train.labels)
    words = [w.word for w in found]
    # Petal and centre colours and petal counts make the class; the background is drawn freely
    # per image but recurs in the image's captions: all are found...
    assert set(COLOUR_NAMES) | set(COUNT_NAMES) <= set(words)
    assert {"black", "grey", "green", "sky"} <= set(words)
    # ...and neither function words, nor part names, nor the templates' other words.
    for word in ("a", "an", "with", "the", "and", "petals", "centre", "flower", "background",
                 "backdrop", "surrounded", "radiate", "picture"):
        assert word not in words
    assert [w.score for w in found] == sorted((w.score for w in found), reverse=True)
    assert all(w.images >= 10 and w.score >= 0.2 for w in found)


def test_discovery_score_by_hand():
    """Two classes of two images, equal priors: "red" only in class 0 scores
    KL = log(1 / 0.5) minus Miller-Madow (1 class - 1) / (2 * 2) = 0; "big" in both: ~0."""
    captions = (("a red cup",), ("red big",), ("big cup",), ("a cup",))
    found = discover_attribute_words(captions, np.array([0, 0, 1, 1]), min_count=1,
                                     min_score=-1.0)
    scores = {w.word: w.score for w in found}
    assert scores["red"] == pytest.approx(np.log(2.0))
    assert scores["big"] == pytest.approx(0.0 - (2 - 1) / (2 * 2))
    assert scores["cup"] == pytest.approx(
        (1 / 3) * np.log((1 / 3) / 0.5) + (2 / 3) * np.log((2 / 3) / 0.5) - 1 / 6)
    assert "a" not in scores  # a function word
    assert discover_attribute_words((("a class_0 cup",), ("class_1",)), np.array([0, 1]),
                                    min_count=1)[0].word == "class_0"
    assert [w.word for w in discover_attribute_words(captions, np.array([0, 0, 1, 1]),
                                                     min_count=3)] == []


def test_image_score_by_hand():
    """One class, so no word predicts it. Image 0's three captions all say "green", image 1's
    three never do: P(green in a caption) = 3 / 6, and given one caption with it, another
    caption of its image has it 6 / 6 times: log(2). "cup" and "leaf" are in one caption of
    each image, never twice in one: -inf. Image 2 has one caption and is left out."""
    captions = (("green cup", "green", "green leaf"), ("cup", "leaf", "tall"), ("tall",))
    found = discover_attribute_words(captions, np.array([0, 0, 0]), min_count=1, min_score=0.1)
    assert [(w.word, w.images) for w in found] == [("green", 1)]
    assert found[0].score == pytest.approx(np.log(2.0))
    # One-caption images alone give no image evidence: the class score decides, log(2) here.
    single = discover_attribute_words((("red",), ("blue",)), np.array([0, 1]), min_count=1,
                                      min_score=-1.0)
    assert {w.word: w.score for w in single} == pytest.approx({"red": np.log(2), "blue": np.log(2)})


def test_user_words_from_a_list_or_a_file(tmp_path):
    assert read_attribute_words("red, Sky Blue,red,class_01") == ("red", "sky", "blue", "class_01")
    path = tmp_path / "words.txt"
    path.write_text("crimson\n\nsky blue\n", encoding="utf-8")
    assert read_attribute_words(str(path)) == ("crimson", "sky", "blue")
    assert read_attribute_words("") == ()
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(UserInputError) as raised:
        read_attribute_words(missing)
    assert str(raised.value) == (f"data.attribute_words={missing}: no such file; pass "
                                 "comma-separated words or a text file with one word per line.")


def test_attribute_words_adds_the_users_and_shows_the_best(synthetic_train, capsys):
    config = DataConfig(attribute_words="petals,red")
    words = attribute_words(synthetic_train, config, announce=True, shown=3)
    assert words[-1] == "petals" and words.count("red") == 1
    line = capsys.readouterr().out
    assert line.startswith("attribute words: ") and "more; 2 given: petals, red" in line


def test_phrases_join_adjacent_attribute_words():
    caption = "Cherry red petals and a blue, white centre"
    spans = attribute_phrases(caption, frozenset(WORDS))
    assert [caption[a:b] for a, b in spans] == ["Cherry red", "blue", "white"]


def test_swap_rebinds_two_attributes_and_changes_nothing_else():
    rng = np.random.default_rng(0)
    assert hard_negative_caption("red petals, blue centre", WORDS, rng) == "blue petals, red centre"
    assert (hard_negative_caption("Cherry red petals with a blue centre.", WORDS, rng)
            == "blue petals with a Cherry red centre.")


def test_one_attribute_is_replaced_and_none_leaves_the_caption():
    rng = np.random.default_rng(0)
    for _ in range(20):
        negative = hard_negative_caption("a red flower", WORDS, rng)
        first, word, last = negative.split(" ")
        assert (first, last) == ("a", "flower") and word in WORDS and word != "red"
    # Two phrases of the same text cannot be swapped into a difference: one is replaced.
    negative = hard_negative_caption("red petals, red centre", WORDS, rng)
    assert negative != "red petals, red centre" and negative.count("red") == 1
    assert hard_negative_caption("a flower with petals", WORDS, rng) == "a flower with petals"


def _values(phrase):
    """The synthetic dataset's (kind, value) pairs a phrase names, from its synonym tables."""
    tables = {"colour": synthetic._COLOUR_WORDS, "background": synthetic._BACKGROUND_WORDS,
              "count": synthetic._COUNT_WORDS}
    synonyms = sorted(((synonym, kind, value) for kind, table in tables.items()
                       for value, names in table.items() for synonym in names),
                      key=lambda entry: -len(entry[0]))
    values, text = set(), f" {phrase} "
    for synonym, kind, value in synonyms:  # longest first: "dark green" before "dark"
        if f" {synonym} " in text:
            values.add((kind, value))
            text = text.replace(f" {synonym} ", " ")
    return values


def _phrase_texts(caption, word_set):
    return [caption[a:b].lower() for a, b in attribute_phrases(caption, word_set)]


def test_negatives_of_the_built_in_captions_swap_or_replace_what_the_image_shows(
        synthetic_train):
    words = tuple(w.word for w in discover_attribute_words(synthetic_train.captions,
                                                           synthetic_train.labels))
    word_set = frozenset(words)
    # Replacements learn what is compatible from the whole split, as in training.
    captions = synthetic_train.captions[:300]
    negatives = hard_negative_captions(synthetic_train.captions, words, seed=0,
                                       swap_share=0.5)[:300]
    assert hard_negative_captions(captions, words, 0, 0.5) == hard_negative_captions(
        captions, words, 0, 0.5)
    assert hard_negative_captions(captions, words, 1, 0.5) != hard_negative_captions(
        captions, words, 0, 0.5)
    swaps, replaced = 0, []
    for caption, negative in zip((c for cs in captions for c in cs),
                                 (n for ns in negatives for n in ns)):
        assert negative != caption  # every built-in caption names a colour
        kept = [t for t in tokenize(caption) if t not in word_set]
        assert [t for t in tokenize(negative) if t not in word_set] == kept
        before, after = _phrase_texts(caption, word_set), _phrase_texts(negative, word_set)
        moved = [i for i, (x, y) in enumerate(zip(before, after)) if x != y]
        if sorted(before) == sorted(after):  # a swap: two phrases traded places
            swaps += 1
            assert len(moved) == 2 and after[moved[0]] == before[moved[1]]
        else:  # a replacement: one phrase became a phrase naming something else
            assert len(after) == len(before) and len(moved) == 1
            old, new = _values(before[moved[0]]), _values(after[moved[0]])
            assert new and not new <= old, (caption, negative)
            replaced.append(new)
    total = sum(len(c) for c in captions)
    assert 0.6 * total < swaps < 0.9 * total  # half of those with a swap, and none without
    # Replacements reach what swaps with the flower's colours leave free: the background.
    backgrounds = sum(any(kind == "background" for kind, _ in new) for new in replaced)
    assert backgrounds > 0.1 * len(replaced)
    # The default share, 1: a swap wherever a caption has two attribute phrases.
    default = hard_negative_captions(synthetic_train.captions, words, seed=0)[:300]
    default_swaps = sum(sorted(_phrase_texts(c, word_set)) == sorted(_phrase_texts(n, word_set))
                        for cs, ns in zip(captions, default) for c, n in zip(cs, ns))
    assert default_swaps > 0.95 * total


def test_replacements_follow_the_next_word_and_skip_compatible_phrases():
    captions = (("red petals on a green background", "crimson petals"),
                ("blue petals on a grey background", "blue petals"),
                ("white petals on a black background",))
    words = ("red", "crimson", "blue", "white", "green", "grey", "black")
    context = phrase_context(captions, frozenset(words))
    assert context.by_next_word["petals"] == ("blue", "crimson", "red", "white")
    assert context.by_next_word["background"] == ("black", "green", "grey")
    assert context.compatible["red"] == frozenset({"red", "crimson"})
    for seed in range(20):
        rng = np.random.default_rng(seed)
        negative = hard_negative_caption("red petals", words, rng, context=context,
                                         image_phrases=frozenset({"red", "green"}))
        # Not "crimson" (a synonym: one image's captions put both before "petals").
        assert negative in ("blue petals", "white petals")


def _split():
    """Unique captions naming two numbers each, so every caption has a swap or replacement."""
    images = np.zeros([24, 32, 32, 3], np.uint8)
    captions = tuple(tuple(f"image {i} caption {j}" for j in range(1 + i % 5)) for i in range(24))
    return Split(captions=captions, labels=(np.arange(24) % 4).astype(np.int32), images=images)


PIPELINE = DataConfig(image_size=32, batch_size=8, caption_length=32, captions_per_image=3, seed=2)
NUMBERS = tuple(str(i) for i in range(24))


def _take(dataset, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


def test_pipeline_delivers_each_captions_negative_row_for_row():
    encoder = CaptionEncoder(length=PIPELINE.caption_length)
    split = _split()
    dataset = make_train_dataset(split, PIPELINE, encoder, attribute_words=NUMBERS)
    spec = dataset.element_spec["hard_negative_captions"]
    assert spec.shape == (8, 3, 32) and spec.dtype == tf.int32
    negative_of = dict(zip((c for cs in split.captions for c in cs),
                           (n for ns in hard_negative_captions(split.captions, NUMBERS, 2)
                            for n in ns)))
    for batch in _take(dataset, 6):
        for captions, negatives in zip(batch["captions"], batch["hard_negative_captions"]):
            for caption, negative in zip(encoder.decode(captions), encoder.decode(negatives)):
                assert negative == negative_of[caption] != caption
    assert "hard_negative_captions" not in make_train_dataset(split, PIPELINE,
                                                              encoder).element_spec


def test_pipeline_with_negatives_stays_a_function_of_seed_and_step():
    encoder = CaptionEncoder(length=PIPELINE.caption_length)
    split = _split()

    def stream(**kwargs):
        return make_train_dataset(split, PIPELINE, encoder, attribute_words=NUMBERS, **kwargs)

    full, again, resumed = _take(stream(), 8), _take(stream(), 8), _take(stream(start_step=5), 3)
    plain = _take(make_train_dataset(split, PIPELINE, encoder), 8)
    for a, b, p in zip(full, again, plain):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        # The negatives change no other field of the stream.
        for key in p:
            np.testing.assert_array_equal(a[key], p[key])
    for a, b in zip(full[5:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = make_train_dataset(split, dataclasses.replace(PIPELINE, seed=3), encoder,
                               attribute_words=NUMBERS)
    assert not np.array_equal(_take(other, 1)[0]["hard_negative_captions"],
                              full[0]["hard_negative_captions"])


def test_pipeline_embeds_every_caption_once_and_delivers_the_same_stream():
    """With `embed_captions` (frozen text encoders), batches carry each chosen caption's and
    negative's embedding where they carried ids. The stand-in embedding is the ids themselves as
    floats, so every row can be checked against the stream of ids."""
    encoder = CaptionEncoder(length=PIPELINE.caption_length)
    split = _split()
    calls = []

    def embed(ids):
        calls.append(ids.shape)
        return ids.astype(np.float32)

    embedded = make_train_dataset(split, PIPELINE, encoder, attribute_words=NUMBERS,
                                  embed_captions=embed)
    spec = embedded.element_spec
    assert spec["caption_embeddings"].shape == (8, 3, 32)
    assert spec["caption_embeddings"].dtype == tf.float32
    assert spec["hard_negative_differs"].shape == (8, 3)
    assert not {"captions", "hard_negative_captions"} & set(spec)
    # Once per caption present, for the captions and for their negatives.
    total = sum(len(captions) for captions in split.captions)
    assert calls == [(total, 32), (total, 32)]
    for plain, batch in zip(_take(make_train_dataset(split, PIPELINE, encoder,
                                                     attribute_words=NUMBERS), 6),
                            _take(embedded, 6)):
        np.testing.assert_array_equal(batch["images"], plain["images"])
        np.testing.assert_array_equal(batch["wrong_indices"], plain["wrong_indices"])
        np.testing.assert_array_equal(batch["caption_embeddings"], plain["captions"])
        np.testing.assert_array_equal(batch["hard_negative_embeddings"],
                                      plain["hard_negative_captions"])
        np.testing.assert_array_equal(
            batch["hard_negative_differs"],
            np.any(plain["captions"] != plain["hard_negative_captions"], axis=-1))


def test_function_words_are_lower_case_words():
    assert all(w == w.lower() and w.isalpha() for w in attribute_module.FUNCTION_WORDS)
    assert not set(BACKGROUND_NAMES) & attribute_module.FUNCTION_WORDS
