"""The vanilla (Elman) recurrent cell and its fast layer.

h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from seqlayers.projected import ProjectedRNN, ProjectedRNNCell, sequence_outer


@keras.saving.register_keras_serializable(package="seqlayers")
class VanillaRNNCell(ProjectedRNNCell):
    """Vanilla (Elman) recurrent cell.

    ```
    h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)
    ```

    Weights: ``W_xh`` ``(input_dim, units)``, ``W_hh`` ``(units, units)``, ``b_h`` ``(units,)``,
    stored ``(fan_in, fan_out)`` so that ``x @ W_xh`` is the product. Given the same weights it
    computes exactly what ``keras.layers.SimpleRNNCell`` computes.

    Args:
        units: Positive integer, size of the state ``h``.
        activation: Activation in place of ``tanh``. Default ``"tanh"``; ``None`` is linear.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed:
            as in ``seqlayers.ProjectedRNNCell``.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``(batch, input_dim)`` input of one step.
        states: list holding ``h_{t-1}``, ``(batch, units)``.
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``.

    Example:
    ```python
    layer = keras.layers.RNN(VanillaRNNCell(16), return_sequences=True)
    y = layer(keras.random.normal((2, 5, 8)))  # (2, 5, 16)
    ```

    Reference:
        Elman, J. L. (1990). Finding structure in time. Cognitive Science, 14(2), 179-211.
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
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
        super().__init__(
            units,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            **kwargs,
        )
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tuple) -> None:
        self.W_xh = self.add_input_kernel("W_xh", input_shape[-1])
        self.W_hh = self.add_recurrent_kernel("W_hh")
        self.b_h = self.add_bias("b_h")

    def project_inputs(self, inputs: Any) -> Any:
        # W_xh x_t + b_h
        return self.add_biases(ops.matmul(inputs, self.W_xh), self.b_h)

    def recurrent_weights(self) -> tuple:
        return (self.W_hh,)

    def step_projected(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> Any:
        (W_hh,) = recurrent_weights
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        # tanh(W_hh h_{t-1} + [W_xh x_t + b_h])
        return self.activation(ops.matmul(h_in, W_hh) + projected_t)

    # --- hand-written backward pass (tanh or linear activation) ----------------------------
    fused_saved = 0  # the backward pass reads only h_{t-1} and h_t

    def supports_fused_backward(self) -> bool:
        return self.activation in (keras.activations.tanh, keras.activations.linear)

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
        (W_hh_T,) = transposed_weights
        # d pre = d h_t * act'(pre); tanh' = 1 - h_t^2
        d_pre = dh_t * (1.0 - h_t * h_t) if self.activation is keras.activations.tanh else dh_t
        dh_in = ops.matmul(d_pre, W_hh_T)
        return d_pre, dh_in if recurrent_mask is None else dh_in * recurrent_mask

    def weight_gradients(
        self,
        h_prev: Any,
        saved: tuple,
        d_projected: Any,
        recurrent_weights: tuple,
        recurrent_mask: Any,
    ) -> tuple:
        h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        return (sequence_outer(h_in, d_projected),)  # dL/dW_hh = sum_t h_in^T d pre_t

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="seqlayers")
class VanillaRNN(ProjectedRNN):
    """Fast vanilla RNN layer over ``VanillaRNNCell`` (like keras' ``GRU`` over ``GRUCell``).

    ``W_xh x_t + b_h`` is computed for the whole sequence in one matmul before the recurrence;
    each step then runs only ``tanh(W_hh h_{t-1} + ...)``. Outputs equal
    ``keras.layers.RNN(VanillaRNNCell(...))`` for the same weights.

    Args:
        units: Positive integer, size of the state ``h``.
        activation ... seed: as in ``VanillaRNNCell`` (dropout masks are drawn once per
            sequence).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as in ``keras.layers.RNN``.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        sequences: ``(batch, timesteps, input_dim)``.
        initial_state: Optional list holding ``(batch, units)``.
        mask: Optional boolean ``(batch, timesteps)``.
        training: Whether dropout is applied.

    Returns:
        ``(batch, units)`` or ``(batch, timesteps, units)``, then the last state with
        ``return_state``.

    Example:
    ```python
    y = VanillaRNN(16, return_sequences=True)(keras.random.normal((2, 5, 8)))  # (2, 5, 16)
    ```

    Reference:
        Elman, J. L. (1990). Finding structure in time. Cognitive Science, 14(2), 179-211.
    """

    _cell_args_in_config = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        cell = VanillaRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="vanilla_rnn_cell",
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
