"""A recurrent decoder cell that attends over encoder outputs, and its teacher-forced layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from seqlayers.attention import BahdanauAttention


def _as_list(states: Any) -> list:
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _flat_sizes(state_size: Any) -> list:
    sizes = state_size if isinstance(state_size, (list, tuple)) else [state_size]
    return [int(s) for s in sizes]


@keras.saving.register_keras_serializable(package="seqlayers")
class AttentionDecoderCell(keras.layers.Layer):
    """One decoder step of Bahdanau et al. (2015): attend, then update an inner cell.

    With ``s_{t-1}`` the previous state of the inner cell (its first state tensor: ``h`` for
    GRU / LSTM / vanilla cells), ``H`` the encoder outputs and ``y_{t-1}`` the embedded
    previous target token:

    ```
    c_t, alpha_t = attention(s_{t-1}, H)                   BahdanauAttention
    o'_t, s_t    = cell(concat(y_{t-1}, c_t), s_{t-1})     inner cell
    o_t          = concat(o'_t, c_t)                       output, feeds the vocabulary layer
    ```

    The output joins the inner cell's output and the context (the paper's deep output
    reads both), so ``output_size = cell.output_size + value_dim``.

    Keras 3's ``keras.layers.RNN`` has no ``constants`` argument, so this cell is not run by
    ``RNN``: call it one step at a time (`step`, or the layer call, e.g. inside a greedy /
    beam-search loop or as the exported one-step model), or run whole target sequences with
    `AttentionDecoder`, which shares its weights.

    Args:
        cell: The inner recurrent cell: any cell following keras' cell contract
            (``keras.layers.GRUCell``, ``LSTMCell``, the suite's cells), as an object or
            as a config dict from ``keras.saving.serialize_keras_object``. Default: a
            ``GRUCell(units)``.
        units: Units of the default GRU cell; only used (and required) when ``cell`` is
            None.
        attention_units: Units of the `BahdanauAttention` scoring network. Default: the
            size of the inner cell's first state.
        attention_use_bias: Whether the attention adds its bias ``b_a`` (default False).
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: ``(batch, input_dim)``, embedded previous tokens ``y_{t-1}``.
        states: List of the inner cell's state tensors (`get_initial_state` gives zeros).
        values: ``(batch, Tv, value_dim)``, encoder outputs ``H``.
        keys: Optional ``attention.precompute_keys(values)`` (``(batch, Tv, units)``), to
            avoid recomputing ``H U_a`` at every step.
        mask: Optional boolean ``(batch, Tv)`` mask of ``values``.
        training: Python bool, forwarded to the inner cell (dropout).

    Returns:
        ``(output, new_states, attention_weights)``: ``(batch, output_size)``, the list of
        new states, ``(batch, Tv)``.

    Example:

    >>> cell = AttentionDecoderCell(units=16)
    >>> values = keras.random.normal((2, 7, 8))
    >>> states = cell.get_initial_state(2)
    >>> output, states, weights = cell.step(keras.random.normal((2, 4)), states, values)
    >>> tuple(output.shape), tuple(weights.shape)
    ((2, 24), (2, 7))

    Reference:
        Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align and
        Translate", ICLR 2015 (arXiv:1409.0473), appendix A.2.2.
    """

    def __init__(
        self,
        cell: Any = None,
        units: int | None = None,
        attention_units: int | None = None,
        attention_use_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cell is None:
            if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
                raise ValueError(
                    "Pass either an inner `cell` or a positive integer `units` for the "
                    f"default GRU cell. Received: cell=None, units={units}"
                )
            cell = keras.layers.GRUCell(units)
        elif isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not (hasattr(cell, "state_size") and callable(cell)):
            raise ValueError(
                "`cell` must be a recurrent cell with a `state_size` (e.g. "
                f"keras.layers.GRUCell). Received: cell={cell!r}"
            )
        if attention_units is not None and (
            not isinstance(attention_units, int)
            or isinstance(attention_units, bool)
            or attention_units <= 0
        ):
            raise ValueError(
                "`attention_units` must be a positive integer or None. "
                f"Received: attention_units={attention_units}"
            )
        self.cell = cell
        self.units = units
        self.attention_units = attention_units
        self.attention_use_bias = bool(attention_use_bias)
        self._state_sizes = _flat_sizes(cell.state_size)
        self.attention = BahdanauAttention(
            attention_units or self._state_sizes[0],
            use_bias=self.attention_use_bias,
            name="attention",
        )
        self.value_dim: int | None = None

    @property
    def state_size(self) -> Any:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        if self.value_dim is None:
            raise ValueError(
                f"Layer '{self.name}': `output_size` depends on the values' last dimension; "
                "build the cell first."
            )
        return int(getattr(self.cell, "output_size", self._state_sizes[0])) + self.value_dim

    def build(self, inputs_shape: tuple, values_shape: tuple) -> None:
        input_dim, value_dim = inputs_shape[-1], values_shape[-1]
        if input_dim is None or value_dim is None:
            raise ValueError(
                "The last dimension of `inputs` and `values` must be known. Received: "
                f"inputs_shape={inputs_shape}, values_shape={values_shape}"
            )
        self.value_dim = int(value_dim)
        batch = inputs_shape[0]
        self.attention.build((batch, self._state_sizes[0]), tuple(values_shape))
        if not self.cell.built:
            self.cell.build((batch, int(input_dim) + self.value_dim))

    def get_initial_state(self, batch_size: Any) -> list:
        """Zero states of the inner cell, as a list."""
        if hasattr(self.cell, "get_initial_state"):
            return _as_list(self.cell.get_initial_state(batch_size))
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self._state_sizes
        ]

    def precompute_keys(self, values: Any) -> Any:
        """``values U_a [+ b_a]``, to pass as ``keys=`` to every step of one sequence."""
        return self.attention.precompute_keys(values)

    def step(
        self,
        inputs: Any,
        states: Any,
        values: Any,
        keys: Any = None,
        mask: Any = None,
        training: bool | None = None,
    ) -> tuple:
        """One decoder step; same as calling the layer. See the class docstring."""
        return self(inputs, states, values, keys=keys, mask=mask, training=training)

    def call(
        self,
        inputs: Any,
        states: Any,
        values: Any,
        keys: Any = None,
        mask: Any = None,
        training: bool | None = None,
    ) -> tuple:
        output, new_states, weights = self._step(inputs, states, values, keys, mask)
        _reset_dropout_masks(self.cell)  # a lone step must not leak its dropout mask
        return output, new_states, weights

    def _step(
        self,
        inputs: Any,
        states: Any,
        values: Any,
        keys: Any,
        mask: Any,
    ) -> tuple:
        """The step itself; the inner cell gets ``training`` from keras' call context."""
        states = _as_list(states)
        if keys is None:
            keys = self.attention.precompute_keys(values)
        # c_t = attention(s_{t-1}, H)
        context, weights = self.attention(states[0], values, mask=mask, keys=keys)
        # s_t = cell([y_{t-1}; c_t], s_{t-1})
        cell_output, new_states = self.cell(ops.concatenate([inputs, context], axis=-1), states)
        # o_t = [cell output; c_t]
        output = ops.concatenate([cell_output, context], axis=-1)
        return output, _as_list(new_states), weights

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        return None

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "cell": keras.saving.serialize_keras_object(self.cell),
                "units": self.units,
                "attention_units": self.attention_units,
                "attention_use_bias": self.attention_use_bias,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> AttentionDecoderCell:
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def _configure_dropout_masks(cell: Any, inputs: Any, state: Any) -> None:
    """Creates a keras dropout cell's per-sequence masks outside the loop (as keras.RNN)."""
    if hasattr(cell, "get_dropout_mask"):
        cell.get_dropout_mask(inputs)
    if hasattr(cell, "get_recurrent_dropout_mask"):
        cell.get_recurrent_dropout_mask(state)


def _reset_dropout_masks(cell: Any) -> None:
    if hasattr(cell, "reset_dropout_mask"):
        cell.reset_dropout_mask()
    if hasattr(cell, "reset_recurrent_dropout_mask"):
        cell.reset_recurrent_dropout_mask()


@keras.saving.register_keras_serializable(package="seqlayers")
class AttentionDecoder(keras.layers.Layer):
    """Runs an `AttentionDecoderCell` over whole (teacher-forced) target sequences.

    At step ``t`` it computes exactly what ``cell.step(target_inputs[:, t], states, values)``
    computes, with the keys ``H U_a`` computed once per batch instead of once per step.

    The recurrence runs with ``keras.ops.scan``, so it works for target lengths unknown
    until run time (``keras.Input((None, dim))``) with a graph of constant size on every
    backend. Keras' TensorFlow ``scan`` requires the per-step outputs to have the carry's
    structure, so the carry holds ``(states, output, weights)`` and the scan's outputs are
    that same carry. ``unroll=True`` uses a Python loop instead (static target length
    only): faster for short sequences, a graph that grows with the length.

    Padded target steps (``target_mask`` False) keep the previous states and produce zero
    outputs and zero attention weights. The outputs carry no keras mask: apply
    ``target_mask`` in the loss.

    Args:
        cell: An `AttentionDecoderCell` (or its serialized config).
        unroll: Python loop over a static target length instead of ``keras.ops.scan``.
        **kwargs: Base layer arguments.

    Call arguments:
        target_inputs: ``(batch, T, input_dim)``, embedded shifted targets ``y_0..y_{T-1}``.
        values: ``(batch, Tv, value_dim)``, encoder outputs.
        initial_state: Optional state tensor or list of them (e.g. from the encoder);
            zeros by default.
        mask: Optional boolean ``(batch, Tv)`` mask of ``values``.
        target_mask: Optional boolean ``(batch, T)`` mask of the target steps.
        training: Python bool, forwarded to the inner cell (dropout).

    Returns:
        ``(outputs, final_states, attention_weights)``: ``(batch, T, output_size)``, the
        list of final states, ``(batch, T, Tv)``.

    Example:

    >>> decoder = AttentionDecoder(AttentionDecoderCell(units=16))
    >>> values = keras.random.normal((2, 7, 8))
    >>> targets = keras.random.normal((2, 5, 4))
    >>> outputs, states, weights = decoder(targets, values)
    >>> tuple(outputs.shape), tuple(weights.shape)
    ((2, 5, 24), (2, 5, 7))

    Reference:
        Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align and
        Translate", ICLR 2015 (arXiv:1409.0473).
    """

    def __init__(self, cell: Any, unroll: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not isinstance(cell, AttentionDecoderCell):
            raise ValueError(  # noqa: TRY004 (keras convention: bad arguments are ValueError)
                f"`cell` must be an AttentionDecoderCell. Received: cell={cell!r}"
            )
        self.cell = cell
        self.unroll = bool(unroll)

    def build(self, target_inputs_shape: tuple, values_shape: tuple) -> None:
        step_shape = (target_inputs_shape[0],) + tuple(target_inputs_shape[2:])
        if not self.cell.built:
            self.cell.build(step_shape, tuple(values_shape))

    def call(
        self,
        target_inputs: Any,
        values: Any,
        initial_state: Any = None,
        mask: Any = None,
        target_mask: Any = None,
        training: bool | None = None,
    ) -> tuple:
        cell = self.cell
        batch = ops.shape(target_inputs)[0]
        states = cell.get_initial_state(batch) if initial_state is None else _as_list(initial_state)
        keys = cell.precompute_keys(values)
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if training:
            first_input = ops.concatenate([target_inputs[:, 0], ops.zeros_like(values[:, 0])], -1)
            _configure_dropout_masks(cell.cell, first_input, states[0])

        def one_step(carry_states: list, x_t: Any, m_t: Any) -> tuple:
            output, new_states, weights = cell._step(x_t, carry_states, values, keys, mask)
            if m_t is not None:
                keep = ops.expand_dims(m_t, -1)
                new_states = [ops.where(keep, n, o) for n, o in zip(new_states, carry_states)]
                output = ops.where(keep, output, ops.zeros_like(output))
                weights = ops.where(keep, weights, ops.zeros_like(weights))
            return new_states, output, weights

        inputs_tm = ops.transpose(target_inputs, (1, 0, 2))  # (T, B, D)
        mask_tm = None if target_mask is None else ops.transpose(ops.cast(target_mask, "bool"))

        if self.unroll:
            steps = target_inputs.shape[1]
            if steps is None:
                raise ValueError(
                    "`unroll=True` needs a static target length. Received: "
                    f"target_inputs.shape={target_inputs.shape}"
                )
            outputs, all_weights = [], []
            for t in range(steps):
                states, output, weights = one_step(
                    states, inputs_tm[t], None if mask_tm is None else mask_tm[t]
                )
                outputs.append(output)
                all_weights.append(weights)
            outputs_tm, weights_tm = ops.stack(outputs), ops.stack(all_weights)
        else:
            # The carry also holds the last output and weights (see the class docstring).
            zero_output = ops.zeros((batch, cell.output_size), dtype=self.compute_dtype)
            zero_weights = ops.zeros_like(keys[:, :, 0])
            init = (states, zero_output, zero_weights)

            # One scanned tensor only: keras' TF `scan` fails on several `xs` when the length
            # is unknown, so the target mask rides along as a last input column.
            xs = inputs_tm
            if mask_tm is not None:
                xs = ops.concatenate([inputs_tm, ops.cast(mask_tm, inputs_tm.dtype)[..., None]], -1)

            def scan_fn(carry: tuple, x: Any) -> tuple:
                m_t = None
                if mask_tm is not None:
                    x, m_t = x[:, :-1], ops.cast(x[:, -1], "bool")
                new_carry = one_step(carry[0], x, m_t)
                return new_carry, new_carry

            (states, _, _), (_, outputs_tm, weights_tm) = ops.scan(scan_fn, init, xs)

        if training:
            _reset_dropout_masks(cell.cell)
        outputs = ops.transpose(outputs_tm, (1, 0, 2))
        weights = ops.transpose(weights_tm, (1, 0, 2))
        return outputs, states, weights

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        return None

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"cell": keras.saving.serialize_keras_object(self.cell), "unroll": self.unroll}
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> AttentionDecoder:
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)
