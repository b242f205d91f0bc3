"""The two music models and their one-step twins.

``build_model`` makes the sequence model used for training and evaluation:

- ``roll``: frames ``(B, T, 88)`` -> recurrent layer(s) -> ``Dense(88)`` logits, one independent
  sigmoid per key (Boulanger-Lewandowski et al. 2012, "Modeling temporal dependencies in
  high-dimensional sequences"; Chung et al. 2014, "Empirical evaluation of gated recurrent neural
  networks on sequence modeling");
- ``events``: tokens ``(B, T)`` -> ``Embedding`` -> recurrent layer(s) -> ``Dense(vocab)`` logits.

``build_step_model`` makes, from the *same layer objects* (so the same weights), the model
``(frame_or_token, state...) -> (logits, state...)`` that generation loops over and that the
exporter turns into a one-step TFLite model: generation carries the state instead of re-running
the prefix.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from apps.common.cells import parse_cell_name, recurrent_layer
from apps.music.notes import KEYS

BARE_INPUT_KINDS = ("mut1", "mut2")  # their update adds x_t itself: input width must be units


def _needs_units_wide_input(spec: Any) -> bool:
    """Whether the cell adds ``x_t`` itself (no weight) to a units-wide term: MUT1, MUT2 and
    genotypes with a bare ``x`` input; such inputs are first projected to ``units``."""
    if spec.kind in BARE_INPUT_KINDS:
        return True
    if spec.kind == "genotype":
        import seqlayers

        return bool(seqlayers.CellGenotype.load(spec.genotype_path).bare_x_nodes)
    return False


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def build_model(
    representation: str,
    cell: str,
    *,
    units: int,
    layers: int = 1,
    vocab_size: int | None = None,
    embedding_dim: int = 64,
    dropout: float = 0.0,
    seed: int | None = None,
) -> keras.Model:
    """A music model (not compiled).

    Args:
        representation: ``roll`` or ``events``.
        cell: ``vanilla``, ``lstm``, ``gru``, ``mut1..3`` or ``genotype:PATH.json``.
        units: hidden size of each recurrent layer.
        layers: stacked recurrent layers (named ``rnn_1``, ``rnn_2``, ...).
        vocab_size: event vocabulary size (``events`` only).
        embedding_dim: token-embedding width (``events`` only).
        dropout: dropout after each recurrent layer (training only).
        seed: seed of the initialisers and dropout.

    Returns:
        ``keras.Model``: ``roll`` maps float32 ``(B, T, 88)`` frames to ``(B, T, 88)`` logits;
        ``events`` maps int32 ``(B, T)`` tokens to ``(B, T, vocab_size)`` logits.

    Raises:
        UsageError: an unknown cell name. ValueError: a size out of range.

    Example:
        >>> model = build_model("roll", "gru", units=8)
        >>> model(np.zeros((2, 5, 88), "float32")).shape
        TensorShape([2, 5, 88])
    """
    if representation not in ("roll", "events"):
        raise ValueError(f"representation must be 'roll' or 'events'. Received: {representation!r}")
    for arg, value in (("units", units), ("layers", layers), ("embedding_dim", embedding_dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be an integer >= 1. Received: {arg}={value!r}")
    if representation == "events" and (not isinstance(vocab_size, int) or vocab_size < 3):
        raise ValueError(f"events need vocab_size >= 3. Received: vocab_size={vocab_size!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    spec = parse_cell_name(cell, flag="--cell", allow_bidirectional=False)

    def glorot(offset: int) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=_seed(seed, offset))

    if representation == "roll":
        inputs = keras.Input(shape=(None, KEYS), dtype="float32", name="frames")
        x, width = inputs, KEYS
        out_size = KEYS
    else:
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding",
                                   embeddings_initializer=keras.initializers.RandomUniform(
                                       -0.05, 0.05, seed=seed))(inputs)  # fmt: skip
        width, out_size = embedding_dim, vocab_size
    if _needs_units_wide_input(spec) and width != units:
        x = keras.layers.Dense(units, use_bias=False, kernel_initializer=glorot(1),
                               name="input_projection")(x)  # fmt: skip
    for i in range(1, layers + 1):
        x = recurrent_layer(spec.name, units, return_sequences=True, seed=_seed(seed, 10 + i),
                            name=f"rnn_{i}")(x)  # fmt: skip
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=_seed(seed, 20 + i), name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(out_size, kernel_initializer=glorot(2), dtype="float32",
                                name="logits")(x)  # fmt: skip
    label = "".join(c if c.isalnum() else "_" for c in spec.name)[:40]
    return keras.Model(inputs, logits, name=f"music_{representation}_{label}")


def compile_model(
    model: keras.Model, representation: str, *, learning_rate: float, grad_clip: float | None = None
) -> keras.Model:
    """Compile with Adam and the representation's loss, averaged over real (weight 1) steps.

    ``roll``: binary cross-entropy from logits, averaged over the 88 keys — so the loss is the
    negative log-likelihood per time step divided by 88 (keras' own loss, so ``model.keras``
    loads with nothing but ``import seqlayers``). ``events``: sparse categorical cross-entropy
    per token.
    """
    if representation == "roll":
        loss = keras.losses.BinaryCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )
    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=grad_clip)
    model.compile(optimizer=optimizer, loss=loss)
    return model


# ------------------------------------------------------------------------- one step
def recurrent_layers(model: keras.Model) -> list[Any]:
    """The model's recurrent layers in order (``rnn_1``, ``rnn_2``, ...)."""
    found = sorted((l for l in model.layers if l.name.startswith("rnn_")),
                   key=lambda l: int(l.name.split("_")[1]))  # fmt: skip
    if not found:
        raise ValueError(f"{model.name} has no recurrent layers named rnn_1, rnn_2, ...")
    return found


def state_sizes(model: keras.Model) -> list[int]:
    """Widths of the one-step model's states, layer by layer (an LSTM has two: h and c); an
    ensemble's members one after the other."""
    from apps.music.ensemble import ensemble_members

    members = ensemble_members(model)
    if members:
        return [size for member in members for size in state_sizes(member)]
    sizes = []
    for layer in recurrent_layers(model):
        size = layer.cell.state_size
        sizes += [int(s) for s in size] if isinstance(size, (list, tuple)) else [int(size)]
    return sizes


def representation_of(model: keras.Model) -> str:
    """``events`` when the model has an embedding, else ``roll``."""
    return "events" if any(l.name == "embedding" for l in model.layers) else "roll"


@keras.saving.register_keras_serializable(package="apps.music")
class RecurrentStep(keras.layers.Layer):
    """One step of a recurrent layer: ``(x_t, states) -> [output, *new_states]``.

    Wraps a sequence layer's own cell (same weights), so that the cells of stacked layers,
    which keras names alike (``gru_cell``), can sit in one functional step model, and so that
    the step model serializes (the exporter rebuilds models from their config).

    Args:
        layer: a recurrent layer (``keras.layers.GRU``/``LSTM``, a ``seqlayers`` layer), or its
            serialized config.
        **kwargs: base layer arguments (``name``).

    Call arguments:
        inputs: ``(B, input_dim)``.
        states: list of ``(B, size)`` tensors, sizes as ``layer.cell.state_size``.

    Returns:
        ``[output (B, units), *new_states]``.

    Example:
        >>> gru = keras.layers.GRU(4)
        >>> out, h = RecurrentStep(gru)(np.zeros((2, 3)), [np.zeros((2, 4))])
    """

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if not hasattr(layer, "cell"):
            raise ValueError(f"layer must be a recurrent layer with a cell. Received: {layer!r}")
        self.layer = layer

    def build(self, inputs_shape: tuple, states_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build((inputs_shape[0], None, inputs_shape[-1]))

    def call(self, inputs: Any, states: list[Any]) -> list[Any]:
        import seqlayers

        cell = self.layer.cell
        x = inputs
        if isinstance(self.layer, seqlayers.GenotypeRNN):  # its cell reads projected inputs
            x = cell.project_sequence(ops.expand_dims(x, 1))[:, 0]
        out, new_states = cell(x, list(states), training=False)
        if not isinstance(new_states, (list, tuple)):
            new_states = [new_states]
        return [out, *new_states]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}


def build_step_model(model: keras.Model) -> keras.Model:
    """The one-step twin of a music model, sharing its layers (and weights).

    Args:
        model: a model from :func:`build_model` (trained or loaded from ``model.keras``).

    Returns:
        ``keras.Model`` with inputs ``[frame (B, 88) float32 | token (B,) int32, state_1, ...]``
        and outputs ``[logits (B, 88 | vocab), new_state_1, ...]``; states start at zeros
        (widths: :func:`state_sizes`). Feeding a sequence step by step gives the sequence
        model's logits. An ensemble (:mod:`apps.music.ensemble`) gets its members' states
        side by side.
    """
    from apps.music.ensemble import build_ensemble_step, ensemble_members

    if ensemble_members(model):
        return build_ensemble_step(model)
    representation = representation_of(model)
    if representation == "roll":
        step_in = keras.Input(shape=(KEYS,), dtype="float32", name="frame")
        x = step_in
    else:
        step_in = keras.Input(shape=(), dtype="int32", name="token")
        x = model.get_layer("embedding")(step_in)
    names = {l.name for l in model.layers}
    if "input_projection" in names:
        x = model.get_layer("input_projection")(x)
    state_inputs, new_states = [], []
    for i, layer in enumerate(recurrent_layers(model), 1):
        size = layer.cell.state_size
        sizes = list(size) if isinstance(size, (list, tuple)) else [size]
        layer_states = [keras.Input(shape=(int(s),), dtype="float32", name=f"state_{i}_{j}")
                        for j, s in enumerate(sizes, 1)]  # fmt: skip
        state_inputs += layer_states
        x, *layer_new = RecurrentStep(layer, name=f"rnn_{i}_step")(x, layer_states)
        new_states += layer_new
    logits = model.get_layer("logits")(x)
    return keras.Model([step_in, *state_inputs], [logits, *new_states], name=f"{model.name}_step")
