"""Character-level caption encoding that runs inside the TensorFlow graph.

Reference: Reed et al. 2016, section 3 (char-CNN-RNN text encoder over a fixed alphabet).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_t2i.config import REED_ALPHABET

PAD_ID = 0
UNKNOWN_ID = 1


class CaptionEncoder:
    """Maps caption strings to fixed-length character ids with plain TF ops.

    Captions are lower-cased (Unicode-aware), decoded to code points, looked up in a dense table
    (no lookup-table resources, so the ops export into a SavedModel as they are), then truncated or
    right-padded to `length`. Id 0 is padding, id 1 is any character outside the alphabet, and the
    alphabet's distinct characters take ids 2, 3, ... in order.

    Args:
        alphabet: the characters the encoder knows (Reed's 70-character alphabet by default).
        length: characters per encoded caption (Reed: 201).
    """

    def __init__(self, alphabet: str = REED_ALPHABET, length: int = 201):
        self.alphabet = "".join(dict.fromkeys(alphabet))
        self.length = length
        table_size = max(ord(c) for c in self.alphabet) + 2
        table = np.full([table_size], UNKNOWN_ID, dtype=np.int32)
        for i, char in enumerate(self.alphabet):
            table[ord(char)] = i + 2
        self._table = table

    @property
    def vocabulary_size(self) -> int:
        """Number of ids, padding and unknown included."""
        return len(self.alphabet) + 2

    def encode(self, captions) -> tf.Tensor:
        """Encodes captions.

        Args:
            captions: string tensor or list of strings, shape [N].

        Returns:
            int32 [N, length] ids; characters beyond `length` are dropped.
        """
        codepoints = self._codepoints(captions)
        table = tf.constant(self._table)
        out_of_table = tf.shape(table, out_type=tf.int32)[0] - 1
        ids = tf.gather(table, tf.minimum(codepoints, out_of_table))
        return ids.to_tensor(default_value=PAD_ID, shape=[None, self.length])

    def lengths(self, captions) -> tf.Tensor:
        """int32 [N] number of characters of each caption before truncation."""
        return tf.cast(self._codepoints(captions).row_lengths(), tf.int32)

    def decode(self, ids) -> list[str]:
        """Inverse of `encode` for known characters; unknown ones come back as '?'.

        Args:
            ids: int [N, length] array.
        """
        chars = np.array(["", "?"] + list(self.alphabet), dtype=object)
        return ["".join(chars[row]) for row in np.asarray(ids)]

    def _codepoints(self, captions) -> tf.RaggedTensor:
        captions = tf.strings.lower(tf.convert_to_tensor(captions, dtype=tf.string), encoding="utf-8")
        codepoints = tf.strings.unicode_decode(captions, "UTF-8", errors="replace")
        return tf.maximum(codepoints, 0)
