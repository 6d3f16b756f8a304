"""A perfect text encoder for the built-in synthetic dataset, to tell G's failures from phi's.

A caption of the synthetic dataset names its petal colour, centre colour and petal count through
the templates and synonym tables that wrote it, so those templates read the roles back exactly:
"a red flower with a blue centre" is (petal red, centre blue), never the reverse. `OracleText`
turns that reading into a factorised code of the text encoder's width. A GAN trained on the code
instead of the learned embedding (`benchmarks/oracle_text.py`) shows how well the generator and
discriminator compose unseen colour pairs when the text is known perfectly, which bounds what any
text encoder can bring them to.
"""
from __future__ import annotations

import re

import numpy as np

from tf_t2i.data import synthetic
from tf_t2i.errors import UserInputError

#: The code's blocks: one-hot petal colour, centre colour, petal count and background, each at the
#: start of its quarter of the embedding, so that a generator reading the embedding as four
#: tokens (`model.text_tokens=4`) gets one attribute per token.
_BLOCKS = (len(synthetic.COLOUR_NAMES), len(synthetic.COLOUR_NAMES), len(synthetic.COUNT_NAMES),
           len(synthetic.BACKGROUND_NAMES))
#: The narrowest embedding that holds the code.
CODE_DIM = len(_BLOCKS) * max(_BLOCKS)
UNNAMED = -1


def _alternation(words) -> str:
    # Longest first, so that "deep blue" is not read as "blue" with "deep" left over.
    return "(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + ")"


def _article_pattern(pattern: str) -> str:
    return f"(?:an? {pattern})"


class OracleText:
    """Caption strings of the synthetic dataset to their attributes and to a code [N, E].

    Args:
        embedding_dim: E, the width of the text embedding the code stands in for (>= CODE_DIM).

    The code of a caption is a one-hot block per attribute it names (petal colour, centre colour,
    petal count and background, at offsets 0, E // 4, 2 * (E // 4) and 3 * (E // 4); an unnamed
    attribute's block stays zero), scaled to the norm sqrt(E) of the `TextEncoder`'s output
    when all four are named.
    """

    def __init__(self, embedding_dim: int):
        if embedding_dim < CODE_DIM:
            raise UserInputError(f"the oracle text code needs model.embedding_dim >= {CODE_DIM}, "
                                 f"got {embedding_dim}.")
        self.embedding_dim = embedding_dim
        self._backgrounds = _background_phrases()
        fields = _fields(self._backgrounds)
        self._templates = [_template_regex(t, fields) for t in _template_variants()]

    def attributes(self, caption: str) -> tuple[int, int, int, int]:
        """(petal colour, centre colour, petal count, background) indices of `caption` (the
        columns of `Split.attributes`), UNNAMED where it names none.

        Raises:
            UserInputError: for a caption no template of the synthetic dataset wrote.
        """
        text = caption.lower().strip()
        text = re.sub(r"\s*\.$", "", text)
        for regex in self._templates:
            match = regex.fullmatch(text)
            if match:
                return (self._index(match, "P", synthetic._COLOUR_WORDS, synthetic.COLOUR_NAMES),
                        self._index(match, "C", synthetic._COLOUR_WORDS, synthetic.COLOUR_NAMES),
                        self._count(match), self._background(match))
        raise UserInputError(f"the oracle text reads only captions of the built-in synthetic "
                             f"dataset; no template wrote {caption!r}.")

    def codes(self, captions) -> np.ndarray:
        """float32 [N, E]: the code of each caption string (see the class docstring)."""
        code = np.zeros([len(captions), self.embedding_dim], np.float32)
        for row, caption in enumerate(captions):
            for block, value in enumerate(self.attributes(caption)):
                if value != UNNAMED:
                    code[row, block * (self.embedding_dim // len(_BLOCKS)) + value] = 1.0
        return code * np.float32(np.sqrt(self.embedding_dim / len(_BLOCKS)))

    @staticmethod
    def _index(match, group, synonyms, names) -> int:
        word = match.groupdict().get(group)
        if word is None:
            return UNNAMED
        return next(i for i, name in enumerate(names) if word in synonyms[name])

    @staticmethod
    def _count(match) -> int:
        word = match.groupdict().get("N")
        if word is None:
            return UNNAMED
        return next(i for i, count in enumerate(synthetic._COUNTS)
                    if word in synthetic._COUNT_WORDS[count])

    def _background(self, match) -> int:
        phrase = match.groupdict().get("B")
        return UNNAMED if phrase is None else self._backgrounds[phrase]


def _fields(background_phrases) -> dict[str, str]:
    """Each template placeholder's regex: colours, counts and roles as named groups."""
    colours = _alternation(w for ws in synthetic._COLOUR_WORDS.values() for w in ws)
    counts = _alternation(w for ws in synthetic._COUNT_WORDS.values() for w in ws)
    return {
        "N": f"(?P<N>{counts})", "aN": _article_pattern(f"(?P<N>{counts})"),
        "P": f"(?P<P>{colours})", "aP": _article_pattern(f"(?P<P>{colours})"),
        "C": f"(?P<C>{colours})", "aC": _article_pattern(f"(?P<C>{colours})"),
        "pn": _alternation(synthetic._PETAL_NOUNS), "cn": _alternation(synthetic._CENTRE_NOUNS),
        "B": f"(?P<B>{_alternation(background_phrases)})",
    }


def _template_regex(template: str, fields: dict[str, str]) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    pattern = "".join(fields[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(pattern)


def _background_phrases() -> dict[str, int]:
    """Every background phrase a caption can hold -> the background's index."""
    return {phrase.format(a=synthetic._with_article(word), w=word): index
            for index, name in enumerate(synthetic.BACKGROUND_NAMES)
            for word in synthetic._BACKGROUND_WORDS[name]
            for phrase in synthetic._BACKGROUND_PHRASES}


def _template_variants() -> list[str]:
    """Every template with and without its background phrase, as `synthetic._caption` uses them."""
    variants = []
    for template in synthetic._TEMPLATES:
        variants.append(template)
        if " {B}" in template:
            variants.append(template.replace(" {B}", ""))
    return variants
