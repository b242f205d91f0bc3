"""The character-level language model, its one-step twin, and the NumPy step function.

:func:`build_model` maps character ids ``(batch, time)`` to next-character logits ``(batch, time,
vocab)``: ``Embedding -> [recurrent layer (return_sequences) -> Dropout] x layers -> Dense``.
Trained with truncated BPTT it is ``stateful`` with a fixed batch (each row one contiguous
stream, see :mod:`apps.charlm.data`); the same weights also go into a stateless model of any
batch and length (evaluation, gradients) and into :func:`build_step_model`, the one-step model
``(token, state...) -> (logits, state...)`` that generation loops over (and that export turns into
a phone's one-step model), so sampling never re-runs the prefix.

Layer names are fixed (``embedding``, ``rnn_1`` … ``rnn_L``, ``logits``); weights move between
the variants by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from apps.common.cells import parse_cell_name, recurrent_layer

# MUT1 and MUT2 add x_t itself to a units-wide pre-activation: their input must be units wide.
BARE_INPUT_KINDS = ("mut1", "mut2")
LN2 = math.log(2.0)


@keras.saving.register_keras_serializable(package="apps.charlm")
def bits_per_char(y_true: Any, y_pred: Any) -> Any:
    """Cross-entropy in bits per character (``y_pred`` are logits): nats / ln 2."""
    nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return nats / LN2


def embedding_width(cell: str, units: int, embedding_dim: int) -> int:
    """The embedding width the model uses: ``units`` for MUT1/MUT2 (their input must be that
    wide), else ``embedding_dim``."""
    return units if parse_cell_name(cell).kind in BARE_INPUT_KINDS else embedding_dim


def rnn_layer_names(model: keras.Model) -> list[str]:
    """``rnn_1``, ``rnn_2``, … of a model built here, in order."""
    names = [layer.name for layer in model.layers if layer.name.startswith("rnn_")]
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def variant(layer: keras.layers.Layer, **changes: Any) -> keras.layers.Layer:
    """A fresh, unbuilt copy of ``layer`` with config ``changes`` (``stateful``, ``unroll``…)."""
    config = layer.get_config()
    config.update(changes)
    return type(layer).from_config(config)


def build_model(
    cell: str,
    vocab_size: int,
    *,
    units: int,
    layers: int = 1,
    embedding_dim: int = 32,
    dropout: float = 0.0,
    batch_size: int | None = None,
    seq_len: int | None = None,
    stateful: bool = False,
    seed: int | None = None,
) -> keras.Model:
    """The language model ``ids (batch, time) -> logits (batch, time, vocab)``.

    Args:
        cell: a one-way cell name (``lstm``, ``gru``, ``vanilla``, ``mut1..3``,
            ``genotype:PATH``), resolved by :func:`apps.common.cells.recurrent_layer`.
        vocab_size: number of character ids (the unknown id included).
        units: hidden size of every recurrent layer.
        layers: stacked recurrent layers.
        embedding_dim: embedding width (see :func:`embedding_width`).
        dropout: dropout rate between layers and before the output layer.
        batch_size: fixed batch size (required when ``stateful``).
        seq_len: fixed window length, or ``None``.
        stateful: carry each row's final state into the next batch (truncated BPTT).
        seed: seed of the dropout layers.

    Returns:
        An uncompiled ``keras.Model`` named ``charlm``.
    """
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2. Received: vocab_size={vocab_size}")
    if layers < 1:
        raise ValueError(f"layers must be >= 1. Received: layers={layers}")
    if stateful and batch_size is None:
        raise ValueError("a stateful model needs a fixed batch_size")
    ids = keras.Input(batch_shape=(batch_size, seq_len), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding_width(cell, units, embedding_dim),
                               name="embedding")(ids)  # fmt: skip
    for k in range(1, layers + 1):
        layer = recurrent_layer(cell, units, return_sequences=True, seed=seed, name=f"rnn_{k}")
        if stateful:
            layer = variant(layer, stateful=True)
        x = layer(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{k}")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name="charlm")


def copy_weights(source: keras.Model, target: keras.Model) -> keras.Model:
    """Copy the weights of every named layer of ``target`` from ``source``; returns ``target``."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return target


def stateless_copy(model: keras.Model, *, batch_size: int | None = None,
                   seq_len: int | None = None, stateful: bool = False) -> keras.Model:  # fmt: skip
    """The same network with another batch/length/statefulness, sharing no variables."""
    ids = keras.Input(batch_shape=(batch_size, seq_len), dtype="int32", name="ids")
    x = ids
    for layer in model.layers[1:]:
        changes: dict[str, Any] = {}
        if layer.name.startswith("rnn_"):
            changes = {"stateful": stateful}
        x = variant(layer, **changes)(x)
    return copy_weights(model, keras.Model(ids, x, name=model.name))


def reset_states(model: keras.Model) -> None:
    """Zero the carried state of every stateful recurrent layer of ``model``."""
    for name in rnn_layer_names(model):
        layer = model.get_layer(name)
        if getattr(layer, "stateful", False):
            layer.reset_state()


def state_sizes(model: keras.Model) -> list[list[int]]:
    """Per recurrent layer, the sizes of its states (LSTM: ``[h, c]``; others ``[h]``)."""
    out = []
    for name in rnn_layer_names(model):
        size = model.get_layer(name).cell.state_size
        out.append([int(s) for s in size] if isinstance(size, (list, tuple)) else [int(size)])
    return out


def build_step_model(model: keras.Model) -> keras.Model:
    """The one-step model ``(token, state...) -> (logits, state...)`` with ``model``'s weights.

    Inputs: ``token`` int32 ``(batch, 1)``, then ``state_<layer>_<k>`` float32 ``(batch, size)``
    for every state of every recurrent layer (LSTM: ``h`` then ``c``). Outputs: ``logits``
    ``(batch, vocab)``, then the new states in the same order. The recurrent layers are the
    trained ones with ``unroll=True`` over one step (no loop op), dropout left out.

    Example:
        >>> step = build_step_model(model)
        >>> logits, *states = step([np.array([[5]]), *initial_states(step, 1)])
    """
    token = keras.Input(shape=(1,), dtype="int32", name="token")
    state_inputs: list[Any] = []
    new_states: list[Any] = []
    x = variant(model.get_layer("embedding"))(token)
    for k, (name, sizes) in enumerate(zip(rnn_layer_names(model), state_sizes(model)), 1):
        ins = [keras.Input(shape=(s,), name=f"state_{k}_{j}") for j, s in enumerate(sizes)]
        layer = variant(model.get_layer(name), stateful=False, return_sequences=True,
                        return_state=True, unroll=True)  # fmt: skip
        x, *states = layer(x, initial_state=ins)
        state_inputs += ins
        new_states += states
    logits = variant(model.get_layer("logits"))(x)
    vocab = model.get_layer("logits").units
    logits = keras.layers.Reshape((vocab,), name="next_logits")(logits)
    step = keras.Model([token, *state_inputs], [logits, *new_states], name="charlm_step")
    return copy_weights(model, step)


def initial_states(step_model: keras.Model, batch_size: int) -> list[np.ndarray]:
    """Zero states for :func:`build_step_model`'s model."""
    return [np.zeros((batch_size, int(t.shape[-1])), np.float32) for t in step_model.inputs[1:]]


def make_step_fn(step_model: keras.Model):
    """The NumPy step function of :mod:`apps.common.decoding`: ``(tokens (B,), states) ->
    (logits (B, V), states)``, running ``step_model`` as one compiled graph per call."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(inputs: Sequence[Any]) -> Any:
        return step_model(list(inputs), training=False)

    def step_fn(
        tokens: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        tokens = np.asarray(tokens, dtype=np.int32).reshape(-1, 1)
        outs = run([tokens, *[np.asarray(s, dtype=np.float32) for s in states]])
        outs = [np.asarray(o) for o in outs]
        return outs[0], outs[1:]

    return step_fn


def compile_model(model: keras.Model, learning_rate: float, clipnorm: float | None) -> keras.Model:
    """Adam with global gradient-norm clipping; loss in nats, ``bits_per_char`` as metric."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[bits_per_char],
    )
    return model
