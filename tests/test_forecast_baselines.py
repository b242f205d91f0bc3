"""apps.forecast.baselines and metrics against hand computations on toy series."""

from __future__ import annotations

import numpy as np
import pytest

from apps.forecast import baselines as bl
from apps.forecast import metrics as mx

TOY = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])


def test_persistence_by_hand():
    np.testing.assert_array_equal(bl.persistence(TOY, np.array([3, 5]), 3),
                                  [[4, 4, 4], [6, 6, 6]])  # fmt: skip
    gappy = TOY.copy()
    gappy[5] = np.nan  # the last *observed* value before origin 5 is y[4] = 5
    np.testing.assert_array_equal(bl.persistence(gappy, np.array([5]), 2), [[5, 5]])


def test_seasonal_naive_by_hand():
    # S = 2, origin 5: h=1 -> y[4] = 5, h=2 -> y[5] = 6, h=3 -> y[4] = 5, h=4 -> y[5] = 6
    np.testing.assert_array_equal(bl.seasonal_naive(TOY, np.array([5]), 4, 2), [[5, 6, 5, 6]])
    # S = 3, origin 6: h=1 -> y[4], h=2 -> y[5], h=3 -> y[6], h=4 -> y[4]
    np.testing.assert_array_equal(bl.seasonal_naive(TOY, np.array([6]), 4, 3), [[5, 6, 7, 5]])
    gappy = TOY.copy()
    gappy[4] = np.nan  # the same phase one season earlier: y[2] = 3
    np.testing.assert_array_equal(bl.seasonal_naive(gappy, np.array([5]), 2, 2), [[3, 6]])
    # no earlier season at all: NaN, never a made-up value
    assert np.isnan(bl.seasonal_naive(TOY, np.array([0]), 2, 3)[0, 1])


def test_point_metrics_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.array([[2.0, 2.0], [1.0, np.nan]])
    m = mx.point_metrics(pred, truth, scale=2.0)
    assert m["mae"] == pytest.approx((1 + 0 + 2) / 3)
    assert m["rmse"] == pytest.approx(np.sqrt((1 + 0 + 4) / 3))
    assert m["mase"] == pytest.approx(0.5)
    assert m["mae_per_step"] == pytest.approx([1.5, 0.0])
    assert m["rmse_per_step"] == pytest.approx([np.sqrt(2.5), 0.0])
    assert m["mase_per_step"] == pytest.approx([0.75, 0.0])
    assert m["points"] == 3
    with pytest.raises(ValueError, match="NaN where the truth is known"):
        mx.point_metrics(np.array([[np.nan]]), np.array([[1.0]]), 1.0)


def test_mase_scale_coverage_and_pinball_by_hand():
    train = np.array([1.0, 3.0, 2.0, np.nan, 6.0])
    assert mx.mase_scale(train, None) == pytest.approx((2 + 1) / 2)  # pairs with a gap skipped
    assert mx.mase_scale(train, 2) == pytest.approx((1 + 4) / 2)
    assert mx.mase_scale(np.ones(5), 2) == 1.0
    c = mx.coverage(np.array([[0.0, 0.0]]), np.array([[2.0, 1.0]]), np.array([[1.0, 1.5]]))
    assert c["coverage"] == 0.5 and c["coverage_per_step"] == [1.0, 0.0]
    assert c["band_width"] == 1.5
    # q=0.1 under-forecast by 1 costs 0.1, q=0.9 over-forecast by 1 costs 0.1, median exact 0
    preds = np.array([[[0.0, 1.0, 2.0]]])
    assert mx.pinball(preds, np.array([[1.0]]), [0.1, 0.5, 0.9]) == pytest.approx(0.2 / 3)


def test_diebold_mariano_one_step_is_the_t_test_of_the_loss_differential():
    from scipy import stats

    rng = np.random.default_rng(1)
    truth = rng.standard_normal((40, 1))
    a = truth + 0.5 * rng.standard_normal((40, 1))
    b = truth + 0.6 * rng.standard_normal((40, 1))
    d = (np.abs(a - truth) - np.abs(b - truth))[:, 0]
    t = stats.ttest_1samp(d, 0.0)
    dm = mx.diebold_mariano(a, b, truth)
    assert dm["statistic"] == pytest.approx(t.statistic, rel=1e-9)
    assert dm["p_value"] == pytest.approx(t.pvalue, rel=1e-9)
    swapped = mx.diebold_mariano(b, a, truth)
    assert swapped["statistic"] == pytest.approx(-dm["statistic"])
    assert swapped["p_value"] == pytest.approx(dm["p_value"])


def test_diebold_mariano_multi_step_by_hand_and_edge_cases():
    truth = np.array([[0.0, 0.0], [1.0, np.nan], [2.0, 2.0], [3.0, 3.0], [np.nan, np.nan]])
    a = truth + np.array([[1.0, 0.0], [0.5, 0.0], [2.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    b = truth + np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    d = np.array([0.5, -1.0, 1.5, -2.0])  # per origin: mean over its observed steps; row 5 skipped
    c = d - d.mean()
    n, h = 4, 2
    v = (c @ c + 2 * 0.5 * (c[1:] @ c[:-1])) / n  # Bartlett weight 1 - 1/2 at lag 1
    stat = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n) * d.mean() / np.sqrt(v / n)
    dm = mx.diebold_mariano(a, b, truth)
    assert dm["statistic"] == pytest.approx(stat)
    from scipy import stats

    assert dm["p_value"] == pytest.approx(2 * stats.t.sf(abs(stat), n - 1))
    assert mx.diebold_mariano(a, a, truth) is None  # no difference to test
    assert mx.diebold_mariano(a[:2], b[:2], truth[:2]) is None  # too few origins
    # much smaller errors everywhere: a clear rejection, negative statistic
    rng = np.random.default_rng(2)
    y = rng.standard_normal((60, 3))
    good = mx.diebold_mariano(y + 0.1 * rng.standard_normal(y.shape), y + 1.0, y)
    assert good["statistic"] < 0 and good["p_value"] < 1e-6


def _seasonal_series(n: int = 150, season: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / season) + 0.3 * rng.standard_normal(n)
    y[[7, 90]] = np.nan
    return y


@pytest.mark.parametrize("kind", ["ets", "sarimax"])
def test_classical_forecasts_equal_statsmodels_own_forecast(kind):
    y = _seasonal_series()
    train_end = 100
    spec = bl.fit_classical(kind, y[:train_end], 12)
    assert spec["fit_start"] == 0 and np.isfinite(spec["params"]).all()
    origins = np.array([105, 120, 137])
    ours = bl.classical_forecast(spec, y, origins, 6, own_series=True)
    for row, o in zip(ours, origins):
        past = y[: o + 1]  # statsmodels' forecast from origin o, using only data <= o
        if kind == "ets":
            model = bl._ets_model(past, 12, bl.initial_states(past, 12))
        else:
            model = bl._sarimax_model(past, 12)
        expected = model.filter(np.asarray(spec["params"])).forecast(6)
        np.testing.assert_allclose(row, expected, rtol=1e-9, atol=1e-9)


def test_classical_fit_reads_only_the_training_period():
    y = _seasonal_series()
    poisoned = y.copy()
    poisoned[100:] = 1e6
    assert bl.fit_classical("ets", y[:100], 12) == bl.fit_classical("ets", poisoned[:100], 12)
    # and a forecast from origin o does not change when samples after o change
    spec = bl.fit_classical("ets", y[:100], 12)
    a = bl.classical_forecast(spec, y, np.array([110]), 4, own_series=True)
    b = bl.classical_forecast(spec, np.where(np.arange(150) > 110, -5.0, y), np.array([110]), 4,
                              own_series=True)  # fmt: skip
    np.testing.assert_allclose(a, b)


def test_ets_initial_states_need_complete_first_seasons():
    y = _seasonal_series()
    y[:12] = np.nan
    y[12:24] = np.nan  # two whole seasons missing: one phase never seen in the first span
    y[24:60:12] = np.nan
    with pytest.raises(ValueError, match="seasonal phase has no observed value"):
        bl.initial_states(y, 12)
    assert bl.heuristic_span(12) == 60 and bl.heuristic_span(None) == 10
