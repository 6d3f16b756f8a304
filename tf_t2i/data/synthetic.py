"""A built-in synthetic flower dataset: procedurally drawn images with varied captions.

It needs no download and is drawn in a few seconds, so that training, tests and smoke runs work
anywhere. It is built to test what the paper's zero-shot setting tests (unseen classes described by
text), with ground truth that can be checked per attribute.

Attributes (columns of `Split.attributes`, in this order):
    petal_colour: red, orange, yellow, blue, purple, pink, white.
    centre_colour: the same seven colours, never equal to the petal colour.
    petal_count: three, four, five, six.
    background: black, grey, green, sky blue (a plain colour with a soft vertical gradient).

Classes: one per (petal_colour, centre_colour, petal_count) combination, 7 * 6 * 4 = 168 classes,
named like "red petals / yellow centre / five petals". The background is drawn freely per image,
is not part of the class, and is described in about half of the captions.

Split (class-disjoint, independent of the seed): every class whose colour pair satisfies
(centre - petal) mod 7 == 3 is a test class. That holds out 7 of the 42 (petal, centre) colour
pairings with all four counts: 28 of 168 classes (~17%). Each colour is the petal colour of exactly
one held-out pairing and the centre colour of another, and appears with five other partners in
train, so every attribute value is seen in training. Test classes are unseen *pairings* of seen
values, which a text encoder handles only if it composes attributes instead of memorising classes.

Images: the flower is a polar "rose" curve (petals) with a disc on top (centre, radius 19-22% of the
side), drawn with one-pixel soft edges at the target size. Nuisance per image: position (+-5% of the
side), rotation, petal length, colour jitter, mild shading and pixel noise.

Captions: 10 distinct ones per image from 27 sentence templates, with synonyms for colours, parts,
counts and backgrounds. Attribute order varies; a few templates omit the count or the centre, and
about half the captions omit the background; lower and sentence case. Only characters of
`config.REED_ALPHABET` and capitals occur.
"""
from __future__ import annotations

import numpy as np

from tf_t2i.data.dataset_index import DatasetIndex, Split
from tf_t2i.errors import UserInputError

COLOUR_NAMES = ("red", "orange", "yellow", "blue", "purple", "pink", "white")
# Saturated, well-separated RGB values: every pair of colours, and every colour and background, are
# >= 99 apart (orange / yellow is the closest), far more than jitter, shading and noise move them,
# so each colour stays identifiable even at 32 px.
_PALETTE = np.array([
    (215, 25, 30), (245, 130, 10), (245, 225, 40), (30, 90, 230),
    (140, 40, 175), (255, 120, 190), (245, 245, 245)], dtype=np.float32)
COUNT_NAMES = ("three", "four", "five", "six")
_COUNTS = (3, 4, 5, 6)
BACKGROUND_NAMES = ("black", "grey", "green", "sky blue")
_BACKGROUND_RGB = np.array([(20, 20, 25), (110, 110, 110), (30, 80, 35), (120, 180, 235)],
                           dtype=np.float32)
ATTRIBUTE_NAMES = ("petal_colour", "centre_colour", "petal_count", "background")
CAPTIONS_PER_IMAGE = 10
_HELD_OUT_OFFSET = 3  # a test class has (centre - petal) mod 7 == this

_COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet", "cherry red", "bright red"),
    "orange": ("orange", "tangerine", "bright orange", "pumpkin orange"),
    "yellow": ("yellow", "golden", "lemon yellow", "sunny yellow", "canary yellow"),
    "blue": ("blue", "cobalt", "sapphire", "royal blue", "deep blue"),
    "purple": ("purple", "violet", "plum", "deep purple"),
    "pink": ("pink", "rose pink", "fuchsia", "hot pink", "bubblegum pink"),
    "white": ("white", "snow white", "ivory", "pure white", "milky white"),
}
_BACKGROUND_WORDS = {
    "black": ("black", "dark", "jet black", "pitch black"),
    "grey": ("grey", "gray", "ash grey", "slate grey", "dull grey"),
    "green": ("green", "leafy green", "grassy green", "dark green", "mossy"),
    "sky blue": ("sky blue", "pale blue", "light blue", "powder blue"),
}
_COUNT_WORDS = {3: ("three", "3"), 4: ("four", "4"), 5: ("five", "5"), 6: ("six", "6")}
_PETAL_NOUNS = ("petals", "petals", "petals", "blossoms", "petal leaves")
_CENTRE_NOUNS = ("centre", "center", "middle", "stamen", "core", "pistil", "heart")
_BACKGROUND_PHRASES = (
    "on {a} background", "against {a} backdrop", "in front of {a} background",
    "over {a} background", "set against {a} background", "with {a} background", "on {w} ground")

# {N} count, {P} petal colour, {pn} petal noun, {C} centre colour, {cn} centre noun, {B} background
# phrase (dropped with its leading space in about half the captions); {aX} is {X} with "a" or "an".
# Orders vary; a few templates leave out the count or the centre on purpose.
_TEMPLATES = (
    "a flower with {N} {P} {pn} and {aC} {cn} {B}",
    "this flower has {N} {P} {pn} surrounding {aC} {cn} {B}",
    "{N} {P} {pn} around {aC} {cn} {B}",
    "the flower {B} has {P} {pn}, {N} of them, and {aC} {cn}",
    "{aC} {cn} is surrounded by {N} {P} {pn} {B}",
    "this is {aP} flower with {N} {pn} and {aC} {cn} {B}",
    "the {pn} are {P} and there are {N} of them; the {cn} is {C}",
    "{aN}-petaled {P} flower with {aC} {cn} {B}",
    "{N} {P} {pn} with {aC} {cn} {B}",
    "the flower shown has {aC} {cn} and {N} {P} {pn} {B}",
    "there are {N} {P} {pn} on this flower, which has {aC} {cn}",
    "this flower has {P} {pn} and {aC} {cn} {B}",
    "a flower with {N} {pn} that are {P}, and a {cn} that is {C} {B}",
    "the {cn} of this flower is {C} and its {N} {pn} are {P}",
    "{C} {cn} with {N} {P} {pn} {B}",
    "this {P} flower has {N} {pn} arranged around {aC} {cn}",
    "a simple flower {B}: {N} {P} {pn} and {aC} {cn}",
    "the {pn} of this flower are {P} and the {cn} is {C}",
    "a flower with {N} {P} {pn} {B}",
    "{aC} {cn} sits among {N} {P} {pn} {B}",
    "{N} {P} {pn} radiate from {aC} {cn} {B}",
    "a picture of a flower {B} with {N} {P} {pn} and {aC} {cn}",
    "{P} {pn} ({N}) and {aC} {cn} {B}",
    "the flower has {N} {pn}; they are {P}, and its {cn} is {C}",
    "{aP} and {C} flower with {N} {pn} {B}",
    "this flower is {P} with {aC} {cn} and {N} {pn}",
    "{aC}-centered flower whose {N} {pn} are {P} {B}",
)
_ENDINGS = (".", ".", ".", "", " .")
_DRAWS_PER_IMAGE = 2 * CAPTIONS_PER_IMAGE  # duplicates are rare: 20 draws give 10 distinct


def load_synthetic(image_size: int = 64, images_per_class: int = 40, seed: int = 0) -> DatasetIndex:
    """Draws the synthetic flower dataset (see the module docstring for attributes and split).

    Args:
        image_size: side of the square images (32, 64 or 128).
        images_per_class: images drawn for every class, train and test alike.
        seed: seeds every random choice; the same seed gives byte-identical images and captions.

    Returns:
        A DatasetIndex with in-memory uint8 [N, image_size, image_size, 3] images, 10 captions per
        image, int32 labels and int32 [N, 4] attributes; train and test classes are disjoint.

    Raises:
        UserInputError: for image_size < 8 or images_per_class < 1.
    """
    if image_size < 8 or images_per_class < 1:
        raise UserInputError(f"synthetic data: image_size ({image_size}) must be >= 8 and "
                             f"images_per_class ({images_per_class}) >= 1.")
    classes = _class_combinations()
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), images_per_class)
    backgrounds = rng.integers(0, len(BACKGROUND_NAMES), size=len(labels)).astype(np.int32)
    attributes = np.concatenate([classes[labels], backgrounds[:, None]], axis=1)
    images = _draw_images(attributes, image_size, rng)
    captions = _all_captions(attributes, rng)
    is_test = _is_test_class(classes)[labels]
    return DatasetIndex(
        name="synthetic",
        class_names=tuple(_class_name(row) for row in classes),
        train=_split(~is_test, images, captions, labels, attributes),
        test=_split(is_test, images, captions, labels, attributes),
        attribute_names=ATTRIBUTE_NAMES,
        attribute_values=(COLOUR_NAMES, COLOUR_NAMES, COUNT_NAMES, BACKGROUND_NAMES),
    )


def _class_combinations() -> np.ndarray:
    """int32 [num_classes, 3] (petal colour, centre colour, count index); class id = row index."""
    rows = [(petal, centre, count)
            for petal in range(len(COLOUR_NAMES))
            for centre in range(len(COLOUR_NAMES)) if centre != petal
            for count in range(len(_COUNTS))]
    return np.array(rows, dtype=np.int32)


def _is_test_class(classes: np.ndarray) -> np.ndarray:
    """bool [num_classes]: the held-out colour pairings (a fixed rule, independent of the seed)."""
    return (classes[:, 1] - classes[:, 0]) % len(COLOUR_NAMES) == _HELD_OUT_OFFSET


def _class_name(row: np.ndarray) -> str:
    """E.g. "red petals / yellow centre / five petals"."""
    petal, centre, count = row
    return (f"{COLOUR_NAMES[petal]} petals / {COLOUR_NAMES[centre]} centre / "
            f"{COUNT_NAMES[count]} petals")


def _split(mask: np.ndarray, images: np.ndarray, captions: tuple, labels: np.ndarray,
           attributes: np.ndarray) -> Split:
    """The images where `mask` is true, in generation order."""
    indices = np.flatnonzero(mask)
    return Split(captions=tuple(captions[i] for i in indices), labels=labels[indices],
                 images=images[indices], attributes=attributes[indices])


def _draw_images(attributes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, size, size, 3]: draws the images in chunks (bounded memory, cache-friendly)."""
    n = len(attributes)
    params = _nuisance_parameters(attributes, rng)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    # ~256k pixels per chunk keep the float32 temporaries (1 MB each) in cache: 2x faster than 4M.
    chunk = max(1, (1 << 18) // (size * size))
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        images[part] = _render({k: v[part] for k, v in params.items()}, size)
    return images


def _nuisance_parameters(attributes: np.ndarray, rng: np.random.Generator) -> dict:
    """Per-image geometry and colours (float32), drawn up front so chunking cannot change them."""
    n = len(attributes)
    f32 = np.float32

    def jitter(scale, shape):
        return rng.uniform(-scale, scale, size=shape).astype(f32)

    return {
        "centre_x": 0.5 + jitter(0.05, n),
        "centre_y": 0.5 + jitter(0.05, n),
        "outer_radius": rng.uniform(0.40, 0.47, size=n).astype(f32),
        "centre_radius": rng.uniform(0.19, 0.22, size=n).astype(f32),
        "rotation": rng.uniform(0, 2 * np.pi, size=n).astype(f32),
        "count": np.asarray(_COUNTS, dtype=f32)[attributes[:, 2]],
        "petal_rgb": _PALETTE[attributes[:, 0]] + jitter(12, (n, 3)),
        "centre_rgb": _PALETTE[attributes[:, 1]] + jitter(12, (n, 3)),
        "background_rgb": _BACKGROUND_RGB[attributes[:, 3]] + jitter(10, (n, 3)),
        "gradient": rng.uniform(0.1, 0.25, size=n).astype(f32),
        "noise_seed": rng.integers(2**62, size=n),
    }


def _render(p: dict, size: int) -> np.ndarray:
    """uint8 [n, size, size, 3] for one chunk of parameters `p` (see `_nuisance_parameters`)."""
    background, petal, centre = _layer_weights(p, size)
    noise = _pixel_noise(p["noise_seed"], size)

    def colour(key, channel):
        return p[key][:, None, None, channel]

    # Per channel on [n, size, size] maps: cheaper than broadcasting every layer to 3 channels.
    channels = [background * colour("background_rgb", k) + petal * colour("petal_rgb", k)
                + centre * colour("centre_rgb", k) + noise for k in range(3)]
    return np.clip(np.stack(channels, axis=-1) + 0.5, 0, 255).astype(np.uint8)


def _layer_weights(p: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 [n, size, size] weights of the background, petal and centre colours per pixel."""
    def per_image(key):
        return p[key][:, None, None]

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    dx = coords[None, None, :] - per_image("centre_x")
    dy = coords[None, :, None] - per_image("centre_y")
    radius = np.sqrt(dx * dx + dy * dy)
    outer, inner = per_image("outer_radius"), per_image("centre_radius")
    # |cos(n * a / 2)| has n lobes per turn; the square root rounds them into fat petals, and the
    # 0.8 * inner floor lets the gaps between petals reach the centre so the count stays visible.
    half_angle = 0.5 * per_image("count") * (np.arctan2(dy, dx) - per_image("rotation"))
    lobe = np.sqrt(np.abs(np.cos(half_angle)))
    petal_edge = 0.8 * inner + (outer - 0.8 * inner) * lobe
    # Signed distance in pixels, clipped, gives a one-pixel anti-aliased edge without supersampling.
    petal_alpha = np.clip((petal_edge - radius) * size + 0.5, 0.0, 1.0)
    centre_alpha = np.clip((inner - radius) * size + 0.5, 0.0, 1.0)
    # Mild shading (petal tips and gaps, the centre's rim, a vertical background gradient) for a
    # less flat look, kept weak so that every pixel stays nearest to its own palette colour.
    petal_shade = 1.0 - 0.08 * radius / outer - 0.05 * (1.0 - lobe)
    centre_shade = 1.0 - 0.15 * np.minimum(radius / inner, 1.0)
    background_shade = 1.0 + per_image("gradient") * (coords[None, :, None] - 0.5)
    return ((1.0 - petal_alpha) * (1.0 - centre_alpha) * background_shade,
            petal_alpha * (1.0 - centre_alpha) * petal_shade,
            centre_alpha * centre_shade)


def _pixel_noise(seeds: np.ndarray, size: int) -> np.ndarray:
    """float32 [n, size, size] grey-level noise in [-4, 4], seeded by the chunk's first image."""
    # One generator per chunk (not per image) is enough for determinism and keeps this cheap.
    rng = np.random.default_rng(int(seeds[0]))
    return rng.integers(-4, 5, size=(len(seeds), size, size), dtype=np.int8).astype(np.float32)


def _all_captions(attributes: np.ndarray,
                  rng: np.random.Generator) -> tuple[tuple[str, ...], ...]:
    """Per image up to CAPTIONS_PER_IMAGE distinct captions (in practice always that many)."""
    # Every random choice is drawn up front in one numpy call: 10x faster than per-word draws.
    draws = rng.integers(0, 1 << 30, size=(len(attributes), _DRAWS_PER_IMAGE, 11)).tolist()
    return tuple(_captions_for(_caption_words(row), image_draws)
                 for row, image_draws in zip(attributes.tolist(), draws))


def _caption_words(row: list[int]) -> tuple[tuple[str, ...], ...]:
    """The synonyms describing one image: (count, petal colour, centre colour, background) words."""
    petal, centre, count, background = row
    return (_COUNT_WORDS[_COUNTS[count]], _COLOUR_WORDS[COLOUR_NAMES[petal]],
            _COLOUR_WORDS[COLOUR_NAMES[centre]], _BACKGROUND_WORDS[BACKGROUND_NAMES[background]])


def _captions_for(words: tuple[tuple[str, ...], ...], draws: list[list[int]]) -> tuple[str, ...]:
    """The first CAPTIONS_PER_IMAGE distinct captions (ignoring case) among the drawn ones."""
    captions: list[str] = []
    seen: set[str] = set()
    for draw in draws:
        caption = _caption(words, draw)
        if caption.lower() not in seen:
            seen.add(caption.lower())
            captions.append(caption)
            if len(captions) == CAPTIONS_PER_IMAGE:
                break
    return tuple(captions)


def _caption(words: tuple[tuple[str, ...], ...], draw: list[int]) -> str:
    """One caption: the template, synonyms, background, ending and case chosen by `draw`."""
    count_words, petal_words, centre_words, background_words = words
    template = _pick(_TEMPLATES, draw[0])
    background = ""
    if draw[1] % 2:
        word = _pick(background_words, draw[2])
        background = _pick(_BACKGROUND_PHRASES, draw[3]).format(a=_with_article(word), w=word)
    else:
        template = template.replace(" {B}", "")
    count, petal, centre = (_pick(count_words, draw[4]), _pick(petal_words, draw[5]),
                            _pick(centre_words, draw[6]))
    text = template.format(
        N=count, aN=_with_article(count), P=petal, aP=_with_article(petal), C=centre,
        aC=_with_article(centre), pn=_pick(_PETAL_NOUNS, draw[7]), cn=_pick(_CENTRE_NOUNS, draw[8]),
        B=background)
    text += _pick(_ENDINGS, draw[9])
    # About a third in sentence case, so the text encoder meets both cases.
    return text[0].upper() + text[1:] if draw[10] % 3 == 0 else text


def _pick(options: tuple[str, ...], draw: int) -> str:
    """An element chosen by a large random integer (the modulo bias is below 1e-8)."""
    return options[draw % len(options)]


def _with_article(word: str) -> str:
    """The word after "a" or "an" (every word used here starts with a sounded letter)."""
    return ("an " if word[0] in "aeiou" else "a ") + word
