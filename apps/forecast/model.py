"""Forecasters over a fixed window of past samples, all with the same inputs and outputs.

Input: ``window`` float32 ``(batch, lookback, 2 C)`` — per sample and column its scaled value
(0 where missing) and an observed flag (:func:`apps.forecast.data.features`); column 0 is the
target. Output: float32 ``(batch, horizon, Q)`` — the scaled target's ``Q`` quantiles for each
future step, sorted along the last axis (the 0.5 quantile is the point forecast).

Models (``--model``):

- ``window-cnn`` — the lecture's opening (HIDRA, Žust et al. 2021): the window stacked into a
  tensor, 1-D convolutions over time, then dense layers emit the whole horizon at once;
- ``window-mlp`` — the window flattened into a dense network;
- ``vanilla``, ``lstm``, ``gru``, ``mut1..3``, ``genotype:PATH.json`` — a recurrent layer reads
  the window step by step (:func:`apps.common.cells.recurrent_layer`); its last state feeds a
  dense layer that emits the whole horizon;
- ``seq2seq`` — a recurrent encoder over the window and a recurrent decoder that runs one step
  per future sample (input: a learned embedding of the step number), optionally attending over
  the encoder outputs (``seqlayers.AttentionDecoder`` with ``BahdanauAttention``).

With ``level="last"`` (``"mean"``) every window is shifted by the last (the mean) of its observed
target values, with ``"drift"`` also by its mean seasonal slope (:class:`WindowLevel`), and that
level (plus drift) is added back to the outputs, so the networks learn departures, not absolute
levels (a trending series leaves the training range otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from apps.common.cells import make_cell, parse_cell_name, recurrent_layer
from apps.forecast.config import check_model_name  # noqa: F401  (re-exported)

PACKAGE = "apps.forecast"
# MUT1/MUT2 (and genotypes reading a bare x) add x_t itself to a units-wide pre-activation.
PROJECTED_KINDS = ("mut1", "mut2", "genotype")


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowLevel(keras.layers.Layer):
    """Shift each window by a level of its observed target values (optionally with a drift);
    the network forecasts departures from it, and the level (plus drift) is added back.

    With ``x_t`` the target channel (0), ``m_t`` its observed flag (channel 1), steps
    ``t = 0 .. L-1`` and ``tau = t - (L - 1)`` (0 at the last input step):

    ```
    mode="last":   a = x_k for the last k with m_k = 1,  b = 0
    mode="mean":   a = sum_t m_t x_t / sum_t m_t,        b = 0
    mode="drift":  a as for "last",  b = mean over observed pairs of (x_t - x_{t-S}) / S
    x'_t = (x_t - a - b tau_t) m_t          (other channels unchanged)
    offset_h = a + b h                      (added to the outputs of step h = 1 .. H)
    ```

    ``S`` is the season (1 without one): the mean seasonal difference is the slope of a
    seasonal series with a linear trend, unaffected by the seasonal cycle. ``a`` is 0 when
    nothing is observed; ``b`` is 0 without an observed pair.

    Args:
        mode: ``"last"``, ``"mean"`` or ``"drift"``.
        horizon: number of future steps (the offsets' length).
        season: ``S`` for ``"drift"`` (``None``: 1).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: ``(batch, lookback, channels)``, channels >= 2.

    Returns:
        ``(shifted, offsets)``: the shifted windows and the offsets ``(batch, horizon)``.

    Example:
        >>> x = np.array([[[1., 1.], [3., 1.], [0., 0.]]], "float32")
        >>> WindowLevel("last", 2)(x)    # offsets [[3, 3]], shifted x [[-2, 0, 0]]
        >>> WindowLevel("mean", 2)(x)    # offsets [[2, 2]], shifted x [[-1, 1, 0]]
        >>> WindowLevel("drift", 2)(x)   # slope 2 through 3 at tau=-1: offsets [[7, 9]], x' 0
    """

    int8_float_ops = True  # absolute levels: export.tflite keeps these ops float in int8

    def __init__(self, mode: str = "last", horizon: int = 1, season: int | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if mode not in ("last", "mean", "drift"):
            raise ValueError(f"mode must be 'last', 'mean' or 'drift'. Received: mode={mode!r}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1. Received: horizon={horizon}")
        if season is not None and (not isinstance(season, int) or season < 1):
            raise ValueError(f"season must be an integer >= 1 or None. Received: season={season}")
        self.mode = mode
        self.horizon = horizon
        self.season = season

    def call(self, inputs: Any) -> tuple[Any, Any]:
        values, observed = inputs[:, :, 0], inputs[:, :, 1]
        steps = ops.shape(inputs)[1]
        dtype = inputs.dtype
        tau = ops.cast(ops.arange(steps), dtype) - ops.cast(steps - 1, dtype)  # ..., -1, 0
        ahead = ops.cast(ops.arange(1, self.horizon + 1), dtype)
        if self.mode == "mean":
            count = ops.sum(observed, axis=1, keepdims=True)
            level = ops.sum(values * observed, axis=1, keepdims=True) / ops.maximum(count, 1.0)
        else:
            # the last observed step, without argmax (keeps the graph TFLite-builtin)
            position = ops.cast(ops.arange(steps), dtype)[None, :]
            last = ops.max(position * observed, axis=1, keepdims=True)
            pick = ops.cast(ops.equal(position, last), dtype) * observed
            level = ops.sum(values * pick, axis=1, keepdims=True)
            level_tau = ops.sum(tau[None, :] * pick, axis=1, keepdims=True)
        slope = ops.zeros_like(level)
        if self.mode == "drift":
            lag = self.season or 1
            both = observed[:, lag:] * observed[:, :-lag]
            diffs = (values[:, lag:] - values[:, :-lag]) * both
            pairs = ops.sum(both, axis=1, keepdims=True)
            slope = ops.sum(diffs, axis=1, keepdims=True) / ops.maximum(pairs, 1.0) / lag
            level = level - slope * level_tau  # the line through the last observed value
        shifted = (values - level - slope * tau) * observed
        out = ops.concatenate([shifted[:, :, None], inputs[:, :, 1:]], axis=-1)
        return out, level + slope * ahead[None, :]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape, (input_shape[0], self.horizon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "horizon": self.horizon,
                "season": self.season}  # fmt: skip


@keras.saving.register_keras_serializable(package=PACKAGE)
class HorizonSteps(keras.layers.Layer):
    """One-hot step numbers ``(batch, horizon, horizon)``: the decoder inputs of ``seq2seq``.

    Args:
        horizon: number of future steps.

    Call arguments:
        inputs: any tensor whose first axis is the batch.

    Returns:
        float32 ``(batch, horizon, horizon)``; row ``h`` is ``e_h``.
    """

    def __init__(self, horizon: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1. Received: horizon={horizon}")
        self.horizon = horizon

    def call(self, inputs: Any) -> Any:
        eye = ops.eye(self.horizon, dtype=self.compute_dtype)
        return ops.broadcast_to(eye[None], (ops.shape(inputs)[0], self.horizon, self.horizon))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.horizon, self.horizon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileOutput(keras.layers.Layer):
    """Add the window's level back and sort the quantiles, so that bands never cross.

    Call arguments:
        inputs: ``pred (batch, horizon, Q)``, or ``[pred, offset, ...]`` with each offset
            ``(batch, horizon)`` (one per step, e.g. :class:`WindowLevel`'s) or ``(batch, 1)``;
            every offset is added to all Q quantiles.

    Returns:
        ``sort(pred + sum(offsets), axis=-1)``, ``(batch, horizon, Q)``.

    Example:
        >>> QuantileOutput()([np.array([[[2., 1.]]]), np.array([[10.]])])  # [[[11., 12.]]]
    """

    int8_float_ops = True  # absolute levels: export.tflite keeps these ops float in int8

    def call(self, inputs: Any) -> Any:
        # Sorting first gives the same result (an offset shared by all Q quantiles keeps their
        # order) and keeps the sort on the level-free values: a full-integer export quantizes
        # the sort with ranges calibrated on training windows, and only the final additions
        # carry the series' absolute level (they stay float there, see ``int8_float_ops``).
        if isinstance(inputs, (list, tuple)):
            pred = ops.sort(inputs[0], axis=-1)
            for offset in inputs[1:]:
                pred = pred + offset[:, :, None]
            return pred
        return ops.sort(inputs, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[0]) if isinstance(input_shape, list) else tuple(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PinballLoss(keras.losses.Loss):
    """Mean pinball (quantile) loss over the observed targets of each window.

    ``rho_q(u) = max(q u, (q - 1) u)`` with ``u = y - y_hat_q``; missing targets (NaN) are left
    out; a window with none contributes 0.

    Args:
        quantiles: the Q quantiles, in the order of the model's last axis.

    Call arguments:
        y_true: ``(batch, horizon)`` with NaN for missing targets.
        y_pred: ``(batch, horizon, Q)``.

    Example:
        >>> PinballLoss([0.5])(np.array([[1.0]]), np.array([[[0.0]]]))  # 0.5
    """

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), name: str = "pinball",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(name=name, **kwargs)
        qs = [float(q) for q in quantiles]
        if not qs or any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError(f"quantiles must be in (0, 1). Received: quantiles={quantiles}")
        self.quantiles = qs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        known = ops.logical_not(ops.isnan(y_true))
        y = ops.where(known, y_true, ops.zeros_like(y_true))
        q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
        diff = y[:, :, None] - y_pred
        loss = ops.maximum(q * diff, (q - 1.0) * diff)
        weight = ops.cast(known, y_pred.dtype)[:, :, None]
        total = ops.sum(loss * weight, axis=(1, 2))
        count = ops.sum(weight, axis=(1, 2)) * len(self.quantiles)
        return total / ops.maximum(count, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "quantiles": self.quantiles}


def _head(x: Any, horizon: int, n_q: int, dropout: float, seed: int | None) -> Any:
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    x = keras.layers.Dense(horizon * n_q, name="head")(x)
    return keras.layers.Reshape((horizon, n_q), name="quantiles_raw")(x)


def build_model(
    name: str,
    lookback: int,
    n_features: int,
    horizon: int,
    quantiles: Sequence[float],
    *,
    units: int = 32,
    cell: str = "gru",
    attention: bool = False,
    dropout: float = 0.0,
    level: str = "last",
    season: int | None = None,
    seed: int | None = None,
) -> keras.Model:
    """A forecaster ``window (B, lookback, n_features) -> quantiles (B, horizon, Q)``.

    Args:
        name: ``window-cnn``, ``window-mlp``, ``seq2seq`` or a recurrent cell name.
        lookback: window length L.
        n_features: channels per step (``2 C``: value and observed flag per column).
        horizon: future steps H.
        quantiles: the Q quantiles (the output's last axis, sorted).
        units: recurrent units / CNN filters / half the MLP width.
        cell: ``seq2seq``'s encoder and decoder cell.
        attention: ``seq2seq``'s decoder attends over the encoder outputs.
        dropout: dropout before the output layer.
        level: ``"last"`` / ``"mean"`` / ``"drift"``: predict departures from the window's last
            observed value / mean / last value plus its mean seasonal drift
            (:class:`WindowLevel`); ``"none"``: raw scaled values.
        season: the season of ``level="drift"`` (``None``: first differences).
        seed: weight / dropout seed.

    Returns:
        An uncompiled ``keras.Model`` named after ``name``.

    Example:
        >>> model = build_model("gru", 24, 2, 6, [0.1, 0.5, 0.9], units=8)
        >>> model(np.zeros((3, 24, 2), "float32")).shape
        (3, 6, 3)
    """
    if lookback < 2 or horizon < 1 or n_features < 2 or units < 1:
        raise ValueError(
            "lookback must be >= 2, horizon >= 1, n_features >= 2, units >= 1. Received: "
            f"lookback={lookback}, horizon={horizon}, n_features={n_features}, units={units}"
        )
    if level not in ("last", "mean", "drift", "none"):
        raise ValueError(
            f"level must be 'last', 'mean', 'drift' or 'none'. Received: level={level!r}"
        )
    n_q = len(quantiles)
    window = keras.Input((lookback, n_features), name="window")
    x, lvl = window, None
    if level != "none":
        x, lvl = WindowLevel(level, horizon, season, name="window_level")(window)

    if name == "window-cnn":
        h = keras.layers.Conv1D(units, 5, padding="same", activation="relu", name="conv1")(x)
        h = keras.layers.MaxPooling1D(2, padding="same", name="pool1")(h)
        h = keras.layers.Conv1D(units, 3, padding="same", activation="relu", name="conv2")(h)
        h = keras.layers.MaxPooling1D(2, padding="same", name="pool2")(h)
        h = keras.layers.Flatten(name="flatten")(h)
        h = keras.layers.Dense(2 * units, activation="relu", name="dense")(h)
        out = _head(h, horizon, n_q, dropout, seed)
    elif name == "window-mlp":
        h = keras.layers.Flatten(name="flatten")(x)
        h = keras.layers.Dense(2 * units, activation="relu", name="dense1")(h)
        h = keras.layers.Dense(2 * units, activation="relu", name="dense2")(h)
        out = _head(h, horizon, n_q, dropout, seed)
    elif name == "seq2seq":
        out = _seq2seq(x, horizon, n_q, cell, units, attention, dropout, seed)
    else:
        spec = parse_cell_name(name, flag="--model", allow_bidirectional=False)
        if spec.kind in PROJECTED_KINDS:
            x = keras.layers.Dense(units, name="input_projection")(x)
        h = recurrent_layer(name, units, seed=seed, name="encoder")(x)
        out = _head(h, horizon, n_q, dropout, seed)
    out = QuantileOutput(name="quantiles")([out, lvl] if lvl is not None else out)
    model_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return keras.Model(window, out, name=f"forecast_{model_name}")


def _seq2seq(x: Any, horizon: int, n_q: int, cell: str, units: int, attention: bool,
             dropout: float, seed: int | None) -> Any:  # fmt: skip
    import seqlayers

    spec = parse_cell_name(cell, flag="--cell", allow_bidirectional=False)
    if spec.kind in PROJECTED_KINDS:
        x = keras.layers.Dense(units, name="input_projection")(x)
    encoded = recurrent_layer(cell, units, return_sequences=True, return_state=True, seed=seed,
                              name="encoder")(x)  # fmt: skip
    values, states = encoded[0], list(encoded[1:])
    steps = HorizonSteps(horizon, name="horizon_steps")(x)
    steps = keras.layers.Dense(units, name="step_embedding")(steps)
    if attention:
        dec_cell = seqlayers.AttentionDecoderCell(make_cell(cell, units, seed=seed),
                                                  name="decoder_cell")  # fmt: skip
        h, _, _ = seqlayers.AttentionDecoder(dec_cell, name="decoder")(
            steps, values, initial_state=states
        )
    else:
        h = keras.layers.RNN(make_cell(cell, units, seed=seed), return_sequences=True,
                             name="decoder")(steps, initial_state=states)  # fmt: skip
    if dropout:
        h = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(h)
    return keras.layers.Dense(n_q, name="head")(h)


def compile_model(model: keras.Model, quantiles: Sequence[float], learning_rate: float) -> None:
    """Adam with gradient clipping, the masked pinball loss."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=PinballLoss(quantiles),
    )
