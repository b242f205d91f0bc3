"""Recurrent layers that project the whole input sequence in one matmul before the recurrence.

Most recurrent cells split into *input terms* (``x_t @ W_x*``, biases, bare ``x_t`` terms), which
do not depend on the state, and *recurrent terms* (``h_{t-1} @ W_h*``), which do. The input terms
of every time step can be computed at once as ``(B, T, D) @ (D, P)``, one large, fast product,
leaving only the recurrent products inside the loop. keras' own ``GRU``/``LSTM`` do this inside
cuDNN; this module does it in pure ``keras.ops`` for our cells:

- ``ProjectedRNNCell``: base class of a single-state cell written as ``project_inputs`` (input
  terms) + ``step_projected`` (recurrent terms). Its ``call`` is exactly those two, so the cell
  works unchanged inside ``keras.layers.RNN``, ``Bidirectional``, etc.
- ``ProjectedRNN``: a ``keras.layers.RNN`` that projects the whole sequence first, reads and
  fuses the recurrent weights once per call, then hands the projected rows to keras' own loop
  (``keras.layers.RNN.inner_loop``) with the cell switched to *projected mode*, in which a step is
  only ``step_projected``. Masks, ``go_backwards``, ``stateful``, ``unroll``,
  ``zero_output_for_mask`` and XLA compilation therefore behave exactly as in
  ``keras.layers.RNN``, and outputs equal ``keras.layers.RNN(cell)`` for the same weights.

Training (``training=True``, no mask, not unrolled, TensorFlow or JAX backend): cells that also
write their backward pass (``step_saved`` / ``step_backward`` / ``weight_gradients``; the vanilla
and MUT cells do) run under ``fused_recurrence``, a custom gradient whose reverse loop only
carries the state gradient: the recurrent weight gradients, which autodiff of the loop would
compute as one small product per step, come out as one ``(units, T*B) @ (T*B, ...)`` product
after it. Forward values are the same ops as the step; gradients agree with autodiff up to
floating-point rounding.

Dropout: the cell's ``dropout`` / ``recurrent_dropout`` masks are drawn once per sequence inside
``ProjectedRNN`` (the same mask at every step, like keras' ``GRU``). Inside a plain
``keras.layers.RNN`` the cell draws fresh masks at every step, because keras only shares masks
across steps for its private ``DropoutRNNCell`` class.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _validate_rate(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


class ProjectedRNNCell(keras.layers.Layer):
    """Base class of a single-state recurrent cell split into input terms and recurrent terms.

    Subclasses create their named weights in ``build`` and implement:

    - ``project_inputs(inputs)``: ``(..., input_dim) -> (..., projection_dim)``, every term of
      the update that reads only ``x_t`` (input kernels, biases, bare ``x_t`` terms). It works on
      one step ``(B, D)`` or on a whole time-major sequence ``(T, B, D)``.
    - ``recurrent_weights()``: the tuple of recurrent tensors ``step_projected`` needs, fused
      (e.g. concatenated) once per sequence rather than once per step.
    - ``step_projected(projected_t, h_tm1, recurrent_weights, recurrent_mask=None)``: the new
      state ``h_t`` from one step of ``project_inputs`` and the previous state.

    The cell's output is its state ``h_t``.

    Args:
        units: Positive integer, size of the state ``h``.
        use_bias: Whether the cell has bias vectors. Default ``True``.
        kernel_initializer: Initializer of the input kernels ``W_x*``. Default
            ``"glorot_uniform"``.
        recurrent_initializer: Initializer of the recurrent kernels ``W_h*``. Default
            ``"orthogonal"``.
        bias_initializer: Initializer of the biases ``b_*``. Default ``"zeros"``.
        kernel_regularizer: Optional regularizer of the input kernels.
        recurrent_regularizer: Optional regularizer of the recurrent kernels.
        bias_regularizer: Optional regularizer of the biases.
        kernel_constraint: Optional constraint of the input kernels.
        recurrent_constraint: Optional constraint of the recurrent kernels.
        bias_constraint: Optional constraint of the biases.
        dropout: Float in ``[0, 1)``, fraction of the input units dropped in training.
        recurrent_dropout: Float in ``[0, 1)``, fraction of the state units dropped where the
            state enters a recurrent product, in training.
        seed: Optional integer seed of the dropout masks.
        **kwargs: Base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, input_dim)`` input of one step.
        states: list holding the previous state ``(batch, units)``.
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``.
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _validate_rate("dropout", dropout)
        self.recurrent_dropout = _validate_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units
        # Set by ProjectedRNN while its loop runs: (recurrent_weights, recurrent_mask).
        self._projected_mode = None

    # --- weights, named after the symbols of the equations --------------------------------
    def add_input_kernel(self, name: str, input_dim: int) -> keras.Variable:
        """Creates an input kernel ``name`` of shape ``(input_dim, units)``."""
        return self.add_weight(
            name=name,
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def add_recurrent_kernel(self, name: str) -> keras.Variable:
        """Creates a recurrent kernel ``name`` of shape ``(units, units)``."""
        return self.add_weight(
            name=name,
            shape=(self.units, self.units),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    def add_bias(self, name: str) -> keras.Variable | None:
        """Creates a bias ``name`` of shape ``(units,)``, or returns ``None`` without bias."""
        if not self.use_bias:
            return None
        return self.add_weight(
            name=name,
            shape=(self.units,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def add_biases(self, projected: Any, *biases: Any) -> Any:
        """Adds the concatenated ``biases`` to ``projected`` (no-op when ``use_bias=False``)."""
        if not self.use_bias:
            return projected
        return projected + ops.concatenate(list(biases), axis=0)

    # --- the split update -------------------------------------------------------------------
    def project_inputs(self, inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement project_inputs().")

    def recurrent_weights(self) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must implement recurrent_weights().")

    def step_projected(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement step_projected().")

    # --- optional hand-written backward pass (see ``fused_recurrence``) --------------------
    #: How many ``(batch, units)`` tensors ``step_saved`` keeps per step for the backward pass,
    #: or ``None`` when the cell has no hand-written backward pass.
    fused_saved: int | None = None

    def supports_fused_backward(self) -> bool:
        """Whether ``step_saved``, ``step_backward`` and ``weight_gradients`` are available."""
        return self.fused_saved is not None

    def step_saved(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> tuple:
        """``(h_t, saved)``: one step and the ``fused_saved`` values its backward pass reads."""
        return self.step_projected(projected_t, h_tm1, recurrent_weights, recurrent_mask), ()

    def step_backward(
        self,
        projected_t: Any,
        h_tm1: Any,
        h_t: Any,
        saved: tuple,
        transposed_weights: tuple,
        recurrent_mask: Any,
        dh_t: Any,
    ) -> tuple:
        """``(d projected_t, d h_{t-1})`` from ``d h_t``, the total gradient reaching ``h_t``.

        ``transposed_weights`` are ``recurrent_weights()`` transposed (read once per sequence).
        """
        raise NotImplementedError(f"{type(self).__name__} has no hand-written backward pass.")

    def weight_gradients(
        self,
        h_prev: Any,
        saved: tuple,
        d_projected: Any,
        recurrent_weights: tuple,
        recurrent_mask: Any,
    ) -> tuple:
        """Gradients of ``recurrent_weights`` over a whole time-major sequence.

        ``h_prev`` ``(T, B, units)`` holds ``h_{t-1}`` of every step, ``saved`` the stacked
        ``step_saved`` values, ``d_projected`` ``(T, B, P)`` the gradients of the projected
        inputs. Each gradient is one ``sequence_outer`` product.
        """
        raise NotImplementedError(f"{type(self).__name__} has no hand-written backward pass.")

    def dropout_masks(self, step_inputs: Any, h: Any, training: bool = False) -> tuple:
        """Draws ``(input_mask, recurrent_mask)`` for one step; ``None`` where unused."""
        input_mask = recurrent_mask = None
        if training and self.dropout > 0:
            input_mask = keras.random.dropout(
                ops.ones_like(step_inputs), rate=self.dropout, seed=self.seed_generator
            )
        if training and self.recurrent_dropout > 0:
            recurrent_mask = keras.random.dropout(
                ops.ones_like(h), rate=self.recurrent_dropout, seed=self.seed_generator
            )
        return input_mask, recurrent_mask

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple:
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        if self._projected_mode is not None:  # inside ProjectedRNN: inputs are projected rows
            recurrent_weights, recurrent_mask = self._projected_mode
            h_t = self.step_projected(inputs, h_tm1, recurrent_weights, recurrent_mask)
            return h_t, [h_t]
        input_mask, recurrent_mask = self.dropout_masks(inputs, h_tm1, training)
        if input_mask is not None:
            inputs = inputs * input_mask
        projected_t = self.project_inputs(inputs)
        h_t = self.step_projected(projected_t, h_tm1, self.recurrent_weights(), recurrent_mask)
        return h_t, [h_t]

    def get_initial_state(self, batch_size: Any = None) -> list:
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self) -> dict:
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def sequence_outer(a: Any, g: Any) -> Any:
    """``sum_t a_t^T g_t`` for time-major ``(T, B, m)`` and ``(T, B, n)``: one product."""
    a2 = ops.reshape(a, (-1, a.shape[-1]))
    g2 = ops.reshape(g, (-1, g.shape[-1]))
    return ops.matmul(ops.transpose(a2), g2)


def fused_recurrence(
    cell: ProjectedRNNCell, sequence: Any, h0: Any, weights: tuple, recurrent_mask: Any = None
) -> Any:
    """All states ``(T, B, units)`` of ``cell`` over a time-major projected ``sequence``.

    Forward: ``step_saved`` at every step (one scan). Backward (a custom gradient): a reverse
    scan of ``step_backward`` carrying only ``d h``, then ``weight_gradients`` on the whole
    sequence, so the weight gradients are a few large products instead of one small product
    per step. ``recurrent_mask`` (recurrent dropout) is a constant.
    """
    n = len(weights)
    saved_count = cell.fused_saved

    @ops.custom_gradient
    def run(sequence, h0, *rest):
        weights, mask = rest[:n], (rest[n] if len(rest) > n else None)

        def forward_step(carry, p_t):
            h_t, saved = cell.step_saved(p_t, carry[0], weights, mask)
            out = (h_t, *saved)
            return out, out

        init = (h0,) + tuple(ops.zeros_like(h0) for _ in range(saved_count))
        _, ys = ops.scan(forward_step, init, sequence)
        states, saved = ys[0], tuple(ys[1:])

        def grad(*args, upstream=None):
            d_states = args[0] if upstream is None else upstream
            h_prev = ops.concatenate([ops.expand_dims(h0, 0), states[:-1]], axis=0)
            transposed = tuple(ops.transpose(w) for w in weights)

            def backward_step(carry, t):
                saved_t = tuple(s[t] for s in saved)
                d_h_t = d_states[t] + carry[0]
                d_p, d_h_tm1 = cell.step_backward(
                    sequence[t], h_prev[t], states[t], saved_t, transposed, mask, d_h_t
                )
                return (d_h_tm1, d_p), (d_h_tm1, d_p)

            # Scans over the step index (one scanned tensor: keras' TensorFlow scan cannot
            # check several scanned tensors of unknown length) and reads the step's rows.
            init = (ops.zeros_like(h0), ops.zeros_like(sequence[0]))
            steps = ops.arange(ops.shape(sequence)[0])
            carry, ys = ops.scan(backward_step, init, steps, reverse=True)
            d_sequence, d_h0 = ys[1], carry[0]
            d_weights = cell.weight_gradients(h_prev, saved, d_sequence, weights, mask)
            grads = (d_sequence, d_h0, *d_weights)
            return grads + ((ops.zeros_like(mask),) if mask is not None else ())

        return states, grad

    # Plain tensors (a variable read inside a custom gradient would need its own gradient path).
    weights = tuple(ops.copy(w) for w in weights)
    args = (sequence, h0, *weights) + ((recurrent_mask,) if recurrent_mask is not None else ())
    return run(*args)


@keras.saving.register_keras_serializable(package="seqlayers")
class ProjectedRNN(keras.layers.RNN):
    """``keras.layers.RNN`` that computes all input terms of a sequence in one matmul.

    Before the recurrence, the input sequence ``(B, T, D)`` goes through the cell's
    ``project_inputs`` in a single ``(B, T, D) @ (D, P)`` product, and the recurrent weights are
    read and fused once (``recurrent_weights``); keras' own loop then runs only the recurrent
    products of ``step_projected`` at each step. Outputs equal ``keras.layers.RNN(cell)`` for the same weights, with the
    same semantics of masks, ``go_backwards``, ``stateful``, ``unroll`` and
    ``zero_output_for_mask``. Dropout masks are drawn once per sequence (variational dropout).

    Args:
        cell: A ``ProjectedRNNCell`` (e.g. ``VanillaRNNCell``, ``MUT1Cell``).
        return_sequences: Whether to return the whole output sequence. Default ``False``.
        return_state: Whether to also return the last state. Default ``False``.
        go_backwards: Whether to process the sequence in reverse (and return the reversed
            output sequence). Default ``False``.
        stateful: Whether the last state of a batch is the initial state of the next one.
        unroll: Whether to unroll the loop in Python (needs a static number of time steps).
        zero_output_for_mask: Whether masked steps output zeros instead of the previous output.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        sequences: ``(batch, timesteps, input_dim)`` tensor.
        initial_state: Optional list holding the initial state ``(batch, units)``.
        mask: Optional boolean ``(batch, timesteps)`` tensor; ``False`` steps are skipped (the
            state is carried through).
        training: Whether dropout is applied.

    Returns:
        ``(batch, units)``, or ``(batch, timesteps, units)`` with ``return_sequences``; followed
        by the last state with ``return_state``.

    Example:
    ```python
    layer = ProjectedRNN(MUT3Cell(32), return_sequences=True)
    y = layer(keras.random.normal((4, 10, 8)))  # (4, 10, 32)
    ```
    """

    # Subclasses that build their own cell from arguments (``VanillaRNN``, ``MUT1``...) set this
    # to store the cell's arguments flat in their config, like keras' ``GRU``.
    _cell_args_in_config = False

    def __init__(
        self,
        cell: ProjectedRNNCell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(cell, ProjectedRNNCell):
            raise TypeError(
                "`cell` must be a seqlayers ProjectedRNNCell (e.g. VanillaRNNCell, MUT1Cell); "
                f"use keras.layers.RNN for other cells. Received: cell={cell!r}"
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
    def dropout(self) -> float:
        return self.cell.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    def uses_fused_backward(self, mask: Any, training: Any) -> bool:
        """Whether a call runs ``fused_recurrence`` (training, no mask, not unrolled, TF/JAX)."""
        return (
            training is True
            and mask is None
            and not self.unroll
            and self.cell.supports_fused_backward()
            and keras.backend.backend() in ("tensorflow", "jax")
        )

    def inner_loop(self, sequences: Any, initial_state: Any, mask: Any, training: bool = False):
        cell = self.cell
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        # One dropout mask per sequence, shared by every step.
        input_mask, recurrent_mask = cell.dropout_masks(sequences[:, 0, :], h0, training)
        if input_mask is not None:
            sequences = sequences * ops.expand_dims(input_mask, 1)
        # Recurrent weights read and fused once, outside the loop.
        weights = tuple(ops.convert_to_tensor(w) for w in cell.recurrent_weights())
        if self.uses_fused_backward(mask, training):
            # Input terms of every step in one product, time-major: (T, B, D) -> (T, B, P).
            projected = cell.project_inputs(ops.transpose(sequences, (1, 0, 2)))
            if self.go_backwards:
                projected = ops.flip(projected, axis=0)
            states = fused_recurrence(cell, projected, h0, weights, recurrent_mask)
            last = states[-1]
            return last, ops.transpose(states, (1, 0, 2)), [last]
        # Input terms of every step in one product: (B, T, D) -> (B, T, P). keras' own loop
        # (masks, go_backwards, unroll, XLA) then runs over the projected rows with the cell
        # in projected mode, where a step is only step_projected.
        projected = cell.project_inputs(sequences)
        cell._projected_mode = (weights, recurrent_mask)
        try:
            return super().inner_loop(projected, initial_state, mask, training=training)
        finally:
            cell._projected_mode = None

    def get_config(self) -> dict:
        config = super().get_config()
        if not self._cell_args_in_config:
            return config
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict, custom_objects: Any = None):
        if cls._cell_args_in_config:
            return cls(**config)
        return super().from_config(config, custom_objects=custom_objects)
