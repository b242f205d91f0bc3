"""Sentiment classifiers over token ids: bag of words, fixed window, and recurrent networks.

Every model takes int ids ``(batch, time)`` with 0 = padding on the right (as
:func:`apps.sentiment.data.make_dataset` yields them) and returns class probabilities
``(batch, num_classes)`` (softmax, float32). Appending padding never changes a prediction:

- ``bow`` counts tokens (padding excluded), so it is blind to order *exactly* — any permutation
  of the tokens gives bit-identical outputs;
- ``window`` reads only the first ``window`` tokens (padded with 0 when the text is shorter), so
  padding after them cannot matter; later tokens are ignored by design (the lecture's fixed-window
  network);
- recurrent models embed with ``mask_zero=True``, so masks flow through the recurrent layer and
  padded steps carry the state over unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from apps.common.cells import parse_cell_name, recurrent_layer
from apps.sentiment.config import POOLINGS

NON_RECURRENT = ("bow", "window")
# MUT1 and MUT2 add x_t itself to a units-wide pre-activation: their input must be units wide.
BARE_INPUT_KINDS = ("mut1", "mut2")


@keras.saving.register_keras_serializable(package="apps.sentiment")
class MeanBagOfWords(keras.layers.Layer):
    """Token frequencies of each text: counts of every id except padding, divided by the length.

    Order-blind by construction: counting is exact, so any permutation of the tokens (and any
    amount of appended padding) gives the same output bit for bit. Followed by a bias-free
    ``Dense(embed_dim)`` this is the masked mean of the texts' word embeddings.

    Args:
        vocab_size: number of ids (padding and ``[UNK]`` included).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int ids ``(batch, time)``, 0 = padding.

    Returns:
        float32 ``(batch, vocab_size)``; column 0 (padding) is always 0; a text of padding only
        gives a row of zeros.

    Example:
        >>> MeanBagOfWords(4)(np.array([[2, 3, 2, 0]]))  # -> [[0, 0, 2/3, 1/3]]
    """

    def __init__(self, vocab_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(
                f"vocab_size must be an integer >= 2. Received: vocab_size={vocab_size}"
            )
        self.vocab_size = vocab_size

    def call(self, inputs: Any) -> Any:
        ids = ops.cast(inputs, "int32")
        counts = ops.cast(ops.bincount(ids, minlength=self.vocab_size), "float32")
        not_pad = ops.cast(ops.arange(self.vocab_size) > 0, "float32")
        counts = counts[:, : self.vocab_size] * not_pad[None, :]
        length = ops.sum(counts, axis=1, keepdims=True)
        return counts / ops.maximum(length, 1.0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.vocab_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size}


@keras.saving.register_keras_serializable(package="apps.sentiment")
class FirstTokens(keras.layers.Layer):
    """The first ``window`` ids of each text, padded with 0 when the text is shorter.

    Args:
        window: number of ids kept.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int ids ``(batch, time)``.

    Returns:
        int32 ``(batch, window)``.

    Example:
        >>> FirstTokens(3)(np.array([[5, 6], [1, 2]]))  # -> [[5, 6, 0], [1, 2, 0]]
    """

    def __init__(self, window: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1. Received: window={window}")
        self.window = window

    def call(self, inputs: Any) -> Any:
        ids = ops.cast(inputs, "int32")
        pad = ops.zeros((ops.shape(ids)[0], self.window), dtype="int32")
        return ops.concatenate([ids, pad], axis=1)[:, : self.window]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.window)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "window": self.window}


@keras.saving.register_keras_serializable(package="apps.sentiment")
class MaskedMaxPooling(keras.layers.Layer):
    """Largest value of each feature over the unmasked time steps.

    Padding cannot change the result: masked steps are excluded (a sequence with no unmasked
    step gives zeros).

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float ``(batch, time, features)``.
        mask: optional boolean ``(batch, time)``; ``True`` = a real step.

    Returns:
        float ``(batch, features)``.

    Example:
        >>> MaskedMaxPooling()(np.array([[[1.0], [5.0], [9.0]]]), mask=np.array([[1, 1, 0]]))
        # -> [[5.0]]
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        lowest = ops.full_like(inputs, -3.0e38)
        pooled = ops.max(ops.where(keep, inputs, lowest), axis=1)
        any_step = ops.any(keep, axis=1)
        return ops.where(any_step, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def build_model(
    name: str,
    vocab_size: int,
    num_classes: int,
    *,
    embed_dim: int = 64,
    units: int = 64,
    max_len: int | None = None,
    dropout: float = 0.0,
    seed: int | None = None,
    window: int = 3,
    pooling: str = "last",
    embedding_dropout: float = 0.0,
) -> keras.Model:
    """A sentiment classifier (not compiled).

    Args:
        name: ``bow``, ``window``, or a recurrent cell name from :mod:`apps.common.cells`
            (``vanilla``, ``lstm``, ``gru``, ``mut1..3``, ``genotype:PATH.json``, and the
            ``bi`` variants such as ``bilstm``).
        vocab_size: number of token ids (padding and ``[UNK]`` included).
        num_classes: number of classes (>= 2).
        embed_dim: word-vector width. For ``mut1``/``mut2`` (input width must equal
            ``units``) a bias-free ``Dense(units)`` projects the embeddings when they differ.
        units: hidden size (per direction for ``bi`` models; hidden layer of ``window``).
        max_len: the longest input the model will see (fixes the input length when given;
            ``None`` accepts any length).
        dropout: dropout rate before the classifier.
        seed: seed of the weight initialisers and dropout of the layers made here.
        window: tokens read by the ``window`` model (its first ``window`` tokens).
        pooling: how a recurrent model summarises the text: ``"last"`` (the final state of
            each direction, the lecture's many-to-one) or ``"max"`` (the largest value of each
            output feature over the real, unpadded steps).
        embedding_dropout: recurrent models: rate of whole word vectors dropped during
            training (``SpatialDropout1D`` on the embeddings; masks pass through).

    Returns:
        ``keras.Model`` mapping int32 ids ``(batch, time)`` to probabilities
        ``(batch, num_classes)``.

    Raises:
        UsageError: an unknown model name (from :func:`apps.common.cells.parse_cell_name`).
        ValueError: a size or rate out of range.

    Example:
        >>> model = build_model("bilstm", vocab_size=1000, num_classes=3, units=8)
        >>> model(np.array([[5, 9, 2, 0, 0]])).shape
        TensorShape([1, 3])
    """
    checks = {
        "vocab_size": (vocab_size, 3),
        "num_classes": (num_classes, 2),
        "embed_dim": (embed_dim, 1),
        "units": (units, 1),
        "window": (window, 1),
    }
    for arg, (value, low) in checks.items():
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an integer >= {low}. Received: {arg}={value}")
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_len must be an integer >= 1 or None. Received: max_len={max_len}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    for arg, rate in (("dropout", dropout), ("embedding_dropout", embedding_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{arg} must be in [0, 1). Received: {arg}={rate}")
    kind = name.strip().lower() if isinstance(name, str) else name
    spec = None if kind in NON_RECURRENT else parse_cell_name(name, flag="--model")

    def glorot(offset: int) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=_seed(seed, offset))

    def embedding(width: int, mask_zero: bool) -> keras.layers.Embedding:
        return keras.layers.Embedding(
            vocab_size,
            width,
            mask_zero=mask_zero,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name="embedding",
        )

    ids = keras.Input(shape=(max_len,), dtype="int32", name="token_ids")
    if kind == "bow":
        x = MeanBagOfWords(vocab_size, name="bag_of_words")(ids)
        x = keras.layers.Dense(embed_dim, use_bias=False, kernel_initializer=glorot(1),
                               name="mean_embedding")(x)  # fmt: skip
    elif kind == "window":
        x = FirstTokens(window, name="first_tokens")(ids)
        x = embedding(embed_dim, mask_zero=False)(x)
        x = keras.layers.Flatten(name="window_vector")(x)
        x = keras.layers.Dense(units, activation="tanh", kernel_initializer=glorot(1),
                               name="hidden")(x)  # fmt: skip
    else:
        x = embedding(embed_dim, mask_zero=True)(ids)
        if embedding_dropout > 0:
            x = keras.layers.SpatialDropout1D(embedding_dropout, seed=_seed(seed, 5),
                                              name="embedding_dropout")(x)  # fmt: skip
        if spec.kind in BARE_INPUT_KINDS and embed_dim != units:
            x = keras.layers.Dense(units, use_bias=False, kernel_initializer=glorot(1),
                                   name="projection")(x)  # fmt: skip
        x = recurrent_layer(name, units, return_sequences=pooling == "max",
                            seed=_seed(seed, 2), name="recurrent")(x)  # fmt: skip
        if pooling == "max":
            x = MaskedMaxPooling(name="max_over_time")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, seed=_seed(seed, 3), name="dropout")(x)
    probs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=glorot(4),
                               dtype="float32", name="probabilities")(x)  # fmt: skip
    label = kind if spec is None else spec.name
    return keras.Model(ids, probs, name=f"sentiment_{_safe(label)}")


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)[:40]
