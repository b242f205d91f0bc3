"""Train, evaluate and use a forecaster in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train``, the
main job and the end-to-end test call it): it loads the series, splits it by time, fits the
scaler and the classical baseline on the training period only (``scaler.json``,
``baselines.json``), trains resumably (:mod:`apps.common.training`; Adam with the pinball loss,
the learning rate halved after 10 epochs without a better validation loss, the best epoch on
the validation period kept), then evaluates the best model and every baseline on the test period (``metrics.json``) and draws the forecast of the last
test window (``plots/forecast.png``).

Run-dir files of this app besides the common ones: ``scaler.json`` (per-column mean and standard
deviation of the training period), ``baselines.json`` (the fitted classical model's parameters,
the season and the MASE scale), ``samples/forecast.csv`` (the forecast verb's output).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError, RunDirError
from apps.common.rundir import RunDir, atomic_write_json
from apps.forecast import baselines as bl
from apps.forecast import metrics as mx
from apps.forecast.config import ForecastConfig
from apps.forecast.data import (
    Scaler,
    Series,
    chronological_split,
    features,
    format_time,
    gather_targets,
    gather_windows,
    load_series,
    make_dataset,
    origins_between,
    resolve_season,
    split_origins,
    usable_origins,
)

APP_MODULE = "apps.forecast"
SCALER_FILE = "scaler.json"
BASELINES_FILE = "baselines.json"
PREDICT_BATCH = 512
PLATEAU_PATIENCE = 10  # epochs without a better validation loss before the learning rate halves


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with what it needs to read a series.

    Attributes:
        run: the run directory.
        config: its config.
        meta: ``config.json``'s extra keys (``columns``, ``freq``, ``season``, ``split``, …).
        scaler: the training-period scaler.
        baselines: ``baselines.json`` (classical spec, season, MASE scale).
        model: the best model (``model.keras``).
    """

    run: RunDir
    config: ForecastConfig
    meta: dict[str, Any]
    scaler: Scaler
    baselines: dict[str, Any]
    model: Any

    @property
    def quantiles(self) -> list[float]:
        return list(self.config.quantiles)


def read_run_config(run: RunDir) -> tuple[ForecastConfig, dict[str, Any]]:
    """The run's :class:`ForecastConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    return ForecastConfig.from_dict(meta["config"], source=str(run.config_json)), meta


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode), ``scaler.json`` and ``baselines.json`` of a run."""
    import seqlayers  # noqa: F401  (registers the custom layers)
    from apps.forecast import model as _model  # noqa: F401  (registers the app's layers)

    config, meta = read_run_config(run)
    if not isinstance(meta.get("columns"), list):
        raise RunDirError(f"--run-dir: {run.config_json} has no 'columns' (was training started?)")
    scaler = Scaler.from_dict(run.read_json(SCALER_FILE))
    base = run.read_json(BASELINES_FILE)
    model = run.load_model()
    return TrainedRun(run, config, meta, scaler, base, model)


def load_run_series(trained: TrainedRun, spec: str | None = None) -> Series:
    """The run's own series (``spec`` None) or another one read like it (same columns, grid).

    Raises:
        DataError: a series whose columns or grid differ from the run's.
    """
    config = trained.config
    series = load_series(
        spec or config.data,
        target=config.target if spec is None else (config.target or trained.meta["columns"][0]),
        covariates=config.covariates,
        time_column=config.time_column,
        freq=trained.meta["freq"],
        limit=config.limit if spec is None else None,
    )
    if series.columns != trained.meta["columns"]:
        raise DataError(
            f"--data: {spec} has columns {series.columns}, but the model was trained on "
            f"{trained.meta['columns']}"
        )
    return series


def predict_quantiles(trained: TrainedRun, series: Series, origins: np.ndarray) -> np.ndarray:
    """Forecast quantiles from each origin in data units: ``(len(origins), H, Q)``."""
    config = trained.config
    feats = features(series.values, trained.scaler)
    out = np.zeros((len(origins), config.horizon, len(config.quantiles)), dtype=np.float64)
    for start in range(0, len(origins), PREDICT_BATCH):
        chunk = origins[start : start + PREDICT_BATCH]
        windows = gather_windows(feats, chunk, config.lookback)
        out[start : start + len(chunk)] = np.asarray(trained.model.predict_on_batch(windows))
    return trained.scaler.inverse_target(out)


# ---------------------------------------------------------------------- evaluation
def evaluation_origins(trained: TrainedRun, series: Series, *, own_series: bool) -> np.ndarray:
    """Origins evaluated: the test period of the run's own series, or — for another series —
    every origin from the first one at which the model and every baseline read only past
    samples (``lookback``, one season, the classical warm-up), each with an observed target.

    Raises:
        DataError: no origin left (series too short, or only gaps).
    """
    config = trained.config
    L, H = config.lookback, config.horizon
    target = series.target
    if own_series:
        split = chronological_split(len(series), L, H, config.val_fraction, config.test_fraction)
        candidates = split_origins(split, L, H, config.eval_stride)["test"]
    else:
        season = trained.baselines.get("season") or 0
        classical = trained.baselines.get("classical")
        warmup = bl.classical_warmup(classical) if classical else 0
        first = max(L, season, warmup) - 1
        if len(series) < first + 1 + H:
            raise DataError(
                f"--data: the series has {len(series)} samples; evaluating needs at least "
                f"{first + 1 + H} (lookback, one season and the classical model's warm-up, "
                "then one horizon)"
            )
        candidates = origins_between(first, len(series) - H - 1, config.eval_stride)
    origins = usable_origins(target, candidates, L, H, need_truth=True)
    if len(origins) == 0:
        raise DataError(
            "--data: every evaluation window is a gap (no observed value in its lookback or "
            "its horizon)"
        )
    return origins


def evaluate_trained(
    trained: TrainedRun,
    series: Series,
    *,
    data: str,
    own_series: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Metrics of the model and of every baseline on the same origins and points.

    Args:
        trained: the run.
        series: the run's own series (its test period is evaluated) or a later stretch of the
            same series (every origin is evaluated, see :func:`evaluation_origins`).
        data: the ``--data`` value, recorded.
        own_series: whether ``series`` is the one the run was trained on.
        write: write ``metrics.json``.

    Returns:
        A JSON-ready dict: ``mae``, ``rmse``, ``mase`` (and ``*_per_step``), ``coverage`` of
        the band between the outer quantiles, ``pinball``, ``baselines`` (``{name: {"mae",
        "rmse", "mase", ...}}``), ``origins``, ``period``, ``model``, ``params``, … .
    """
    from apps.common import training

    config = trained.config
    origins = evaluation_origins(trained, series, own_series=own_series)
    H, qi = config.horizon, config.median_index
    preds = predict_quantiles(trained, series, origins)
    truth = gather_targets(series.target, origins, H)
    scale = float(trained.baselines["mase_scale"])
    metrics: dict[str, Any] = {"model": config.model, "data": data,
                               "split": "test" if own_series else "series"}  # fmt: skip
    metrics.update(mx.point_metrics(preds[..., qi], truth, scale))
    metrics.update(mx.coverage(preds[..., 0], preds[..., -1], truth))
    metrics["band"] = [config.quantiles[0], config.quantiles[-1]]
    metrics["nominal_coverage"] = round(config.quantiles[-1] - config.quantiles[0], 6)
    metrics["pinball"] = mx.pinball(preds, truth, config.quantiles)
    base_preds, notes = bl.all_baselines(
        series.target, origins, H, trained.baselines.get("season"),
        trained.baselines.get("classical"), own_series=own_series,
    )  # fmt: skip
    metrics["baselines"] = {
        name: mx.point_metrics(p, truth, scale) for name, p in base_preds.items()
    }
    for name, p in base_preds.items():  # the model's MAE against each baseline's: p-value
        metrics["baselines"][name]["dm_test"] = mx.diebold_mariano(preds[..., qi], p, truth)
    if trained.baselines.get("classical_note"):
        notes.setdefault(config.classical, trained.baselines["classical_note"])
    if notes:
        metrics["baseline_notes"] = notes
    best = min(metrics["baselines"].items(), key=lambda kv: kv[1]["mae"])
    metrics["best_baseline"] = best[0]
    metrics["beats_all_baselines"] = bool(metrics["mae"] < best[1]["mae"])
    metrics.update(
        origins=len(origins),
        period=[series.time_str(int(origins[0]) + 1), series.time_str(int(origins[-1]) + H)],
        lookback=config.lookback,
        horizon=H,
        season=trained.baselines.get("season"),
        mase_scale=scale,
        params=int(trained.model.count_params()),
        units=config.units,
    )
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


# ------------------------------------------------------------------------ forecasts
def future_times(series: Series, origin: int, horizon: int) -> list[str]:
    """ISO times of the ``horizon`` samples after ``origin`` on the series' grid."""
    import pandas as pd

    start = pd.Timestamp(series.times[origin])
    grid = pd.date_range(start=start, periods=horizon + 1, freq=series.freq)
    return [format_time(t) for t in grid[1:].to_numpy(dtype="datetime64[ns]")]


def forecast_at(trained: TrainedRun, series: Series, origin: int) -> dict[str, Any]:
    """The forecast from one origin (``len(series) - 1``: from the end) with truth where known.

    Raises:
        DataError: the lookback window before ``origin`` is too short or only gaps.
    """
    config = trained.config
    L, H = config.lookback, config.horizon
    if origin < L - 1:
        raise DataError(
            f"--data: the series has {origin + 1} samples up to the forecast origin, fewer than "
            f"the lookback {L}"
        )
    origins = np.array([origin], dtype=np.int64)
    if len(usable_origins(series.target, origins, L, H, need_truth=False)) == 0:
        raise DataError(
            f"--data: the last {L} samples before {series.time_str(origin)} (the model's input "
            f"window, from {series.time_str(origin - L + 1)}) are all missing; nothing to "
            "forecast from"
        )
    quantiles = predict_quantiles(trained, series, origins)[0]
    truth = gather_targets(series.target, origins, H)[0]
    return {
        "origin": origin,
        "origin_time": series.time_str(origin),
        "times": future_times(series, origin, H),
        "quantiles": quantiles,
        "truth": truth,
    }


def forecast_csv(forecast: dict[str, Any], quantiles: list[float], median_index: int) -> str:
    """``time,forecast,q0.1,...,truth`` rows (``truth`` empty where unknown)."""
    names = [f"q{q:g}" for q in quantiles]
    lines = [",".join(["time", "forecast", *names, "truth"])]
    for t, row, y in zip(forecast["times"], forecast["quantiles"], forecast["truth"]):
        cells = [t, f"{row[median_index]:.6g}", *(f"{v:.6g}" for v in row),
                 "" if not np.isfinite(y) else f"{y:.6g}"]  # fmt: skip
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def plot_forecast(trained: TrainedRun, series: Series, forecast: dict[str, Any], out_png: Any,
                  *, own_series: bool = True, title: str | None = None) -> Any:  # fmt: skip
    """Draw history, forecast, band and truth (where known), with the baselines' forecasts
    (``own_series``: whether ``series`` is the run's own, for the classical baseline)."""
    from apps.forecast import plotting

    config = trained.config
    origin = forecast["origin"]
    shown = min(config.lookback, 3 * config.horizon)
    first = max(0, origin - shown + 1)
    base_preds, _ = bl.all_baselines(
        series.target, np.array([origin]), config.horizon, trained.baselines.get("season"),
        trained.baselines.get("classical"), own_series=own_series,
    )  # fmt: skip
    data = config.data if config.data.startswith("builtin:") else Path(config.data).name
    title = title or (f"{config.model} on {data}: {config.horizon} steps from "
                      f"{forecast['origin_time']}")  # fmt: skip
    return plotting.forecast_plot(
        history_times=series.times[first : origin + 1],
        history=series.target[first : origin + 1],
        future_times=np.array([np.datetime64(t.rstrip("Z")) for t in forecast["times"]]),
        quantiles=forecast["quantiles"],
        quantile_levels=list(config.quantiles),
        truth=forecast["truth"],
        baselines={k: v[0] for k, v in base_preds.items()},
        title=title,
        ylabel=series.columns[0],
        out_png=out_png,
    )


# --------------------------------------------------------------------------- timing
# ---------------------------------------------------------------------------- train
def prepare_baselines(
    config: ForecastConfig, series: Series, train_end: int, season: int | None
) -> dict[str, Any]:
    """Fit the classical model on the training period; the MASE scale and season with it."""
    out: dict[str, Any] = {
        "season": season,
        "mase_scale": mx.mase_scale(series.target[:train_end], season),
        "classical": None,
    }
    if config.classical != "none":
        try:
            out["classical"] = bl.fit_classical(config.classical, series.target[:train_end], season)
        except (ValueError, np.linalg.LinAlgError) as e:
            out["classical_note"] = f"{config.classical} not fitted: {e}"
    return out


def train_and_evaluate(
    config: ForecastConfig,
    run_dir: Any,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test period.

    Args:
        config: the app config (``ForecastConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a forecast run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).

    Returns:
        The test metrics (also in ``DIR/metrics.json``), see :func:`evaluate_trained`.

    Raises:
        DataError: unreadable data, a series too short for lookback + horizon, or no training
            window with observed values.
    """
    import keras

    from apps.common import training
    from apps.forecast.model import build_model, compile_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(ForecastConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    training.seed_everything(config.seed)
    series = load_series(config.data, target=config.target, covariates=config.covariates,
                         time_column=config.time_column, freq=config.freq, limit=config.limit)  # fmt: skip
    _say(log, f"data: {series.description}")
    L, H = config.lookback, config.horizon
    split = chronological_split(len(series), L, H, config.val_fraction, config.test_fraction)
    season = resolve_season(config.season, series)
    origins = {
        name: usable_origins(series.target, o, L, H, need_truth=True)
        for name, o in split_origins(split, L, H, config.eval_stride).items()
    }
    for name, label in (("train", "training"), ("val", "validation"), ("test", "test")):
        if len(origins[name]) == 0:
            raise DataError(f"--data: no {label} window with observed values (all gaps)")
    _say(log, f"split by time: train {series.time_str(0)} .. {series.time_str(split.train_end - 1)} "
              f"({len(origins['train'])} windows), validation {len(origins['val'])}, test "
              f"{len(origins['test'])} windows; lookback {L}, horizon {H}, season {season}")  # fmt: skip

    resuming = (run.path / SCALER_FILE).is_file() and (run.path / BASELINES_FILE).is_file()
    if resuming:
        scaler = Scaler.from_dict(run.read_json(SCALER_FILE))
        base = run.read_json(BASELINES_FILE)
    else:
        scaler = Scaler.fit(series.values, series.columns, split.train_end)
        started = time.monotonic()
        base = prepare_baselines(config, series, split.train_end, season)
        if base["classical"] is not None:
            _say(log, f"classical baseline: {config.classical} fitted on the training period "
                      f"in {time.monotonic() - started:.1f}s")  # fmt: skip
        run.write_json(SCALER_FILE, scaler.to_dict())
        run.write_json(BASELINES_FILE, base)
    run.write_config(
        config.to_dict(), columns=series.columns, freq=series.freq, season=season,
        split=split.to_dict(), data_description=series.description,
    )  # fmt: skip

    feats = features(series.values, scaler)
    target_scaled = (series.target - scaler.mean[0]) / scaler.std[0]
    train_ds = make_dataset(feats, target_scaled, origins["train"], L, H, config.batch_size,
                            shuffle=True, seed=config.seed, trend_change=config.trend_change)  # fmt: skip
    val_ds = make_dataset(feats, target_scaled, origins["val"], L, H, config.batch_size)
    model = build_model(
        config.model, L, feats.shape[1], H, config.quantiles, units=config.units,
        cell=config.cell, attention=config.attention, dropout=config.dropout,
        level=config.level, season=season, seed=config.seed,
    )  # fmt: skip
    compile_model(model, config.quantiles, config.learning_rate)
    _say(log, f"model: {config.model}, {model.count_params():,} parameters, "
              f"{len(config.quantiles)} quantiles {list(config.quantiles)}")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(log, f"resuming from epoch {start_epoch} of {config.epochs}")
    plateau = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=PLATEAU_PATIENCE, min_lr=1e-5)
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet, callbacks=[plateau])

    trained = load_trained(run)
    metrics = evaluate_trained(trained, series, data=config.data, own_series=True)
    last = evaluation_origins(trained, series, own_series=True)[-1]
    plot_forecast(trained, series, forecast_at(trained, series, int(last)),
                  run.plots / "forecast.png")  # fmt: skip
    return metrics
