"""What the exporter needs from a forecast run (see :mod:`export.app_hooks`).

The exported model is the run's ``model.keras`` itself: input ``window`` float32
``(batch, lookback, 2 C)`` — per step and column the value standardised with ``scaler.json``
(``(x - mean) / std``, 0 where missing) and an observed flag (1 / 0), column 0 the target —,
output float32 ``(batch, horizon, Q)``: the target's quantiles in standardised units (sorted;
``config.quantiles`` gives the levels), back to data units with ``y * std[0] + mean[0]``.
There is no state to carry: a phone app feeds the last ``lookback`` samples and reads the
whole horizon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.app_hooks import AppHook

MAX_WINDOWS = 256


def _windows(run_dir: Path, period: str) -> np.ndarray:
    from apps.common.rundir import RunDir
    from apps.forecast.data import (
        Scaler,
        chronological_split,
        features,
        gather_windows,
        load_series,
        split_origins,
        usable_origins,
    )
    from apps.forecast.train import APP_MODULE, SCALER_FILE, read_run_config

    run = RunDir.open(run_dir, APP_MODULE)
    config, meta = read_run_config(run)
    series = load_series(config.data, target=config.target, covariates=config.covariates,
                         time_column=config.time_column, freq=meta.get("freq"),
                         limit=config.limit)  # fmt: skip
    L, H = config.lookback, config.horizon
    split = chronological_split(len(series), L, H, config.val_fraction, config.test_fraction)
    origins = split_origins(split, L, H)[period]
    origins = usable_origins(series.target, origins, L, H, need_truth=False)
    if len(origins) > MAX_WINDOWS:  # evenly spread over the period
        origins = origins[np.linspace(0, len(origins) - 1, MAX_WINDOWS).astype(int)]
    scaler = Scaler.from_dict(run.read_json(SCALER_FILE))
    return gather_windows(features(series.values, scaler), origins, L)


def representative_inputs(run_dir: Path, config: Any) -> np.ndarray:
    """Up to 256 real training-period windows (int8 calibration)."""
    return _windows(Path(run_dir), "train")


def parity_inputs(run_dir: Path, config: Any) -> np.ndarray:
    """Up to 256 real test-period windows (parity against the Keras model)."""
    return _windows(Path(run_dir), "test")


def tables(run_dir: Path, config: Any) -> list[dict[str, Any]]:
    """``scaler.json``: the standardisation the inputs need and the outputs undo."""
    return [
        {
            "path": Path(run_dir) / "scaler.json",
            "role": "per-column mean/std fitted on the training period: input channel 2c = "
            "(x_c - mean[c]) / std[c] (0 where missing), channel 2c+1 = observed flag; "
            "outputs (batch, horizon, Q) are the target's quantiles: y * std[0] + mean[0]",
        }
    ]


def default_seq_len(config: Any) -> int | None:
    """The window length the model was built for (its input is fixed-length)."""
    value = config.get("lookback") if hasattr(config, "get") else None
    return int(value) if isinstance(value, int) and value > 0 else None


HOOK = AppHook(
    modules=("apps.forecast.model",),
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=default_seq_len,
)
