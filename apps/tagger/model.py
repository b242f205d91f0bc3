"""Many-to-many sequence taggers: word embeddings + a character encoder + a recurrent layer.

::

    word_ids (B, T) ──WordDropout──Embedding(mask_zero)──┐
                                                         concat ─ Dropout ─ RNN ─ Dropout ─ Dense ─ softmax
    char_ids (B, T, C) ──CharCNNEncoder────────────────────┘        (one tag distribution per token)

- The recurrent layer comes from :func:`apps.common.cells.recurrent_layer`: ``bilstm``
  (default), ``lstm`` (left to right only — the lecture's contrast), ``bigru``, ``mut1..3``,
  ``genotype:PATH`` and every ``bi`` variant, all with ``return_sequences=True``.
- The character encoder (Ma & Hovy 2016 style CNN with max-over-time pooling) gives words never
  seen in training a representation from their spelling: capitals, suffixes, digits.
- Padding never changes a tag: the word mask (``word_ids != 0``) flows from the embedding
  through the recurrent layer (padded steps keep the state, in both directions), and the
  character encoder zeroes padded characters, so a word's features do not depend on how wide
  the batch's character axis is.

No CRF: per-token softmax. For the unidirectional ``lstm`` this keeps the lecture's point
exact: the tag of token ``t`` is a function of tokens ``0..t`` only.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from apps.common.cells import parse_cell_name, recurrent_layer

BARE_INPUT_KINDS = ("mut1", "mut2")  # their input must be `units` wide


@keras.saving.register_keras_serializable(package="apps.tagger")
class CharCNNEncoder(keras.layers.Layer):
    """One vector per word from its characters: embedding, 1-D convolution, masked max pooling.

    ``h[b, t, j] = tanh(sum_k E_c[c[b, t, j + k - w//2]] @ W_conv[k] + b_conv)`` (zero
    vectors outside the word and for padding characters), then ``max_j h[b, t, j]`` over the
    word's real characters; a word with no characters (padding) gives zeros.

    Args:
        num_chars: character ids, padding (0) and unknown (1) included.
        char_dim: character embedding width.
        filters: output width (number of convolution filters).
        kernel_size: characters seen by each filter (odd).
        seed: seed of the initialisers.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int character ids ``(batch, time, chars)``, 0 = padding.

    Returns:
        float ``(batch, time, filters)``.

    Example:
        >>> enc = CharCNNEncoder(num_chars=50, char_dim=8, filters=16)
        >>> enc(np.ones((2, 5, 7), "int32")).shape
        (2, 5, 16)

    Reference:
        Ma & Hovy, "End-to-end Sequence Labeling via Bi-directional LSTM-CNNs-CRF", ACL 2016.
    """

    def __init__(
        self,
        num_chars: int,
        char_dim: int = 24,
        filters: int = 48,
        kernel_size: int = 3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for arg, value, low in (("num_chars", num_chars, 3), ("char_dim", char_dim, 1),
                                ("filters", filters, 1), ("kernel_size", kernel_size, 1)):  # fmt: skip
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}. Received: {arg}={value}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd. Received: kernel_size={kernel_size}")
        self.num_chars = num_chars
        self.char_dim = char_dim
        self.filters = filters
        self.kernel_size = kernel_size
        self.seed = seed

    def build(self, input_shape: tuple) -> None:
        self.E_c = self.add_weight(
            name="E_c",
            shape=(self.num_chars, self.char_dim),
            initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=self.seed),
        )
        self.W_conv = self.add_weight(
            name="W_conv",
            shape=(1, self.kernel_size, self.char_dim, self.filters),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
        )
        self.b_conv = self.add_weight(name="b_conv", shape=(self.filters,), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        ids = ops.cast(inputs, "int32")
        real = ops.cast(ops.expand_dims(ids > 0, -1), self.compute_dtype)  # (B, T, C, 1)
        x = ops.take(self.E_c, ids, axis=0) * real  # (B, T, C, d), padding chars = 0
        h = ops.tanh(ops.conv(x, self.W_conv, strides=1, padding="same") + self.b_conv)
        h = h * real + (real - 1.0) * 2.0  # padding positions -> -2 < tanh's range
        pooled = ops.max(h, axis=2)  # (B, T, F)
        has_chars = ops.max(real, axis=2)  # (B, T, 1)
        return pooled * has_chars

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Words with at least one character (the word mask: padding words have none).

        Keras' ``Concatenate`` combines its inputs' masks with *any*, so an unmasked character
        branch would switch the word mask off; this mask keeps it.
        """
        return ops.any(ops.cast(inputs, "int32") > 0, axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:2], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_chars": self.num_chars,
            "char_dim": self.char_dim,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="apps.tagger")
class WordDropout(keras.layers.Layer):
    """While training, replace each real word id by the unknown id with probability ``rate``.

    The model then learns to tag from spelling (characters) and context alone, as it must for
    words never seen in training. Padding (0) is never replaced; at inference the layer is the
    identity.

    Args:
        rate: replacement probability in ``[0, 1)``.
        unknown_id: the id that replaces words (1).
        seed: seed of the layer's ``SeedGenerator``.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int word ids ``(batch, time)``.
        training: whether to drop.

    Returns:
        int32 ids of the same shape.

    Example:
        >>> WordDropout(0.5)(np.array([[3, 4, 0]]), training=False)  # -> [[3, 4, 0]]
    """

    def __init__(self, rate: float, unknown_id: int = 1, seed: int | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1). Received: rate={rate}")
        self.rate = float(rate)
        self.unknown_id = int(unknown_id)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        ids = ops.cast(inputs, "int32")
        if not training or self.rate == 0.0:
            return ids
        drop = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        return ops.where(ops.logical_and(drop, ids > 0), self.unknown_id, ids)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "unknown_id": self.unknown_id,
                "seed": self.seed}  # fmt: skip


def _needs_units_wide_input(spec: Any) -> bool:
    """MUT1/MUT2, and genotypes with a bare ``x`` term, add ``x_t`` to a units-wide sum."""
    if spec.kind in BARE_INPUT_KINDS:
        return True
    if spec.kind == "genotype":
        from seqlayers import CellGenotype

        try:
            return bool(CellGenotype.load(spec.genotype_path).bare_x_nodes)
        except (ValueError, KeyError, TypeError):
            return False  # recurrent_layer reports the invalid file
    return False


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def build_model(
    name: str,
    num_words: int,
    num_chars: int,
    num_tags: int,
    *,
    word_dim: int = 64,
    char_dim: int = 24,
    char_filters: int = 48,
    char_kernel: int = 3,
    units: int = 64,
    layers: int = 1,
    dropout: float = 0.25,
    word_dropout: float = 0.05,
    seed: int | None = None,
) -> keras.Model:
    """A tagger (not compiled): ``{"word_ids", "char_ids"} -> tag probabilities (B, T, tags)``.

    Args:
        name: recurrent cell name (:func:`apps.common.cells.parse_cell_name`): ``bilstm``,
            ``lstm``, ``bigru``, ``gru``, ``mut1..3``, ``genotype:PATH.json``, ``bi`` variants.
        num_words: word ids (padding and unknown included).
        num_chars: character ids (padding and unknown included).
        num_tags: number of tags.
        word_dim: word embedding width.
        char_dim: character embedding width (0 turns the character encoder off).
        char_filters: character encoder output width.
        char_kernel: characters per convolution window (odd).
        units: recurrent units (per direction).
        layers: stacked recurrent layers (``recurrent``, ``recurrent_2``, …; dropout between).
        dropout: dropout before and after each recurrent layer.
        word_dropout: probability of replacing a word by ``[UNK]`` in training.
        seed: seed of the initialisers and dropout.

    Returns:
        The ``keras.Model``; output float32 softmax ``(batch, time, num_tags)`` carrying the word
        mask.

    Raises:
        UsageError: unknown model name.
        ValueError: sizes out of range.

    Example:
        >>> m = build_model("bilstm", 100, 30, 5, units=8, word_dim=8, char_dim=4, char_filters=8)
        >>> m({"word_ids": np.ones((2, 6), "int32"), "char_ids": np.ones((2, 6, 4), "int32")}).shape
        TensorShape([2, 6, 5])
    """
    for arg, value, low in (("num_words", num_words, 3), ("num_chars", num_chars, 3),
                            ("num_tags", num_tags, 1), ("word_dim", word_dim, 1),
                            ("char_dim", char_dim, 0), ("units", units, 1),
                            ("layers", layers, 1)):  # fmt: skip
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an integer >= {low}. Received: {arg}={value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    spec = parse_cell_name(name, flag="--model")
    words = keras.Input(shape=(None,), dtype="int32", name="word_ids")
    chars = keras.Input(shape=(None, None), dtype="int32", name="char_ids")
    w = WordDropout(word_dropout, seed=_seed(seed, 1), name="word_dropout")(words)
    x = keras.layers.Embedding(
        num_words,
        word_dim,
        mask_zero=True,
        embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed),
        name="word_embedding",
    )(w)
    if char_dim > 0:
        c = CharCNNEncoder(num_chars, char_dim, char_filters, char_kernel, seed=_seed(seed, 2),
                           name="char_encoder")(chars)  # fmt: skip
        x = keras.layers.Concatenate(name="word_and_chars")([x, c])
    if dropout > 0:
        x = keras.layers.Dropout(dropout, seed=_seed(seed, 3), name="input_dropout")(x)
    width = word_dim + (char_filters if char_dim > 0 else 0)
    for i in range(layers):  # layer 0 keeps the names of the one-layer tagger
        suffix = "" if i == 0 else f"_{i + 1}"
        if _needs_units_wide_input(spec) and width != units:
            x = keras.layers.Dense(units, use_bias=False, name="projection" + suffix,
                                   kernel_initializer=keras.initializers.GlorotUniform(
                                       seed=_seed(seed, 4 + 10 * i)))(x)  # fmt: skip
        x = recurrent_layer(name, units, return_sequences=True, seed=_seed(seed, 5 + 10 * i),
                            name="recurrent" + suffix)(x)  # fmt: skip
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=_seed(seed, 6 + 10 * i),
                                     name="output_dropout" + suffix)(x)  # fmt: skip
        width = units * (2 if spec.bidirectional else 1)
    probs = keras.layers.Dense(
        num_tags,
        activation="softmax",
        dtype="float32",
        kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 7)),
        name="tag_probabilities",
    )(x)
    label = "".join(ch if ch.isalnum() else "_" for ch in spec.name)[:40]
    return keras.Model([words, chars], probs, name=f"tagger_{label}")
