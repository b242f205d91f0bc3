"""apps.forecast.model: exact values of the app's layers and loss, every model's shapes, and a
safe-mode save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import seqlayers  # noqa: F401  (registers the seqlayers layers)
from apps.forecast.model import (
    HorizonSteps,
    PinballLoss,
    QuantileOutput,
    WindowLevel,
    build_model,
)

QS = [0.1, 0.5, 0.9]


def _window(values, observed):
    return np.stack([np.asarray(values, "float32"), np.asarray(observed, "float32")], -1)[None]


def test_window_level_last_mean_and_trend_skip_missing_steps():
    x = _window([1.0, 3.0, 0.0, 0.0], [1, 1, 0, 0])  # the last two steps are gaps
    shifted, offsets = WindowLevel("last", 2)(x)
    np.testing.assert_allclose(offsets, [[3.0, 3.0]])
    np.testing.assert_allclose(shifted[0, :, 0], [-2.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(shifted[0, :, 1], [1, 1, 0, 0])  # flags pass through
    shifted, offsets = WindowLevel("mean", 2)(x)
    np.testing.assert_allclose(offsets, [[2.0, 2.0]])
    np.testing.assert_allclose(shifted[0, :, 0], [-1.0, 1.0, 0.0, 0.0])
    # drift: first differences (no season) of the observed pair: 2; the line through the last
    # observed value (3 at tau=-2) reaches 7 at tau=0 -> 9, 11 ahead
    shifted, offsets = WindowLevel("drift", 2)(x)
    np.testing.assert_allclose(offsets, [[9.0, 11.0]], rtol=1e-6)
    np.testing.assert_allclose(shifted[0, :, 0], [0.0, 0.0, 0.0, 0.0], atol=1e-6)
    # season 2: pairs (t, t-2) = (2, 0): 5-1, (3, 1): 10-2 -> mean 6 / 2 = 3 per step
    x2 = _window([1.0, 2.0, 5.0, 10.0], [1, 1, 1, 1])
    shifted, offsets = WindowLevel("drift", 1, season=2)(x2)
    np.testing.assert_allclose(offsets, [[13.0]], rtol=1e-6)
    np.testing.assert_allclose(shifted[0, :, 0], [0.0, -2.0, -2.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="mode must be"):
        WindowLevel("median")


def test_horizon_steps_and_quantile_output():
    steps = HorizonSteps(3)(np.zeros((2, 5, 4), "float32"))
    np.testing.assert_array_equal(steps[1], np.eye(3))
    pred = np.array([[[2.0, 1.0, 3.0], [0.0, -1.0, 5.0]]], "float32")
    out = QuantileOutput()([pred, np.array([[10.0]], "float32"),
                            np.array([[1.0, 2.0]], "float32")])  # fmt: skip
    np.testing.assert_allclose(out, [[[12.0, 13.0, 14.0], [11.0, 12.0, 17.0]]])


def test_pinball_loss_exact_and_masks_missing_targets():
    loss = PinballLoss(QS)
    y_pred = np.array([[[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]], "float32")
    y_true = np.array([[1.0, np.nan]], "float32")
    # step 1: q0.1 under by 1 -> 0.1, median exact -> 0, q0.9 over by 1 -> 0.1; step 2 masked
    assert float(loss(y_true, y_pred)) == pytest.approx(0.2 / 3, rel=1e-6)
    y_true2 = np.array([[-1.0, 2.0]], "float32")
    expected = (np.mean([0.9 * 1, 0.5 * 2, 0.1 * 3]) + np.mean([0.1 * 2, 0.5 * 2, 0.9 * 2])) / 2
    assert float(loss(y_true2, y_pred)) == pytest.approx(expected, rel=1e-6)
    assert PinballLoss.from_config(loss.get_config()).quantiles == QS


@pytest.mark.parametrize(
    "name, kwargs",
    [("window-cnn", {}), ("window-mlp", {}), ("vanilla", {}), ("lstm", {}), ("gru", {}),
     ("mut1", {}), ("mut2", {}), ("mut3", {}), ("seq2seq", {}),
     ("seq2seq", {"attention": True, "cell": "lstm"}), ("gru", {"level": "mean"}),
     ("lstm", {"level": "drift", "season": 4}), ("window-mlp", {"level": "none"})],
)  # fmt: skip
def test_every_model_maps_windows_to_sorted_quantiles(name, kwargs):
    model = build_model(name, 12, 2, 4, QS, units=6, seed=1, **kwargs)
    rng = np.random.default_rng(0)
    x = np.stack([rng.standard_normal((3, 12)), np.ones((3, 12))], -1).astype("float32")
    y = np.asarray(model(x))
    assert y.shape == (3, 4, 3)
    assert np.all(np.diff(y, axis=-1) >= 0)


@pytest.mark.parametrize("name", ["window-cnn", "gru", "seq2seq"])
def test_level_shift_moves_every_quantile_by_the_same_amount(name):
    model = build_model(name, 10, 2, 3, QS, units=5, seed=2, level="last")
    rng = np.random.default_rng(1)
    x = np.stack([rng.standard_normal((2, 10)), np.ones((2, 10))], -1).astype("float32")
    shifted = x.copy()
    shifted[:, :, 0] += 7.0
    np.testing.assert_allclose(model(shifted), np.asarray(model(x)) + 7.0, atol=1e-5)


def test_drift_level_extends_an_added_line_into_the_forecast():
    model = build_model("gru", 10, 2, 3, QS, units=5, seed=2, level="drift", season=4)
    rng = np.random.default_rng(1)
    x = np.stack([rng.standard_normal((2, 10)), np.ones((2, 10))], -1).astype("float32")
    ramped = x.copy()
    ramped[:, :, 0] += 0.5 * np.arange(-9, 1)  # a line, 0 at the last input step
    expected = np.asarray(model(x)) + (0.5 * np.arange(1, 4))[None, :, None]
    np.testing.assert_allclose(model(ramped), expected, atol=1e-4)


def test_safe_mode_round_trip(tmp_path):
    model = build_model("seq2seq", 8, 2, 3, QS, units=4, attention=True, level="drift", seed=3)
    x = np.random.default_rng(2).standard_normal((2, 8, 2)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lookback must be >= 2"):
        build_model("gru", 1, 2, 3, QS)
    with pytest.raises(ValueError, match="level must be"):
        build_model("gru", 8, 2, 3, QS, level="first")
    with pytest.raises(ValueError, match="horizon must be"):
        HorizonSteps(0)
