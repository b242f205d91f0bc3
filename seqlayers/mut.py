"""MUT1, MUT2 and MUT3: the three best GRU-like cells found by Jozefowicz et al. (2015).

All three update the state like a GRU, ``h_t = tanh(...) ⊙ z + h_{t-1} ⊙ (1 − z)``, and differ in
how the update gate ``z`` and the reset gate ``r`` read the input and the state. MUT1 and MUT2
add the input ``x_t`` itself (no kernel) to a ``units``-wide pre-activation, so their input width
must equal ``units``.

Reference:
    Jozefowicz, R., Zaremba, W., & Sutskever, I. (2015). An Empirical Exploration of Recurrent
    Network Architectures. Proceedings of the 32nd International Conference on Machine Learning
    (ICML), PMLR 37:2342-2350.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from seqlayers.projected import ProjectedRNN, ProjectedRNNCell, sequence_outer


class MUTCellBase(ProjectedRNNCell):
    """Shared part of the MUT cells: input-width check, gate split and the GRU-like update.

    Args:
        units: Positive integer, size of the state ``h``.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed:
            as in ``seqlayers.ProjectedRNNCell``.
        **kwargs: Base ``keras.layers.Layer`` arguments.
    """

    # True for cells whose equations add x_t itself to a units-wide pre-activation.
    bare_input = False

    def _check_input_width(self, input_dim: int | None) -> None:
        if self.bare_input and input_dim != self.units:
            raise ValueError(
                f"{type(self).__name__} adds the input x_t itself to a units-wide "
                f"pre-activation, so its input width must equal units={self.units}. Received "
                f"input width {input_dim}. Feed the sequence through an Embedding or Dense "
                f"projection of width {self.units} first."
            )

    @staticmethod
    def split_gates(projected_t: Any) -> list:
        """Splits ``[z | r | h]`` pre-activations into three ``(batch, units)`` parts."""
        return ops.split(projected_t, 3, axis=-1)

    @staticmethod
    def interpolate(candidate: Any, z: Any, h_tm1: Any) -> Any:
        """``candidate ⊙ z + h_{t-1} ⊙ (1 − z)``."""
        return candidate * z + h_tm1 * (1.0 - z)

    # --- hand-written backward pass (see seqlayers.projected.fused_recurrence) -------------
    fused_saved = 3  # z, r and the candidate of every step

    def step_projected(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> Any:
        return self.step_saved(projected_t, h_tm1, recurrent_weights, recurrent_mask)[0]

    @staticmethod
    def candidate_backward(saved: tuple, h_tm1: Any, h_in: Any, W_hh_T: Any, dh_t: Any) -> tuple:
        """Backward of ``h_t = tanh(W_hh (r ⊙ h_in) + x_h) ⊙ z + h_{t-1} ⊙ (1 − z)``.

        Returns ``(d z_pre, d r, d c_pre, d h_in through r ⊙ h_in, d h_{t-1} direct)``, with
        ``z_pre`` / ``c_pre`` the arguments of ``σ`` / ``tanh``.
        """
        z, r, c = saved
        d_c_pre = dh_t * z * (1.0 - c * c)
        d_z_pre = dh_t * (c - h_tm1) * z * (1.0 - z)
        d_rh = ops.matmul(d_c_pre, W_hh_T)
        return d_z_pre, d_rh * h_in, d_c_pre, d_rh * r, dh_t * (1.0 - z)

    @staticmethod
    def masked(value: Any, recurrent_mask: Any) -> Any:
        return value if recurrent_mask is None else value * recurrent_mask


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT1Cell(MUTCellBase):
    """MUT1 cell (Jozefowicz, Zaremba & Sutskever, 2015).

    ```
    z   = σ(W_xz x_t + b_z)
    r   = σ(W_xr x_t + W_hr h_{t-1} + b_r)
    h_t = tanh(W_hh (r ⊙ h_{t-1}) + tanh(x_t) + b_h) ⊙ z + h_{t-1} ⊙ (1 − z)
    ```

    Weights (``(fan_in, fan_out)``): ``W_xz``, ``W_xr`` ``(input_dim, units)``; ``W_hr``,
    ``W_hh`` ``(units, units)``; ``b_z``, ``b_r``, ``b_h`` ``(units,)``. The bare ``tanh(x_t)``
    term needs ``input_dim == units`` (``build`` raises ``ValueError`` otherwise).

    Args:
        units: Positive integer, size of the state ``h`` (and of the input).
        use_bias ... seed: as in ``seqlayers.ProjectedRNNCell``.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``(batch, units)`` input of one step.
        states: list holding ``h_{t-1}``, ``(batch, units)``.
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``.

    Example:
    ```python
    model = keras.Sequential([
        keras.layers.Embedding(1000, 64),
        keras.layers.RNN(MUT1Cell(64)),
    ])
    ```

    Reference:
        Jozefowicz, R., Zaremba, W., & Sutskever, I. (2015). An Empirical Exploration of
        Recurrent Network Architectures. ICML 2015.
    """

    bare_input = True

    def build(self, input_shape: tuple) -> None:
        input_dim = input_shape[-1]
        self._check_input_width(input_dim)
        self.W_xz = self.add_input_kernel("W_xz", input_dim)
        self.b_z = self.add_bias("b_z")
        self.W_xr = self.add_input_kernel("W_xr", input_dim)
        self.W_hr = self.add_recurrent_kernel("W_hr")
        self.b_r = self.add_bias("b_r")
        self.W_hh = self.add_recurrent_kernel("W_hh")
        self.b_h = self.add_bias("b_h")

    def project_inputs(self, inputs: Any) -> Any:
        x_zr = ops.matmul(inputs, ops.concatenate([self.W_xz, self.W_xr], axis=1))  # W_xz x, W_xr x
        x_h = ops.tanh(inputs)  # tanh(x)
        return self.add_biases(ops.concatenate([x_zr, x_h], axis=-1), self.b_z, self.b_r, self.b_h)

    def recurrent_weights(self) -> tuple:
        return (self.W_hr, self.W_hh)

    def step_saved(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> tuple:
        W_hr, W_hh = recurrent_weights
        x_z, x_r, x_h = self.split_gates(projected_t)
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        z = ops.sigmoid(x_z)
        r = ops.sigmoid(x_r + ops.matmul(h_in, W_hr))
        candidate = ops.tanh(ops.matmul(r * h_in, W_hh) + x_h)
        return self.interpolate(candidate, z, h_tm1), (z, r, candidate)

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
        W_hr_T, W_hh_T = transposed_weights
        h_in = self.masked(h_tm1, recurrent_mask)
        d_z_pre, d_r, d_c_pre, d_h_in, d_h = self.candidate_backward(
            saved, h_tm1, h_in, W_hh_T, dh_t
        )
        r = saved[1]
        d_r_pre = d_r * r * (1.0 - r)  # σ' = r (1 − r)
        d_h_in = d_h_in + ops.matmul(d_r_pre, W_hr_T)  # through W_hr h_{t-1}
        d_projected = ops.concatenate([d_z_pre, d_r_pre, d_c_pre], axis=-1)
        return d_projected, d_h + self.masked(d_h_in, recurrent_mask)

    def weight_gradients(
        self,
        h_prev: Any,
        saved: tuple,
        d_projected: Any,
        recurrent_weights: tuple,
        recurrent_mask: Any,
    ) -> tuple:
        _, d_r_pre, d_c_pre = self.split_gates(d_projected)
        h_in = self.masked(h_prev, recurrent_mask)
        # dW_hr = Σ_t h_in^T d r_pre_t;  dW_hh = Σ_t (r ⊙ h_in)^T d c_pre_t
        return sequence_outer(h_in, d_r_pre), sequence_outer(saved[1] * h_in, d_c_pre)


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT2Cell(MUTCellBase):
    """MUT2 cell (Jozefowicz, Zaremba & Sutskever, 2015).

    ```
    z   = σ(W_xz x_t + W_hz h_{t-1} + b_z)
    r   = σ(x_t + W_hr h_{t-1} + b_r)
    h_t = tanh(W_hh (r ⊙ h_{t-1}) + W_xh x_t + b_h) ⊙ z + h_{t-1} ⊙ (1 − z)
    ```

    Weights (``(fan_in, fan_out)``): ``W_xz``, ``W_xh`` ``(input_dim, units)``; ``W_hz``,
    ``W_hr``, ``W_hh`` ``(units, units)``; ``b_z``, ``b_r``, ``b_h`` ``(units,)``. The bare
    ``x_t`` term needs ``input_dim == units`` (``build`` raises ``ValueError`` otherwise).
    ``W_hz`` and ``W_hr`` both read ``h_{t-1}``, so they run as one fused product per step.

    Args:
        units: Positive integer, size of the state ``h`` (and of the input).
        use_bias ... seed: as in ``seqlayers.ProjectedRNNCell``.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``(batch, units)`` input of one step.
        states: list holding ``h_{t-1}``, ``(batch, units)``.
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``.

    Example:
    ```python
    y = keras.layers.RNN(MUT2Cell(8))(keras.random.normal((2, 5, 8)))  # (2, 8)
    ```

    Reference:
        Jozefowicz, R., Zaremba, W., & Sutskever, I. (2015). An Empirical Exploration of
        Recurrent Network Architectures. ICML 2015.
    """

    bare_input = True

    def build(self, input_shape: tuple) -> None:
        input_dim = input_shape[-1]
        self._check_input_width(input_dim)
        self.W_xz = self.add_input_kernel("W_xz", input_dim)
        self.W_hz = self.add_recurrent_kernel("W_hz")
        self.b_z = self.add_bias("b_z")
        self.W_hr = self.add_recurrent_kernel("W_hr")
        self.b_r = self.add_bias("b_r")
        self.W_hh = self.add_recurrent_kernel("W_hh")
        self.W_xh = self.add_input_kernel("W_xh", input_dim)
        self.b_h = self.add_bias("b_h")

    def project_inputs(self, inputs: Any) -> Any:
        x_zh = ops.matmul(inputs, ops.concatenate([self.W_xz, self.W_xh], axis=1))
        x_z, x_h = ops.split(x_zh, 2, axis=-1)  # W_xz x, W_xh x
        x_r = inputs  # bare x
        return self.add_biases(
            ops.concatenate([x_z, x_r, x_h], axis=-1), self.b_z, self.b_r, self.b_h
        )

    def recurrent_weights(self) -> tuple:
        return (ops.concatenate([self.W_hz, self.W_hr], axis=1), self.W_hh)

    def step_saved(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> tuple:
        W_hzr, W_hh = recurrent_weights
        x_z, x_r, x_h = self.split_gates(projected_t)
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        h_z, h_r = ops.split(ops.matmul(h_in, W_hzr), 2, axis=-1)  # W_hz h, W_hr h
        z = ops.sigmoid(x_z + h_z)
        r = ops.sigmoid(x_r + h_r)
        candidate = ops.tanh(ops.matmul(r * h_in, W_hh) + x_h)
        return self.interpolate(candidate, z, h_tm1), (z, r, candidate)

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
        W_hzr_T, W_hh_T = transposed_weights
        h_in = self.masked(h_tm1, recurrent_mask)
        d_z_pre, d_r, d_c_pre, d_h_in, d_h = self.candidate_backward(
            saved, h_tm1, h_in, W_hh_T, dh_t
        )
        r = saved[1]
        d_zr_pre = ops.concatenate([d_z_pre, d_r * r * (1.0 - r)], axis=-1)
        d_h_in = d_h_in + ops.matmul(d_zr_pre, W_hzr_T)
        d_projected = ops.concatenate([d_zr_pre, d_c_pre], axis=-1)
        return d_projected, d_h + self.masked(d_h_in, recurrent_mask)

    def weight_gradients(
        self,
        h_prev: Any,
        saved: tuple,
        d_projected: Any,
        recurrent_weights: tuple,
        recurrent_mask: Any,
    ) -> tuple:
        units = self.units
        h_in = self.masked(h_prev, recurrent_mask)
        return (
            sequence_outer(h_in, d_projected[..., : 2 * units]),
            sequence_outer(saved[1] * h_in, d_projected[..., 2 * units :]),
        )


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT3Cell(MUTCellBase):
    """MUT3 cell (Jozefowicz, Zaremba & Sutskever, 2015).

    ```
    z   = σ(W_xz x_t + W_hz tanh(h_{t-1}) + b_z)
    r   = σ(W_xr x_t + W_hr h_{t-1} + b_r)
    h_t = tanh(W_hh (r ⊙ h_{t-1}) + W_xh x_t + b_h) ⊙ z + h_{t-1} ⊙ (1 − z)
    ```

    Weights (``(fan_in, fan_out)``): ``W_xz``, ``W_xr``, ``W_xh`` ``(input_dim, units)``;
    ``W_hz``, ``W_hr``, ``W_hh`` ``(units, units)``; ``b_z``, ``b_r``, ``b_h`` ``(units,)``.
    Any input width works.

    Args:
        units: Positive integer, size of the state ``h``.
        use_bias ... seed: as in ``seqlayers.ProjectedRNNCell``.
        **kwargs: Base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``(batch, input_dim)`` input of one step.
        states: list holding ``h_{t-1}``, ``(batch, units)``.
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``.

    Example:
    ```python
    y = keras.layers.RNN(MUT3Cell(16))(keras.random.normal((2, 5, 3)))  # (2, 16)
    ```

    Reference:
        Jozefowicz, R., Zaremba, W., & Sutskever, I. (2015). An Empirical Exploration of
        Recurrent Network Architectures. ICML 2015.
    """

    def build(self, input_shape: tuple) -> None:
        input_dim = input_shape[-1]
        self.W_xz = self.add_input_kernel("W_xz", input_dim)
        self.W_hz = self.add_recurrent_kernel("W_hz")
        self.b_z = self.add_bias("b_z")
        self.W_xr = self.add_input_kernel("W_xr", input_dim)
        self.W_hr = self.add_recurrent_kernel("W_hr")
        self.b_r = self.add_bias("b_r")
        self.W_hh = self.add_recurrent_kernel("W_hh")
        self.W_xh = self.add_input_kernel("W_xh", input_dim)
        self.b_h = self.add_bias("b_h")

    def project_inputs(self, inputs: Any) -> Any:
        kernel = ops.concatenate([self.W_xz, self.W_xr, self.W_xh], axis=1)
        # [W_xz x + b_z | W_xr x + b_r | W_xh x + b_h]
        return self.add_biases(ops.matmul(inputs, kernel), self.b_z, self.b_r, self.b_h)

    def recurrent_weights(self) -> tuple:
        return (self.W_hz, self.W_hr, self.W_hh)

    def step_saved(
        self, projected_t: Any, h_tm1: Any, recurrent_weights: tuple, recurrent_mask: Any = None
    ) -> tuple:
        W_hz, W_hr, W_hh = recurrent_weights
        x_z, x_r, x_h = self.split_gates(projected_t)
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        tanh_h = ops.tanh(h_tm1)
        if recurrent_mask is not None:
            tanh_h = tanh_h * recurrent_mask
        z = ops.sigmoid(x_z + ops.matmul(tanh_h, W_hz))
        r = ops.sigmoid(x_r + ops.matmul(h_in, W_hr))
        candidate = ops.tanh(ops.matmul(r * h_in, W_hh) + x_h)
        return self.interpolate(candidate, z, h_tm1), (z, r, candidate)

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
        W_hz_T, W_hr_T, W_hh_T = transposed_weights
        h_in = self.masked(h_tm1, recurrent_mask)
        d_z_pre, d_r, d_c_pre, d_h_in, d_h = self.candidate_backward(
            saved, h_tm1, h_in, W_hh_T, dh_t
        )
        r = saved[1]
        d_r_pre = d_r * r * (1.0 - r)
        d_h_in = d_h_in + ops.matmul(d_r_pre, W_hr_T)
        tanh_h = ops.tanh(h_tm1)
        d_tanh_h = self.masked(ops.matmul(d_z_pre, W_hz_T), recurrent_mask)
        d_h = d_h + self.masked(d_h_in, recurrent_mask) + d_tanh_h * (1.0 - tanh_h * tanh_h)
        return ops.concatenate([d_z_pre, d_r_pre, d_c_pre], axis=-1), d_h

    def weight_gradients(
        self,
        h_prev: Any,
        saved: tuple,
        d_projected: Any,
        recurrent_weights: tuple,
        recurrent_mask: Any,
    ) -> tuple:
        d_z_pre, d_r_pre, d_c_pre = self.split_gates(d_projected)
        h_in = self.masked(h_prev, recurrent_mask)
        tanh_h = self.masked(ops.tanh(h_prev), recurrent_mask)
        return (
            sequence_outer(tanh_h, d_z_pre),
            sequence_outer(h_in, d_r_pre),
            sequence_outer(saved[1] * h_in, d_c_pre),
        )


class MUTLayerBase(ProjectedRNN):
    """Shared constructor of the fast ``MUT1`` / ``MUT2`` / ``MUT3`` layers."""

    cell_class: type[MUTCellBase] = MUTCellBase
    cell_name = "mut_cell"
    _cell_args_in_config = True

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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        cell = self.cell_class(
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
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self.cell_name,
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


_LAYER_DOC = """Fast {name} layer over ``{name}Cell`` (like keras' ``GRU`` over ``GRUCell``).

    All input terms of the sequence ({terms}) are computed in one matmul before the recurrence;
    each step runs only the recurrent products. Outputs equal
    ``keras.layers.RNN({name}Cell(...))`` for the same weights.{width}

    Args:
        units: Positive integer, size of the state ``h``.
        use_bias ... seed: as in ``seqlayers.ProjectedRNNCell`` (dropout masks are drawn once
            per sequence).
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
    y = {name}(16, return_sequences=True)(keras.random.normal((2, 5, 16)))  # (2, 5, 16)
    ```

    Reference:
        Jozefowicz, R., Zaremba, W., & Sutskever, I. (2015). An Empirical Exploration of
        Recurrent Network Architectures. ICML 2015.
    """

_WIDTH_NOTE = "\n    The input width must equal ``units``."


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT1(MUTLayerBase):
    __doc__ = _LAYER_DOC.format(
        name="MUT1", terms="``W_xz x``, ``W_xr x``, ``tanh(x)``, biases", width=_WIDTH_NOTE
    )
    cell_class = MUT1Cell
    cell_name = "mut1_cell"


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT2(MUTLayerBase):
    __doc__ = _LAYER_DOC.format(
        name="MUT2", terms="``W_xz x``, ``x``, ``W_xh x``, biases", width=_WIDTH_NOTE
    )
    cell_class = MUT2Cell
    cell_name = "mut2_cell"


@keras.saving.register_keras_serializable(package="seqlayers")
class MUT3(MUTLayerBase):
    __doc__ = _LAYER_DOC.format(
        name="MUT3", terms="``W_xz x``, ``W_xr x``, ``W_xh x``, biases", width=""
    )
    cell_class = MUT3Cell
    cell_name = "mut3_cell"
