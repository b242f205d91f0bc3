"""Encoder–decoder translation models, and the encoder / one-step decoder models built from them.

Two models (``--model``), both reading source ids ``(batch, S)`` and teacher-forced decoder
inputs ``<s> y1 .. y_{n}`` ``(batch, T)`` (0 = padding on the right) and returning next-token
logits ``(batch, T, V)``:

- ``attention`` (Bahdanau, Cho & Bengio 2015): a bidirectional recurrent encoder gives one
  annotation ``h_j = [→h_j; ←h_j]`` per source token; the decoder state starts at
  ``s_0 = tanh(W_s [→h_S; ←h_1])`` and every step attends over all annotations
  (:class:`seqlayers.AttentionDecoderCell`); the logits are ``W_o [s_t; c_t] + b_o``.
- ``noattention`` (Cho et al. 2014; Sutskever et al. 2014): the same encoder, but the decoder
  sees only one fixed vector ``c = [→h_S; ←h_1]``, as its initial state and as an input at
  every step; the logits are ``W_o [s_t; c] + b_o``.

No ``tanh`` read-out layer before the logits: with Adam, such a layer saturated within a few
dozen steps on the 8k-word Tatoeba vocabulary (its units stuck at ±1, gradients ~1e-8, the model
frozen at the unigram distribution); logits straight from ``[s_t; c_t]`` train stably.

For inference the trained layers are re-wired into two models that share their weights:

- :func:`build_encoder_model`: source ids → the per-sentence constants (annotations, attention
  keys ``H U_a`` — computed ONCE per sentence —, source mask; or ``c``) and the decoder's
  initial states;
- :func:`build_step_model`: ``(token, states..., constants...) -> (logits, new states...,
  attention weights)``, one decoder step: the model that :mod:`apps.common.decoding` loops over
  and that export turns into a one-step TFLite model. ``precomputed_keys=False`` gives the naive
  step that recomputes ``H U_a`` at every step (for the speed benchmark only).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from apps.common.cells import make_cell, parse_cell_name, recurrent_layer

PACKAGE = "apps.translation"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddingMask(keras.layers.Layer):
    """``1.0`` where the id is not padding (0), else ``0.0``.

    Call arguments:
        inputs: int ids ``(batch, time)``.

    Returns:
        float32 ``(batch, time)``.

    Example:
        >>> PaddingMask()(np.array([[4, 5, 0]]))  # -> [[1., 1., 0.]]
    """

    def call(self, inputs: Any) -> Any:
        return ops.cast(ops.not_equal(inputs, 0), "float32")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RepeatOverTime(keras.layers.Layer):
    """Repeat a vector at every step of a sequence: ``(B, D), (B, T, *) -> (B, T, D)``.

    Call arguments:
        vector: ``(batch, dim)``.
        like: any ``(batch, time, ...)`` tensor giving the number of steps.

    Returns:
        ``(batch, time, dim)``.
    """

    def call(self, vector: Any, like: Any) -> Any:
        steps = ops.shape(like)[1]
        return ops.repeat(ops.expand_dims(vector, 1), steps, axis=1)

    def compute_output_shape(self, vector_shape: tuple, like_shape: tuple) -> tuple:
        return (vector_shape[0], like_shape[1], vector_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputProjectionCell(keras.layers.Layer):
    """A recurrent cell behind a bias-free linear map of its input: ``cell(x W_in, states)``.

    MUT1/MUT2 (and genotypes with a bare ``x`` term) add ``x_t`` itself to a ``units``-wide
    pre-activation, so their input must be ``units`` wide; a decoder's input (embedding plus
    context) is wider. This wrapper makes any cell usable there.

    Args:
        cell: the inner cell (object or serialized config).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: ``(batch, input_dim)``.
        states: the inner cell's states.
        training: forwarded to the inner cell.

    Returns:
        ``(output, new_states)`` of the inner cell.
    """

    def __init__(self, cell: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not hasattr(cell, "state_size"):
            raise ValueError(f"`cell` must be a recurrent cell. Received: cell={cell!r}")
        self.cell = cell
        sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
        self.units = int(sizes[0])

    @property
    def state_size(self) -> Any:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        return int(getattr(self.cell, "output_size", self.units))

    def build(self, input_shape: tuple) -> None:
        self.W_in = self.add_weight(name="W_in", shape=(int(input_shape[-1]), self.units),
                                    initializer="glorot_uniform")  # fmt: skip
        if not self.cell.built:
            self.cell.build((input_shape[0], self.units))

    def get_initial_state(self, batch_size: Any) -> list:
        if hasattr(self.cell, "get_initial_state"):
            states = self.cell.get_initial_state(batch_size)
            return list(states) if isinstance(states, (list, tuple)) else [states]
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, int(s)), dtype=self.compute_dtype) for s in sizes]

    def call(self, inputs: Any, states: Any, training: bool | None = None) -> tuple:
        return self.cell(ops.matmul(inputs, self.W_in), states, training=training)

    def get_config(self) -> dict:
        return {**super().get_config(), "cell": keras.saving.serialize_keras_object(self.cell)}

    @classmethod
    def from_config(cls, config: dict) -> InputProjectionCell:
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


class AttentionKeys(keras.layers.Layer):
    """``H U_a [+ b_a]`` with the weights of a trained ``AttentionDecoderCell`` (not saved:
    only used by :func:`build_encoder_model`, rebuilt from the trained model each time)."""

    def __init__(self, decoder_cell: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decoder_cell = decoder_cell
        self.supports_masking = True

    def call(self, values: Any) -> Any:
        return self.decoder_cell.precompute_keys(values)


def _needs_square_input(cell: Any) -> bool:
    """Whether a cell adds its bare input to a ``units``-wide term (MUT1/MUT2, some genotypes)."""
    kind = type(cell).__name__
    if kind in ("MUT1Cell", "MUT2Cell"):
        return True
    genotype = getattr(cell, "genotype", None)
    return bool(genotype is not None and getattr(genotype, "bare_x_nodes", None))


def state_sizes(cell: Any) -> list[int]:
    """The sizes of a cell's state tensors, as a list."""
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    return [int(s) for s in sizes]


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def build_model(
    kind: str,
    cell: str,
    source_vocab: int,
    target_vocab: int,
    *,
    embedding_dim: int = 64,
    units: int = 128,
    attention_units: int | None = None,
    dropout: float = 0.0,
    seed: int | None = None,
) -> keras.Model:
    """A teacher-forced encoder–decoder (not compiled).

    Args:
        kind: ``attention`` or ``noattention``.
        cell: a one-way cell name (``gru``, ``lstm``, ``vanilla``, ``mut1..3``,
            ``genotype:PATH.json``); the encoder uses its bidirectional version.
        source_vocab: source ids (reserved ids included).
        target_vocab: target ids.
        embedding_dim: token-vector width.
        units: encoder units per direction and decoder units.
        attention_units: attention scoring units (``None``: ``units``).
        dropout: dropout on the embeddings and on the decoder outputs before the logits.
        seed: seed of the initialisers and dropout of the layers made here.

    Returns:
        ``keras.Model`` ``[source_ids (B, S), target_in (B, T)] -> logits (B, T, V)``.

    Example:
        >>> model = build_model("attention", "gru", 30, 40, embedding_dim=8, units=8)
        >>> model([np.array([[5, 6, 0]]), np.array([[2, 7]])]).shape
        TensorShape([1, 2, 40])
    """
    import seqlayers

    if kind not in ("attention", "noattention"):
        raise ValueError(f"kind must be 'attention' or 'noattention'. Received: kind={kind!r}")
    for arg, value in (("source_vocab", source_vocab), ("target_vocab", target_vocab),
                       ("embedding_dim", embedding_dim), ("units", units)):  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer. Received: {arg}={value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    spec = parse_cell_name(cell, flag="--cell", allow_bidirectional=False)

    def glorot(offset: int) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=_seed(seed, offset))

    def uniform(offset: int) -> keras.initializers.Initializer:
        return keras.initializers.RandomUniform(-0.1, 0.1, seed=_seed(seed, offset))

    source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    source_mask = PaddingMask(name="source_mask")(source)
    x = keras.layers.Embedding(
        source_vocab,
        embedding_dim,
        mask_zero=True,
        embeddings_initializer=uniform(0),
        name="source_embedding",
    )(source)
    probe = make_cell(spec.name, units)
    if _needs_square_input(probe) and embedding_dim != units:
        x = keras.layers.Dense(units, use_bias=False, kernel_initializer=glorot(1),
                               name="source_projection")(x)  # fmt: skip
    if dropout:
        x = keras.layers.Dropout(dropout, seed=_seed(seed, 2), name="source_dropout")(x)
    encoder = recurrent_layer("bi" + spec.name, units, return_sequences=True, return_state=True,
                              seed=_seed(seed, 3), name="encoder")  # fmt: skip
    outs = encoder(x)
    values, states = outs[0], outs[1:]
    half = len(states) // 2
    summary = keras.layers.Concatenate(name="summary")([states[0], states[half]])

    inner = make_cell(spec.name, units, seed=_seed(seed, 4))
    if _needs_square_input(inner):
        inner = InputProjectionCell(inner, name="input_projection_cell")
    init_states = [
        keras.layers.Dense(size, activation="tanh", kernel_initializer=glorot(5 + i),
                           name=f"bridge_{i}")(summary)
        for i, size in enumerate(state_sizes(inner))
    ]  # fmt: skip
    y = keras.layers.Embedding(target_vocab, embedding_dim, embeddings_initializer=uniform(9),
                               name="target_embedding")(target_in)  # fmt: skip
    if dropout:
        y = keras.layers.Dropout(dropout, seed=_seed(seed, 10), name="target_dropout")(y)
    target_mask = PaddingMask(name="target_mask")(target_in)
    if kind == "attention":
        decoder_cell = seqlayers.AttentionDecoderCell(inner, attention_units=attention_units or units,
                                                      name="decoder_cell")  # fmt: skip
        decoder = seqlayers.AttentionDecoder(decoder_cell, name="decoder")
        outputs, _, _ = decoder(y, values, initial_state=init_states, mask=source_mask,
                                target_mask=target_mask)  # fmt: skip
    else:
        context = RepeatOverTime(name="repeat_context")(summary, y)
        decoder = keras.layers.RNN(inner, return_sequences=True, name="decoder")
        steps = decoder(keras.layers.Concatenate(name="decoder_inputs")([y, context]),
                        initial_state=init_states)  # fmt: skip
        outputs = keras.layers.Concatenate(name="decoder_outputs")([steps, context])
    if dropout:
        outputs = keras.layers.Dropout(dropout, seed=_seed(seed, 12), name="output_dropout")(
            outputs
        )
    logits = keras.layers.Dense(target_vocab, kernel_initializer=glorot(13), dtype="float32",
                                name="logits")(outputs)  # fmt: skip
    return keras.Model([source, target_in], logits, name=f"translation_{kind}")


def model_kind(model: keras.Model) -> str:
    """``attention`` or ``noattention``, read from a built model."""
    return "noattention" if model.name.endswith("noattention") else "attention"


def decoder_cell_of(model: keras.Model) -> Any:
    """The decoder's step cell: an ``AttentionDecoderCell`` or the plain inner cell."""
    return model.get_layer("decoder").cell


def _layer(model: keras.Model, name: str) -> Any:
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def build_encoder_model(model: keras.Model) -> keras.Model:
    """Source ids → per-sentence constants and initial decoder states (weights shared).

    Returns:
        For ``attention``: ``source_ids -> [values (B,S,2U), keys (B,S,A), source_mask (B,S),
        state_0, ...]``, the keys ``H U_a`` computed once per sentence. For ``noattention``:
        ``source_ids -> [context (B,2U), state_0, ...]``.
    """
    source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    x = model.get_layer("source_embedding")(source)
    projection = _layer(model, "source_projection")
    if projection is not None:
        x = projection(x)
    outs = model.get_layer("encoder")(x)
    values, states = outs[0], outs[1:]
    half = len(states) // 2
    summary = model.get_layer("summary")([states[0], states[half]])
    n_states = len(state_sizes(decoder_cell_of(model)))
    init = [model.get_layer(f"bridge_{i}")(summary) for i in range(n_states)]
    if model_kind(model) == "attention":
        keys = AttentionKeys(decoder_cell_of(model), name="attention_keys")(values)
        mask = model.get_layer("source_mask")(source)
        return keras.Model(source, [values, keys, mask, *init], name="encoder_step0")
    return keras.Model(source, [summary, *init], name="encoder_step0")


def build_step_model(model: keras.Model, *, precomputed_keys: bool = True) -> keras.Model:
    """One decoder step with the trained weights (see the module docstring).

    Args:
        model: a model from :func:`build_model` (trained or loaded).
        precomputed_keys: ``attention`` only: take the keys as an input (``True``) or recompute
            ``H U_a`` inside every step (``False``: the naive step, for benchmarks).

    Returns:
        ``attention``: ``[token (B,), state_0.., values, keys, source_mask] -> [logits (B,V),
        new_state_0.., weights (B,S)]`` (without ``keys`` when ``precomputed_keys=False``).
        ``noattention``: ``[token, state_0.., context] -> [logits, new_state_0..]``.
    """
    cell = decoder_cell_of(model)
    sizes = state_sizes(cell)
    token = keras.Input(shape=(), dtype="int32", name="token")
    states = [keras.Input(shape=(s,), name=f"state_{i}") for i, s in enumerate(sizes)]
    y = model.get_layer("target_embedding")(token)
    logits_layer = model.get_layer("logits")
    if model_kind(model) == "attention":
        enc_dim = int(cell.value_dim)
        att_units = int(cell.attention.units)
        values = keras.Input(shape=(None, enc_dim), name="values")
        mask = keras.Input(shape=(None,), name="source_mask")
        if precomputed_keys:
            keys = keras.Input(shape=(None, att_units), name="keys")
            output, new_states, weights = cell(y, states, values, keys=keys, mask=mask)
            inputs = [token, *states, values, keys, mask]
        else:
            output, new_states, weights = cell(y, states, values, mask=mask)
            inputs = [token, *states, values, mask]
        logits = logits_layer(output)
        return keras.Model(inputs, [logits, *new_states, weights], name="decoder_step")
    context = keras.Input(shape=(int(model.get_layer("summary").output.shape[-1]),), name="context")
    joined = keras.layers.Concatenate(name="step_inputs")([y, context])
    output, new_states = cell(joined, states)
    new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
    out = keras.layers.Concatenate(name="step_outputs")([output, context])
    logits = logits_layer(out)
    return keras.Model([token, *states, context], [logits, *new_states], name="decoder_step")
