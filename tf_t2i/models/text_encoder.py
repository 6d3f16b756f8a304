"""The char-CNN-RNN text encoder phi(t)."""
import keras

from tf_t2i.config import TEXT_SLOT_SOFTMAXES, TEXT_SLOT_VALUES
from tf_t2i.models import blocks

POOL_SIZE = 3


def slot_attention_weights(logits, caption, softmax="positions"):
    """Attention weights of text slots over a caption's positions.

    Args:
        logits: float32 [batch, slots, positions] query-key scores.
        caption: float32 [batch, positions], 1 at the caption's positions, 0 at padding.
        softmax: "positions" (each slot's softmax over the positions) or "slots" (Slot
            Attention's competition: each position's softmax over the slots, its shares then
            normalised over the positions, so that every slot averages the positions it won and
            slots that want the same positions must split them; Locatello et al. 2020, Eq. 1-2).

    Returns:
        float32 [batch, slots, positions]; every slot's weights sum to 1 over the caption's
        positions (0 for an all-padding row under "slots") and are 0 on padding.
    """
    caption = caption[:, None, :]
    if softmax == "slots":
        shares = keras.ops.softmax(logits, axis=1) * caption
        return shares / (keras.ops.sum(shares, axis=-1, keepdims=True) + 1e-8)
    # Padding gets -1e9 (not -inf: an all-padding row then attends evenly, not to NaN).
    return keras.ops.softmax(logits + (1.0 - caption) * -1e9, axis=-1)


@keras.saving.register_keras_serializable(package="tf_t2i")
class TextEncoder(keras.Model):
    """Reed's char-CNN-RNN: character ids to a caption embedding.

    Char embedding -> temporal convs (kernel 4, ReLU; max-pool 3 after all but the last) -> GRU ->
    mean of the GRU outputs over the caption's characters (-> BatchNorm, optionally) -> Dense ->
    scaled to norm sqrt(embedding_dim).

    With `slots` > 0 (not in Reed's design) the mean is replaced by `slots` learned queries, each
    attending over the GRU outputs of the caption's positions and reading a value of
    embedding_dim / slots from them; the embedding is the slots side by side, each scaled to norm
    sqrt(embedding_dim / slots). A slot can so hold one attribute together with the part it is
    bound to, which a generator reading the embedding as tokens (`Generator` with
    conditioning="attention" and text_tokens = slots) draws where that part is.

    With `value_source="local"` a slot reads its value not from the GRU outputs, which carry
    everything written before them (the petal colour is in the state at the centre colour),
    but from the first convolution's outputs max-pooled to the GRU's positions: a few words
    around the position. The keys still come from the GRU, so which words a slot reads depends
    on their context (their role), and what it reads does not: a caption pairing two colours
    that never met in training gives each slot a value it has seen.

    Captions must be right-padded with id 0. Padding is zeroed after every convolution and left out
    of the average, so a caption's embedding does not depend on how much padding follows it; the
    GRU gets no mask (a forward GRU never sees later steps), which keeps it cuDNN-compatible.
    An all-padding row embeds to the (scaled) Dense bias, or with the BatchNorm to the Dense of
    its output for a zero state.

    The output is rescaled to the sphere of radius sqrt(embedding_dim), so its components are of
    order 1 like the noise z it is concatenated with in G. The cosine matching loss that trains the
    encoder ignores the norm, so without this the norm drifts freely: it stayed near 0.01 in a
    default run, leaving G's text input negligible next to z.

    Args:
        vocabulary_size: number of ids, padding (0) and unknown (1) included.
        sequence_length: characters per caption the model is built for (Reed: 201).
        char_embedding_dim: size of the learned character embedding.
        conv_filters: widths of the temporal convolutions (Reed: 384, 512, 512).
        rnn_units: GRU units.
        embedding_dim: output size (Reed: 1024).
        use_cudnn: the GRU's cuDNN choice ("auto", True or False). False keeps the GRU
            XLA-compilable: XLA and cuDNN RNN kernels do not mix (keras-team/keras#18456).
        state_batch_norm: BatchNorm on the mean GRU state before the projection (not in Reed's
            design). Without it the captions' embeddings start nearly equal (mean cosine 0.996
            in the default preset), and the matching loss stays on its plateau for 50 to 250
            steps, by the seed (docs/BENCHMARKS.md, session 7).
        sync_batch_norm: that BatchNorm's statistics over the global batch of all replicas.
        slots: 0 (Reed: the mean of the GRU outputs) or the number of attention slots (see
            above; must divide embedding_dim; `state_batch_norm` then normalises the GRU outputs).
        value_source: what the slots read, "states" (the GRU outputs) or "local" (the first
            convolution's outputs; see above). Used only with `slots`.
        slot_softmax: how the slots attend (`slot_attention_weights`): "positions" (each slot
            on its own) or "slots" (the slots compete for the positions, so they read different
            words instead of all reading the most telling one). Used only with `slots`.

    Call args:
        inputs: int32 [batch, sequence_length] character ids, 0 = padding.
        training: BatchNorm mode (with `state_batch_norm`; no other layer uses it).

    Returns:
        float32 [batch, embedding_dim].

    Reference: Reed et al. 2016, section 3.2 (char-CNN-RNN of Reed, Akata, Lee and Schiele 2016).
    """

    def __init__(self, vocabulary_size, sequence_length=201, char_embedding_dim=64,
                 conv_filters=(384, 512, 512), rnn_units=512, embedding_dim=1024, use_cudnn="auto",
                 state_batch_norm=False, sync_batch_norm=False, slots=0, value_source="states",
                 slot_softmax="positions", **kwargs):
        super().__init__(**kwargs)
        if vocabulary_size < 3:
            raise ValueError(f"TextEncoder vocabulary_size must count padding, unknown and at "
                             f"least one character (>= 3), got {vocabulary_size}.")
        if not conv_filters:
            raise ValueError("TextEncoder conv_filters must name at least one convolution width.")
        if sequence_length // POOL_SIZE ** (len(conv_filters) - 1) < 1:
            raise ValueError(f"TextEncoder sequence_length={sequence_length} is too short for "
                             f"{len(conv_filters)} convolutions with max-pooling by {POOL_SIZE}: "
                             "lengthen captions or use fewer conv_filters.")
        if slots < 0 or (slots and embedding_dim % slots):
            raise ValueError(f"TextEncoder slots ({slots}) must be 0 or divide embedding_dim "
                             f"({embedding_dim}).")
        if value_source not in TEXT_SLOT_VALUES:
            raise ValueError(f"TextEncoder value_source must be one of {TEXT_SLOT_VALUES}, got "
                             f"{value_source!r}.")
        if slot_softmax not in TEXT_SLOT_SOFTMAXES:
            raise ValueError(f"TextEncoder slot_softmax must be one of {TEXT_SLOT_SOFTMAXES}, "
                             f"got {slot_softmax!r}.")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.char_embedding_dim = char_embedding_dim
        self.conv_filters = tuple(conv_filters)
        self.rnn_units = rnn_units
        self.embedding_dim = embedding_dim
        self.use_cudnn = use_cudnn
        self.state_batch_norm = state_batch_norm
        self.sync_batch_norm = sync_batch_norm
        self.slots = slots
        self.value_source = value_source
        self.slot_softmax = slot_softmax

        self.char_embedding = keras.layers.Embedding(
            vocabulary_size, char_embedding_dim, embeddings_initializer=blocks.weight_init())
        # Named attributes, not a list: tf.train.Checkpoint skips layers held in Python lists.
        for index, filters in enumerate(self.conv_filters):
            setattr(self, f"temporal_conv_{index}", keras.layers.Conv1D(
                filters, 4, padding="same", activation="relu",
                kernel_initializer=blocks.weight_init()))
        self.pool = keras.layers.MaxPooling1D(POOL_SIZE)
        self.rnn = keras.layers.GRU(rnn_units, return_sequences=True, use_cudnn=use_cudnn)
        self.state_norm = (blocks.batch_norm(sync_batch_norm, name="state_norm")
                           if state_batch_norm else None)
        if slots:
            self.slot_queries = self.add_weight(name="slot_queries", shape=(slots, rnn_units),
                                                initializer=blocks.weight_init())
            self.slot_keys = blocks.dense(rnn_units, use_bias=False, name="slot_keys")
            self.slot_values = blocks.dense(embedding_dim // slots, dtype="float32",
                                            name="slot_values")
            # The GRU's positions are the characters max-pooled by POOL_SIZE after every
            # convolution but the last; a window of that size maps the first one's onto them.
            self.local_pool = (keras.layers.MaxPooling1D(POOL_SIZE ** (len(self.conv_filters) - 1))
                               if value_source == "local" and len(self.conv_filters) > 1 else None)
        else:
            self.projection = blocks.dense(embedding_dim, dtype="float32")

    def call(self, inputs, training=None):
        mask = keras.ops.cast(keras.ops.not_equal(inputs, 0), self.compute_dtype)[..., None]
        x = self.char_embedding(inputs) * mask
        local = None
        for index in range(len(self.conv_filters)):
            x = getattr(self, f"temporal_conv_{index}")(x) * mask
            if index == 0 and self.slots and self.value_source == "local":
                local = x if self.local_pool is None else self.local_pool(x)
            if index < len(self.conv_filters) - 1:
                # ReLU outputs are >= 0, so zeroed padding never wins a max-pool window.
                x = self.pool(x)
                mask = self.pool(mask)
        states = self.rnn(x)
        if self.slots:
            return self._slot_embedding(states, local, mask, training)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        mean_state = keras.ops.sum(states * keras.ops.cast(mask, states.dtype), axis=1)
        mean_state = mean_state / keras.ops.cast(count, states.dtype)
        if self.state_norm is not None:
            mean_state = self.state_norm(mean_state, training=training)
        embedding = self.projection(mean_state)
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(embedding), axis=-1, keepdims=True))
        return embedding * (self.embedding_dim ** 0.5 / keras.ops.maximum(norm, 1e-12))

    def _slot_embedding(self, states, local, mask, training):
        """float32 [batch, embedding_dim]: each slot's query attends over the caption's positions
        (`mask` [batch, positions, 1], 1 = caption) by the keys of `states` [batch, positions,
        units] and reads `local` [batch, positions, features], or the (normalised) states
        themselves where `local` is None."""
        if self.state_norm is not None:
            states = self.state_norm(states, training=training)
        values = states if local is None else local
        keys = self.slot_keys(states)
        logits = keras.ops.einsum("su,bpu->bsp", keras.ops.cast(self.slot_queries, keys.dtype),
                                  keys)
        logits = keras.ops.cast(logits, "float32") / self.rnn_units ** 0.5
        weights = slot_attention_weights(logits, keras.ops.cast(mask[..., 0], "float32"),
                                         self.slot_softmax)
        slots = keras.ops.einsum("bsp,bpv->bsv", weights,
                                 self.slot_values(keras.ops.cast(values, "float32")))
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(slots), axis=-1, keepdims=True))
        slots = slots * ((self.embedding_dim // self.slots) ** 0.5
                         / keras.ops.maximum(norm, 1e-12))
        return keras.ops.reshape(slots, (-1, self.embedding_dim))

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, sequence_length=self.sequence_length,
                      char_embedding_dim=self.char_embedding_dim, conv_filters=self.conv_filters,
                      rnn_units=self.rnn_units, embedding_dim=self.embedding_dim,
                      use_cudnn=self.use_cudnn, state_batch_norm=self.state_batch_norm,
                      sync_batch_norm=self.sync_batch_norm, slots=self.slots,
                      value_source=self.value_source, slot_softmax=self.slot_softmax)
        return config
