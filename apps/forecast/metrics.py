"""Forecast metrics: MAE, RMSE and MASE per horizon step, coverage of a quantile band, pinball,
and the Diebold-Mariano test of two forecasts' MAE.

All take forecasts and truths in data units, shape ``(origins, horizon)``; a missing truth
(NaN) is left out of every figure (it is never compared with anything).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def mase_scale(train_target: np.ndarray, season: int | None) -> float:
    """Mean absolute error of the in-sample (seasonal) naive forecast on the training period:
    ``mean |y_t - y_{t-m}|`` over pairs with both values observed, ``m = season or 1``
    (Hyndman & Koehler 2006). 1.0 when it is 0 or undefined, so MASE stays finite."""
    m = season or 1
    y = np.asarray(train_target, dtype=np.float64)
    if len(y) <= m:
        return 1.0
    diffs = np.abs(y[m:] - y[:-m])
    diffs = diffs[np.isfinite(diffs)]
    scale = float(diffs.mean()) if len(diffs) else 0.0
    return scale if scale > 0 else 1.0


def _masked(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ. Received: {pred.shape} and {truth.shape}")
    return pred, truth


def point_metrics(pred: np.ndarray, truth: np.ndarray, scale: float) -> dict[str, Any]:
    """MAE, RMSE and MASE overall and per horizon step.

    Args:
        pred: forecasts ``(n, H)``.
        truth: truths ``(n, H)``, NaN where missing.
        scale: the MASE denominator (:func:`mase_scale`).

    Returns:
        ``{"mae", "rmse", "mase", "mae_per_step", "rmse_per_step", "mase_per_step",
        "points"}``; a step without any observed truth reports ``None``. A forecast that is NaN
        where the truth is known raises ``ValueError`` (every method must forecast every
        point it is compared on).
    """
    pred, truth = _masked(pred, truth)
    known = np.isfinite(truth)
    if np.isnan(pred[known]).any():
        raise ValueError("a forecast is NaN where the truth is known")
    err = np.where(known, pred - truth, 0.0)
    count = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae_h = np.abs(err).sum(axis=0) / count
        rmse_h = np.sqrt((err**2).sum(axis=0) / count)
    total = int(known.sum())
    mae = float(np.abs(err).sum() / total) if total else None
    rmse = float(np.sqrt((err**2).sum() / total)) if total else None

    def listed(values: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in values]

    return {
        "mae": mae,
        "rmse": rmse,
        "mase": None if mae is None else mae / scale,
        "mae_per_step": listed(mae_h),
        "rmse_per_step": listed(rmse_h),
        "mase_per_step": listed(mae_h / scale),
        "points": total,
    }


def coverage(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Share of observed truths inside ``[lower, upper]``, overall and per step."""
    lower, truth = _masked(lower, truth)
    upper = np.asarray(upper, dtype=np.float64)
    known = np.isfinite(truth)
    inside = (truth >= lower) & (truth <= upper) & known
    count = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_step = inside.sum(axis=0) / count
    total = int(known.sum())
    return {
        "coverage": float(inside.sum() / total) if total else None,
        "coverage_per_step": [float(v) if np.isfinite(v) else None for v in per_step],
        "band_width": float(np.mean((upper - lower)[known])) if total else None,
    }


def pinball(
    quantile_preds: np.ndarray, truth: np.ndarray, quantiles: Sequence[float]
) -> float | None:
    """Mean pinball (quantile) loss over observed truths and all quantiles.

    ``rho_q(y - y_hat) = max(q (y - y_hat), (q - 1) (y - y_hat))``.
    """
    preds = np.asarray(quantile_preds, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    known = np.isfinite(truth)
    if not known.any():
        return None
    q = np.asarray(quantiles, dtype=np.float64)
    diff = truth[..., None] - preds
    loss = np.maximum(q * diff, (q - 1.0) * diff)
    return float(loss[known].mean())


def diebold_mariano(
    pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray
) -> dict[str, float] | None:
    """Diebold-Mariano test of equal MAE for two forecasts of the same points.

    Per origin, the loss differential is ``d_o = mean_h |a - y| - mean_h |b - y|`` over the
    observed truths of its horizon; the test statistic is ``mean(d) / sqrt(V / n)``, with ``V``
    the long-run variance of ``d`` (Newey-West, Bartlett weights, ``H - 1`` lags: forecasts
    from origins less than ``H`` apart share targets), times the small-sample correction of
    Harvey, Leybourne & Newbold (1997); the two-sided p-value is from Student's t with
    ``n - 1`` degrees of freedom (Diebold & Mariano 1995).

    Args:
        pred_a, pred_b: forecasts ``(n, H)``.
        truth: truths ``(n, H)``, NaN where missing.

    Returns:
        ``{"statistic", "p_value"}`` — a negative statistic means ``a`` has the smaller
        errors; ``None`` with fewer than 3 origins or no variation in ``d``.
    """
    from scipy import stats

    pred_a, truth = _masked(pred_a, truth)
    pred_b = np.asarray(pred_b, dtype=np.float64)
    known = np.isfinite(truth)
    rows = known.any(axis=1)
    diff = np.where(known, np.abs(pred_a - truth) - np.abs(pred_b - truth), 0.0)
    d = diff[rows].sum(axis=1) / known[rows].sum(axis=1)
    n, horizon = len(d), truth.shape[1]
    if n < 3:
        return None
    centred = d - d.mean()
    variance = centred @ centred / n
    for lag in range(1, min(horizon, n)):
        weight = 1.0 - lag / horizon
        variance += 2.0 * weight * (centred[lag:] @ centred[:-lag]) / n
    if not variance > 1e-300:
        return None
    correction = math.sqrt(max(n + 1 - 2 * horizon + horizon * (horizon - 1) / n, 1.0) / n)
    statistic = correction * d.mean() / math.sqrt(variance / n)
    return {"statistic": float(statistic), "p_value": float(2 * stats.t.sf(abs(statistic), n - 1))}
