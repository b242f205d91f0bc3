"""Forecast baselines measured beside every model: persistence, seasonal naive, and a classical
statsmodels model (ETS or SARIMAX) fitted on the training period.

Every function forecasts ``horizon`` steps from each origin ``o`` (the last known sample) and
returns ``(len(origins), horizon)`` in data units. They read only samples ``<= o``.

- persistence: ``y_hat[o + h] = y[o']`` with ``o'`` the last observed sample ``<= o``;
- seasonal naive (season ``S``): ``y_hat[o + h] = y[o + h - k S]`` with ``k = ceil(h / S)``
  (the last observed season repeated); when that sample is missing, the same phase one more
  season back is used (``k + 1``, ...), and NaN is returned when no earlier season is observed;
- classical: the statsmodels state-space model fitted by maximum likelihood on the training
  period; then filtered with those parameters over the series, and the ``h``-step forecasts
  from each origin are computed from the one-step predicted state ``a_{o+1|o}`` (only data
  ``<= o``) as ``y_hat[o + h] = Z T^{h-1} a_{o+1|o} + d`` — exactly statsmodels' own
  ``forecast`` from that origin, for every origin at once. Gaps are handled by the Kalman
  filter (a missing sample skips its update).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

MAX_CLASSICAL_FIT = 20000  # fit the classical model on at most this many training samples


def last_observed_index(target: np.ndarray) -> np.ndarray:
    """For each sample, the index of the last observed sample at or before it (-1: none)."""
    idx = np.where(np.isfinite(target), np.arange(len(target)), -1)
    return np.maximum.accumulate(idx)


def persistence(target: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value at or before each origin, for every step."""
    last = last_observed_index(target)[origins]
    values = np.where(last >= 0, target[np.maximum(last, 0)], np.nan)
    return np.repeat(values[:, None], horizon, axis=1)


def seasonal_naive(
    target: np.ndarray, origins: np.ndarray, horizon: int, season: int
) -> np.ndarray:
    """``y[o + h - k S]`` with ``k = ceil(h / S)``, one season further back for a gap."""
    if season < 1:
        raise ValueError(f"season must be >= 1. Received: season={season}")
    out = np.full((len(origins), horizon), np.nan)
    for h in range(1, horizon + 1):
        k = math.ceil(h / season)
        src = origins + h - k * season
        todo = np.ones(len(origins), dtype=bool)
        while todo.any():
            ok = todo & (src >= 0)
            if not ok.any():
                break
            vals = np.where(ok, target[np.maximum(src, 0)], np.nan)
            hit = ok & np.isfinite(vals)
            out[hit, h - 1] = vals[hit]
            todo &= ~hit & (src >= 0)
            src = src - season
    return out


# ----------------------------------------------------------------------------- classical
def heuristic_span(season: int | None) -> int:
    """Samples that statsmodels' heuristic ETS initialisation reads from the series start."""
    if not season:
        return 10
    min_obs = 10 + 2 * (season // 2)
    return season * max(5, math.ceil(min_obs / season))


def initial_states(
    values: np.ndarray, season: int | None
) -> tuple[float, float, list[float] | None]:
    """ETS initial states from the first seasons of a series, gaps skipped.

    The heuristic of Hyndman & Athanasopoulos (FPP3, section 8.6; statsmodels'
    ``initialization_method="heuristic"``), made gap-tolerant: a centred moving average of one
    season gives the trend; the mean detrended value per phase (normalised to sum 0) gives the
    seasonal factors; a straight line through the first ten seasonally adjusted values gives the
    initial level and slope. Reads only the first :func:`heuristic_span` samples.

    Returns:
        ``(level, trend, seasonal)``; ``seasonal`` ordered as statsmodels' state (most recent
        phase first), ``None`` without a season.

    Raises:
        ValueError: too few observed samples in the span to estimate them.
    """
    span = heuristic_span(season)
    x = np.asarray(values[:span], dtype=np.float64)
    if len(x) < span:
        raise ValueError(f"needs at least {span} samples to start exponential smoothing")
    seasonal = None
    adjusted = x
    if season:
        window = season + (season % 2 == 0)  # a centred 2xS average for even seasons
        weights = np.ones(window)
        if season % 2 == 0:
            weights[0] = weights[-1] = 0.5
        observed = np.isfinite(x)
        num = np.convolve(np.where(observed, x, 0.0), weights, "valid")
        den = np.convolve(observed.astype(np.float64), weights, "valid")
        trend = np.full(len(x), np.nan)
        half = window // 2
        with np.errstate(invalid="ignore", divide="ignore"):
            trend[half : half + len(num)] = np.where(den >= weights.sum() / 2, num / den, np.nan)
        detrended = x - trend
        phases = detrended.reshape(-1, season)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            factors = np.nanmean(phases, axis=0)
        if not np.isfinite(factors).all():
            raise ValueError("a seasonal phase has no observed value in the first seasons")
        factors -= factors.mean()
        seasonal = [float(v) for v in factors[::-1]]
        adjusted = trend
    where = np.flatnonzero(np.isfinite(adjusted))[:10]
    if len(where) < 2:
        raise ValueError("too few observed samples in the first seasons to start smoothing")
    # level and slope at t = 0 (just before the first sample), from samples at t = index + 1
    slope, intercept = np.polyfit(where + 1.0, adjusted[where], 1)
    return float(intercept), float(slope), seasonal


def _ets_model(values: np.ndarray, season: int | None, states: Any) -> Any:
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

    level, trend, seasonal = states
    return ExponentialSmoothing(
        values, trend=True, seasonal=season or None, initialization_method="known",
        initial_level=level, initial_trend=trend, initial_seasonal=seasonal,
    )  # fmt: skip


def _sarimax_model(values: np.ndarray, season: int | None) -> Any:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = (0, 1, 1, season) if season else (0, 0, 0, 0)
    return SARIMAX(values, order=(1, 1, 1), seasonal_order=seasonal)


def fit_classical(kind: str, train: np.ndarray, season: int | None) -> dict[str, Any]:
    """Fit the classical model on the training period; returns a JSON-ready spec.

    ETS: additive trend and additive season ``season`` (statsmodels' state-space
    ``ExponentialSmoothing``), initial states from :func:`initial_states` (the first seasons),
    smoothing weights by maximum likelihood. SARIMAX: ``(1,1,1) x (0,1,1,S)`` by maximum
    likelihood. Only the last :data:`MAX_CLASSICAL_FIT` training samples are used.

    Args:
        kind: ``"ets"`` or ``"sarimax"``.
        train: the training period of the target (NaN = gap).
        season: seasonal period, or ``None``.

    Returns:
        ``{"kind", "season", "params", "param_names", "fit_start"}``.

    Raises:
        ValueError: ETS cannot start (too few observed samples in the first seasons).
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    fit_start = max(0, len(train) - MAX_CLASSICAL_FIT)
    data = np.asarray(train[fit_start:], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "ets":
            res = _ets_model(data, season, initial_states(data, season)).fit(disp=False)
        elif kind == "sarimax":
            res = _sarimax_model(data, season).fit(disp=False)
        else:
            raise ValueError(f"kind must be 'ets' or 'sarimax'. Received: kind={kind!r}")
    return {"kind": kind, "season": season, "params": [float(p) for p in res.params],
            "param_names": list(res.model.param_names), "fit_start": int(fit_start)}  # fmt: skip


def classical_warmup(spec: dict[str, Any]) -> int:
    """Samples from a series' start that the classical model reads before its first origin
    free of look-ahead (ETS: the initial states come from them)."""
    return heuristic_span(spec["season"]) if spec["kind"] == "ets" else 0


def classical_forecast(
    spec: dict[str, Any],
    target: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    *,
    own_series: bool,
) -> np.ndarray:
    """Forecasts of the fitted classical model from every origin.

    Args:
        spec: from :func:`fit_classical`.
        target: the whole target series (NaN = gap).
        origins: forecast origins (indices into ``target``).
        horizon: steps ahead.
        own_series: ``target`` is the series the model was fitted on (filtering starts where
            the fit started); otherwise a new series, filtered from its first sample (ETS
            takes its initial states from the first :func:`classical_warmup` samples, so only
            origins from there on are free of look-ahead).

    Returns:
        ``(len(origins), horizon)`` forecasts; NaN for origins before the filter's start.

    Raises:
        ValueError: ETS cannot start on this series (gaps in its first seasons).
    """
    start = spec["fit_start"] if own_series else 0
    values = np.asarray(target[start:], dtype=np.float64)
    params = np.asarray(spec["params"])
    if spec["kind"] == "ets":
        model = _ets_model(values, spec["season"], initial_states(values, spec["season"]))
    else:
        model = _sarimax_model(values, spec["season"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = model.filter(params).filter_results
    local = origins - start
    out = np.full((len(origins), horizon), np.nan)
    ok = local >= 0
    if not ok.any():
        return out
    a = fr.predicted_state[:, local[ok] + 1]  # a_{o+1|o}
    Z, T = fr.design[:, :, 0], fr.transition[:, :, 0]
    d, c = fr.obs_intercept[:, 0], fr.state_intercept[:, 0]
    for h in range(horizon):
        out[ok, h] = (Z @ a)[0] + d[0]
        a = T @ a + c[:, None]
    return out


def all_baselines(
    target: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    season: int | None,
    classical: dict[str, Any] | None,
    *,
    own_series: bool,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Forecasts of every baseline, ``{name: (n, H)}``, and notes on the ones left out."""
    preds = {"persistence": persistence(target, origins, horizon)}
    notes: dict[str, str] = {}
    if season:
        preds["seasonal_naive"] = seasonal_naive(target, origins, horizon, season)
    else:
        notes["seasonal_naive"] = "no season (give --season S)"
    if classical is not None:
        try:
            preds[classical["kind"]] = classical_forecast(
                classical, target, origins, horizon, own_series=own_series
            )
        except ValueError as e:
            notes[classical["kind"]] = str(e)
    return preds, notes
