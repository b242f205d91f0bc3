"""``GenotypeCell``: a keras RNN cell that runs any valid ``CellGenotype``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from seqlayers.genotype import CellGenotype, NodeInput
from seqlayers.genotype_presets import PRESETS, get_preset

_ACTIVATIONS = {
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
    "identity": lambda v: v,
}


def _combine(kind: str, terms: list[Any]) -> Any:
    if kind == "blend":
        a, b, g = terms
        return g * a + (1.0 - g) * b
    out = terms[0]
    for t in terms[1:]:
        out = out + t if kind == "add" else out * t
    return out


def _as_genotype(genotype: CellGenotype | Mapping[str, Any] | str) -> CellGenotype:
    if isinstance(genotype, CellGenotype):
        return genotype
    if isinstance(genotype, str):
        return get_preset(genotype)
    if isinstance(genotype, Mapping):
        return CellGenotype.from_dict(genotype)
    raise TypeError(
        "genotype must be a CellGenotype, its dict, or a preset name "
        f"({', '.join(PRESETS)}). Received: genotype={genotype!r}"
    )


@keras.saving.register_keras_serializable(package="seqlayers")
class GenotypeCell(keras.layers.Layer):
    """A recurrent cell whose step is the computation graph of a ``CellGenotype``.

    Each node computes ``activation(combine(terms) + b_node)``, a term being a source
    (``x``, ``h``, ``c`` or a node) bare or through ``W_<source>_<node>`` of shape
    ``(fan_in, units)``; ``blend(a, b, g) = g * a + (1 - g) * b``. The new ``h`` (the output)
    is node ``h_out``, the new ``c`` node ``c_out``. ``genotype.equations()`` prints the step.
    All linear maps reading the same source run as one fused matmul.

    Args:
        units: width of ``h`` (and ``c``), positive int.
        genotype: a ``CellGenotype``, its ``to_dict()``, or a preset name
            (``vanilla``, ``lstm``, ``gru``, ``mut1``, ``mut2``, ``mut3``).
        kernel_initializer: initializer of the maps on ``x``.
        recurrent_initializer: initializer of the maps on ``h``, ``c`` and nodes.
        bias_initializer: initializer of the biases.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional regularizers.
        **kwargs: base ``Layer`` arguments.

    Call arguments:
        inputs: ``(batch, input_dim)`` step input; ``input_dim == units`` when a node reads a
            bare ``x``.
        states: ``[h]`` or ``[h, c]``, each ``(batch, units)``.
        training: unused (kept for the cell contract).

    Returns:
        ``(h_new, [h_new])`` or ``(h_new, [h_new, c_new])``.

    Example:

    >>> layer = keras.layers.RNN(GenotypeCell(16, "mut1"), return_sequences=True)
    >>> layer(np.zeros((2, 5, 16), "float32")).shape
    (2, 5, 16)

    Reference:
        Zoph & Le, ICLR 2017; Jozefowicz, Zaremba & Sutskever, ICML 2015.
    """

    def __init__(
        self,
        units: int,
        genotype: CellGenotype | Mapping[str, Any] | str,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        self.units = units
        self.genotype = _as_genotype(genotype).validate()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.uses_c = self.genotype.uses_c
        self.state_size = [units, units] if self.uses_c else [units]
        self.output_size = units
        self._order = self.genotype.topological_order()
        # source -> names of the nodes reading it through a linear map (one fused matmul each)
        consumers: dict[str, list[str]] = {}
        for node in self.genotype.nodes:
            for term in node.inputs:
                if term.linear:
                    consumers.setdefault(term.source, []).append(node.name)
        self._consumers = consumers

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        input_dim = int(input_shape[-1])
        specs = self.genotype.weight_specs(input_dim, self.units)  # checks bare-x widths
        init = {
            "kernel": (self.kernel_initializer, self.kernel_regularizer),
            "recurrent": (self.recurrent_initializer, self.recurrent_regularizer),
            "bias": (self.bias_initializer, self.bias_regularizer),
        }
        variables = {}
        for spec in specs:
            initializer, regularizer = init[spec.kind]
            variables[spec.name] = self.add_weight(
                name=spec.name,
                shape=spec.shape,
                initializer=initializer,
                regularizer=regularizer,
            )
        self._variables_by_name = variables
        self.built = True

    def get_weight(self, name: str) -> keras.Variable:
        """The weight called ``name`` (``W_<source>_<node>`` or ``b_<node>``)."""
        if name not in self._variables_by_name:
            raise ValueError(f"no weight '{name}' (weights: {', '.join(self._variables_by_name)})")
        return self._variables_by_name[name]

    def _project(self, source: str, value: Any, projected: dict[tuple[str, str], Any]) -> None:
        """``value @ W_<source>_<node>`` for every node reading ``source`` linearly, fused."""
        nodes = self._consumers.get(source)
        if not nodes:
            return
        kernels = [self._variables_by_name[f"W_{source}_{n}"] for n in nodes]
        if len(kernels) == 1:
            projected[(source, nodes[0])] = ops.matmul(value, kernels[0])
            return
        fused = ops.matmul(value, ops.concatenate(kernels, axis=-1))
        for n, part in zip(nodes, ops.split(fused, len(nodes), axis=-1)):
            projected[(source, n)] = part

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple[Any, list[Any]]:
        projected: dict[tuple[str, str], Any] = {}
        self._project("x", inputs, projected)
        return self._run_graph(inputs, projected, states)

    def _run_graph(
        self, x: Any, projected: dict[tuple[str, str], Any], states: Any
    ) -> tuple[Any, list[Any]]:
        """The step given ``x`` and its projections ``projected[("x", node)]``."""
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        values = {"x": x, "h": states[0]}
        self._project("h", values["h"], projected)
        if self.uses_c:
            values["c"] = states[1]
            self._project("c", values["c"], projected)
        for node in self._order:
            terms = [self._term(node.name, t, values, projected) for t in node.inputs]
            pre = _combine(node.combine, terms)
            if node.bias:
                pre = pre + self._variables_by_name[f"b_{node.name}"]
            values[node.name] = _ACTIVATIONS[node.activation](pre)
            self._project(node.name, values[node.name], projected)
        h = values[self.genotype.h_out]
        if self.uses_c:
            return h, [h, values[self.genotype.c_out]]
        return h, [h]

    def project_sequence(self, sequences: Any) -> Any:
        """Every ``x`` term of a whole sequence at once: ``(B, T, D) -> (B, T, P)``.

        ``P`` is ``units`` per node reading ``x`` linearly (one fused matmul), then the ``D``
        columns of ``x`` itself when some node reads a bare ``x``.
        """
        parts = []
        nodes = self._consumers.get("x", [])
        if nodes:
            kernels = [self._variables_by_name[f"W_x_{n}"] for n in nodes]
            kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, axis=-1)
            parts.append(ops.matmul(sequences, kernel))
        if self.genotype.bare_x_nodes:
            parts.append(sequences)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    @staticmethod
    def _term(node: str, term: NodeInput, values: dict, projected: dict) -> Any:
        return projected[(term.source, node)] if term.linear else values[term.source]

    def get_initial_state(self, batch_size: int | None = None) -> list[Any]:
        return [
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in self.state_size
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "genotype": self.genotype.to_dict(),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            }
        )
        return config


class _ProjectedInputsCell(GenotypeCell):
    """``GenotypeCell`` whose step input is one step of ``project_sequence`` (for GenotypeRNN)."""

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple[Any, list[Any]]:
        nodes = self._consumers.get("x", [])
        width = len(nodes) * self.units
        projected: dict[tuple[str, str], Any] = {}
        if nodes:
            x_terms = inputs[:, :width]
            parts = ops.split(x_terms, len(nodes), axis=-1) if len(nodes) > 1 else [x_terms]
            projected = {("x", n): part for n, part in zip(nodes, parts)}
        x = inputs[:, width:] if self.genotype.bare_x_nodes else None
        return self._run_graph(x, projected, states)


@keras.saving.register_keras_serializable(package="seqlayers")
class GenotypeRNN(keras.layers.RNN):
    """Fast recurrent layer over a ``CellGenotype``: all ``x`` terms in one matmul up front.

    Equals ``keras.layers.RNN(GenotypeCell(units, genotype))`` for the same weights (same weight
    names), but computes ``x_t @ [W_x_<node> ...]`` for every step in a single product before
    the recurrence, so each step only runs the ``h``/``c``/node terms. Masks, ``go_backwards``,
    ``stateful``, ``unroll``, ``Bidirectional`` behave as in ``keras.layers.RNN``.

    Args:
        units, genotype, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer: as in ``GenotypeCell``.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as in ``keras.layers.RNN``.
        **kwargs: base ``Layer`` arguments.

    Call arguments:
        sequences: ``(batch, timesteps, input_dim)``.
        initial_state: optional list ``[h]`` or ``[h, c]``.
        mask: optional boolean ``(batch, timesteps)``.
        training: passed to the cell.

    Returns:
        ``(batch, units)`` or ``(batch, timesteps, units)``, then the last states with
        ``return_state``.

    Example:

    >>> GenotypeRNN(8, "lstm", return_sequences=True)(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 8)
    """

    def __init__(
        self,
        units: int,
        genotype: CellGenotype | Mapping[str, Any] | str,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        cell = _ProjectedInputsCell(
            units,
            genotype,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="genotype_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def genotype(self) -> CellGenotype:
        return self.cell.genotype

    def build(self, sequences_shape: tuple, initial_state_shape: Any = None) -> None:
        if not self.cell.built:  # weights follow the raw input width, not the projected one
            self.cell.build((sequences_shape[0], sequences_shape[-1]))
        super().build(sequences_shape, initial_state_shape)

    def call(
        self, sequences: Any, initial_state: Any = None, mask: Any = None, training: bool = False
    ) -> Any:
        return super().call(
            self.cell.project_sequence(sequences),
            initial_state=initial_state,
            mask=mask,
            training=training,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> GenotypeRNN:
        return cls(**config)


# keras kernel column blocks -> the preset node each block feeds, and the node reading h
_KERAS_BLOCKS = {
    "lstm": (("i", "h"), ("f", "h"), ("g", "h"), ("o", "h")),
    "gru": (("z", "h"), ("r", "h"), ("hc", "rh")),
}


def set_weights_from_keras(cell: GenotypeCell, keras_cell: keras.layers.Layer) -> None:
    """Copies a built keras ``LSTMCell`` / ``GRUCell(reset_after=False)`` into ``cell``.

    ``cell`` must run the matching preset (``lstm`` / ``gru``, same node names), same units and
    input width. keras' kernel columns are ``[i, f, c, o]`` (LSTM) and ``[z, r, h]`` (GRU);
    they go to ``W_x_<node>``, the recurrent kernel's to ``W_h_<node>`` (``W_rh_hc`` for the
    GRU candidate), the bias to ``b_<node>``.

    Raises:
        TypeError: for another kind of keras cell.
        ValueError: for other activations, no bias, ``reset_after=True``,
            a genotype that is not the preset, or unbuilt cells / mismatched shapes.
    """
    if isinstance(keras_cell, keras.layers.LSTMCell):
        preset = "lstm"
    elif isinstance(keras_cell, keras.layers.GRUCell):
        preset = "gru"
        if keras_cell.reset_after:
            raise ValueError("keras_cell: GRUCell must use reset_after=False")
    else:
        raise TypeError(
            f"keras_cell must be a keras LSTMCell or GRUCell. Received: {type(keras_cell).__name__}"
        )
    activations = (keras_cell.activation.__name__, keras_cell.recurrent_activation.__name__)
    if activations != ("tanh", "sigmoid") or not keras_cell.use_bias:
        raise ValueError(
            "keras_cell: needs activation='tanh', recurrent_activation='sigmoid', use_bias=True. "
            f"Received: {activations}, use_bias={keras_cell.use_bias}"
        )
    if cell.genotype.fingerprint() != PRESETS[preset].fingerprint() or (
        cell.genotype.node_map.keys() != PRESETS[preset].node_map.keys()
    ):
        raise ValueError(f"cell: genotype must be the '{preset}' preset to take {preset} weights")
    if not (cell.built and keras_cell.built):
        raise ValueError("cell and keras_cell must both be built (call them once)")
    if keras_cell.units != cell.units:
        raise ValueError(f"units differ: cell {cell.units}, keras_cell {keras_cell.units}")
    kernel = ops.convert_to_numpy(keras_cell.kernel)
    recurrent = ops.convert_to_numpy(keras_cell.recurrent_kernel)
    bias = ops.convert_to_numpy(keras_cell.bias)
    u = cell.units
    for k, (node, h_source) in enumerate(_KERAS_BLOCKS[preset]):
        block = slice(k * u, (k + 1) * u)
        cell.get_weight(f"W_x_{node}").assign(kernel[:, block])
        cell.get_weight(f"W_{h_source}_{node}").assign(recurrent[:, block])
        cell.get_weight(f"b_{node}").assign(bias[block])


load_keras_weights = set_weights_from_keras
