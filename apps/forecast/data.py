"""Time series for the forecasting app: loading, a regular time grid, a chronological split,
a scaler fitted on the training period, and forecast windows.

Sources (``--data``):

- ``builtin:co2`` — weekly Mauna Loa CO2 (ppmv) shipped in ``statsmodels.datasets.co2``
  (Keeling & Whorf 2004), resampled to monthly means (``MS``);
- ``builtin:sunspots`` — yearly sunspot numbers 1700-2008 (``statsmodels.datasets.sunspots``);
- ``builtin:elnino`` — monthly Niño 1+2 sea-surface temperature 1950-2010
  (``statsmodels.datasets.elnino``);
- a CSV file: a time column (``time`` unless ``time_column`` says otherwise; ISO 8601) and value
  columns; an empty cell (or ``NA`` / ``NaN``) is a missing value.

Missing and irregular samples are handled explicitly, never filled: the series is put on a
regular grid (``freq``) with the mean of the samples in each bin; an empty bin is a gap
(``NaN``). The model sees a gap as value 0 plus an "observed" flag of 0; a forecast target that
is a gap is left out of the loss and of every metric.

Time indices used throughout: sample ``t`` of the grid; a forecast *origin* ``o`` is the last
input sample: the model reads ``[o - lookback + 1, o]`` and forecasts ``[o + 1, o + horizon]``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import ConfigError, DataError
from apps.common.sources import parse_source, read_text_strict

MISSING_TOKENS = ("", "na", "nan", "null", "none")

# name -> (default grid, default season, description)
BUILTINS: dict[str, tuple[str, int | None, str]] = {
    "co2": ("MS", 12, ("Mauna Loa CO2 (ppmv), weekly flask samples, statsmodels.datasets.co2 "
                       "(Keeling & Whorf 2004)")),
    "sunspots": ("YS", 11, ("yearly sunspot numbers 1700-2008, statsmodels.datasets.sunspots "
                            "(NOAA NGDC)")),
    "elnino": ("MS", 12, ("monthly Nino 1+2 sea-surface temperature (deg C) 1950-2010, "
                          "statsmodels.datasets.elnino (NOAA ERSST.V3B)")),
}  # fmt: skip

_SEASON_BY_UNIT = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "h": 24, "D": 7,
                   "W": 52, "B": 5}  # fmt: skip


# ---------------------------------------------------------------------------- the series
@dataclasses.dataclass
class Series:
    """A series on a regular grid.

    Attributes:
        times: ``datetime64[ns]`` UTC times of the grid, shape (N,), strictly increasing.
        values: float64 ``(N, C)``; column 0 is the target, then the covariates; NaN = missing.
        columns: the C column names.
        freq: the grid (a pandas offset alias).
        season: default seasonal period of this source (``None``: none known).
        description: where the data came from and how it was put on the grid (one line).
    """

    times: np.ndarray
    values: np.ndarray
    columns: list[str]
    freq: str
    season: int | None
    description: str

    def __len__(self) -> int:
        return len(self.times)

    @property
    def target(self) -> np.ndarray:
        """The target column, shape (N,)."""
        return self.values[:, 0]

    def time_str(self, index: int) -> str:
        """Sample ``index``'s time as ISO 8601 (``YYYY-MM-DDTHH:MM:SSZ``)."""
        return format_time(self.times[index])


def format_time(value: Any) -> str:
    """A ``datetime64`` as ISO 8601 UTC with a ``Z``."""
    return str(np.datetime64(value, "s")) + "Z"


def _offset(freq: str, flag: str = "--freq") -> Any:
    import pandas as pd

    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{flag}: {freq!r} is not a pandas frequency (e.g. 1h, 30min, D, W, MS, YS)"
        ) from None


def default_season(freq: str) -> int | None:
    """The usual seasonal period of a grid: 12 monthly, 4 quarterly, 24 hourly, 7 daily, 52
    weekly, 5 business-daily; ``None`` otherwise (yearly, irregular multiples)."""
    off = _offset(freq)
    n = getattr(off, "n", 1)
    name = off.name.split("-")[0]
    if name in ("h", "H"):
        return 24 // n if n and 24 % n == 0 and n < 24 else None
    if name in ("min", "T"):
        return 1440 // n if n and 1440 % n == 0 and n < 1440 else None
    if n != 1:
        return None
    return _SEASON_BY_UNIT.get(name)


def _to_grid(times: Any, frame: Any, freq: str | None, origin_name: str) -> tuple[Any, str, str]:
    """Resample ``frame`` (indexed by ``times``) to a regular grid; returns (frame, freq, note)."""
    import pandas as pd

    frame = frame.set_axis(pd.DatetimeIndex(times), axis=0)
    if freq is None:
        diffs = np.diff(frame.index.asi8) if len(frame) > 1 else np.array([], dtype=np.int64)
        if len(diffs) == 0:
            raise DataError(f"--data: {origin_name} has fewer than 2 samples")
        step = int(diffs.min())
        inferred = pd.infer_freq(frame.index) if len(frame) >= 3 else None
        if inferred is not None:
            freq = inferred
        elif np.all(diffs % step == 0):
            freq = pd.tseries.frequencies.to_offset(pd.Timedelta(step, "ns")).freqstr
        else:
            raise DataError(
                f"--data: {origin_name} is irregularly sampled (steps from "
                f"{pd.Timedelta(step, 'ns')} to {pd.Timedelta(int(diffs.max()), 'ns')}); give --freq "
                "(e.g. 1h, D, MS) to resample it to a regular grid"
            )
    offset = _offset(freq)
    tick = isinstance(offset, pd.tseries.offsets.Tick)
    resampler = frame.resample(offset, origin="start") if tick else frame.resample(offset)
    counts = resampler.count().iloc[:, 0].to_numpy()
    grid = resampler.mean()
    empty = int((grid.iloc[:, 0].isna()).sum())
    merged = int((counts > 1).sum())
    note = f"grid {offset.freqstr}: {len(grid)} samples"
    if merged:
        note += f", {merged} averaged from several raw samples"
    note += f", {empty} missing (masked, not filled)"
    return grid, offset.freqstr, note


def _builtin_frame(name: str) -> Any:
    import pandas as pd

    if name == "co2":
        from statsmodels.datasets import co2

        frame = co2.load_pandas().data[["co2"]]
        return frame.index, frame.reset_index(drop=True)
    if name == "sunspots":
        from statsmodels.datasets import sunspots

        raw = sunspots.load_pandas().data
        times = pd.to_datetime(raw["YEAR"].astype(int).astype(str), format="%Y")
        return times, raw[["SUNACTIVITY"]].rename(columns={"SUNACTIVITY": "sunspots"})
    if name == "elnino":
        from statsmodels.datasets import elnino

        raw = elnino.load_pandas().data
        months = [c for c in raw.columns if c != "YEAR"]
        times, vals = [], []
        for _, row in raw.iterrows():
            for m, col in enumerate(months, 1):
                times.append(pd.Timestamp(int(row["YEAR"]), m, 1))
                vals.append(float(row[col]))
        return pd.DatetimeIndex(times), pd.DataFrame({"temperature": vals})
    raise DataError(f"--data: unknown builtin dataset {name!r}")  # pragma: no cover


def _parse_numbers(texts: Sequence[str], column: str, name: str) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.float64)
    for i, raw in enumerate(texts):
        text = raw.strip()
        if text.lower() in MISSING_TOKENS:
            out[i] = math.nan
            continue
        try:
            value = float(text)
        except ValueError:
            raise DataError(
                f"--data: {name} row {i + 2}, column {column!r}: {raw!r} is not a number "
                "(leave the cell empty for a missing value)"
            ) from None
        if not math.isfinite(value):
            raise DataError(f"--data: {name} row {i + 2}, column {column!r}: {raw!r} is not finite")
        out[i] = value
    return out


def _parse_times(texts: Sequence[str], column: str, name: str) -> np.ndarray:
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(list(texts)), utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"--data: {name} row {i + 2}, column {column!r}: {texts[i]!r} is not an ISO 8601 time"
        )
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    outside = np.flatnonzero(((naive < pd.Timestamp.min) | (naive > pd.Timestamp.max)).to_numpy())
    if len(outside):  # the nanosecond grid would wrap them around silently
        i = int(outside[0])
        raise DataError(
            f"--data: {name} row {i + 2}, column {column!r}: {texts[i]!r} is outside the times "
            f"the app handles ({pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d})"
        )
    times = naive.to_numpy(dtype="datetime64[ns]")
    steps = np.diff(times.astype(np.int64))
    if np.any(steps == 0):
        i = int(np.flatnonzero(steps == 0)[0])
        raise DataError(
            f"--data: {name} has a duplicate timestamp {texts[i + 1]!r} at rows {i + 2} and "
            f"{i + 3}; give one value per time"
        )
    if np.any(steps < 0):
        i = int(np.flatnonzero(steps < 0)[0])
        raise DataError(
            f"--data: {name} is not sorted by time: row {i + 3} ({texts[i + 1]!r}) comes before "
            f"row {i + 2} ({texts[i]!r}); sort the file by {column!r}"
        )
    return times


def _read_csv(
    path: Path, target: str | None, covariates: Sequence[str], time_column: str
) -> tuple[np.ndarray, Any, list[str]]:
    import pandas as pd

    text = read_text_strict(path, flag="--data")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        first = " ".join(str(e).split())[:200]
        raise DataError(f"--data: {path} is not a readable CSV: {first}") from None
    name = str(path)
    columns = [str(c) for c in frame.columns]
    if time_column not in columns:
        raise DataError(
            f"--data: {name} has no time column {time_column!r} (columns: {', '.join(columns)}); "
            "name it with --time-column"
        )
    value_columns = [c for c in columns if c != time_column]
    if target is None:
        if len(value_columns) != 1:
            raise DataError(
                f"--target: {name} has {len(value_columns)} value columns; name the one to "
                f"forecast with --target (columns: {', '.join(value_columns) or 'none'})"
            )
        target = value_columns[0]
    for flag, col in [("--target", target)] + [("--covariates", c) for c in covariates]:
        if col not in value_columns:
            raise DataError(
                f"{flag}: {name} has no column {col!r} (value columns: "
                f"{', '.join(value_columns) or 'none'})"
            )
    if len(frame) == 0:
        raise DataError(f"--data: {name} has no rows")
    times = _parse_times(frame[time_column].tolist(), time_column, name)
    wanted = [target, *covariates]
    values = {c: _parse_numbers(frame[c].tolist(), c, name) for c in wanted}
    return times, pd.DataFrame(values, columns=wanted), wanted


def load_series(
    spec: str,
    *,
    target: str | None = None,
    covariates: Sequence[str] = (),
    time_column: str = "time",
    freq: str | None = None,
    limit: int | None = None,
) -> Series:
    """Load ``--data SRC`` onto a regular grid.

    Args:
        spec: ``builtin:co2|sunspots|elnino`` or a CSV path.
        target: CSV column to forecast (``None``: the only value column; for a builtin, its
            own column, which ``target`` may name).
        covariates: CSV columns fed as past inputs.
        time_column: the CSV's time column.
        freq: the grid; ``None``: the builtin's grid or the CSV's own regular spacing.
        limit: keep only the last ``limit`` samples.

    Returns:
        The :class:`Series`.

    Raises:
        DataError: unknown source, a missing column, a non-numeric value, unsorted or duplicate
            times, irregular sampling without ``freq``, or a target with no value at all.
    """
    source = parse_source(spec, tuple(BUILTINS))
    if source.kind == "tfds":
        raise DataError("--data: the forecast app reads builtin:NAME or a CSV file, not tfds")
    if source.kind == "builtin":
        grid, season, about = BUILTINS[source.name]
        times, frame = _builtin_frame(source.name)
        own = str(frame.columns[0])
        if target not in (None, own):
            raise DataError(f"--target: builtin:{source.name} has only the column {own!r}")
        if covariates:
            raise DataError(f"--covariates: builtin:{source.name} has no other columns")
        columns = [own]
        origin = f"builtin:{source.name}"
        freq = freq or grid
    else:
        path = source.path
        if path.is_dir():
            raise DataError(f"--data: {path} is a folder; give a CSV file with a time column")
        times, frame, columns = _read_csv(path, target, list(covariates), time_column)
        about, season, origin = f"CSV {path}", None, str(path)
    grid_frame, freq_str, note = _to_grid(times, frame, freq, origin)
    values = grid_frame.to_numpy(dtype=np.float64)
    grid_times = grid_frame.index.to_numpy(dtype="datetime64[ns]")
    if limit is not None and len(values) > limit:
        values, grid_times = values[-limit:], grid_times[-limit:]
        note += f"; last {limit} kept"
    if not np.isfinite(values[:, 0]).any():
        raise DataError(f"--data: {origin}: the target column {columns[0]!r} has no values")
    if source.kind != "builtin" or _offset(freq_str) != _offset(BUILTINS[source.name][0]):
        season = default_season(freq_str)  # a builtin's own season holds on its own grid only
    description = (
        f"{origin}: {about}; {note}; {format_time(grid_times[0])} .. {format_time(grid_times[-1])}"
    )
    return Series(grid_times, values, columns, freq_str, season, description)


# ------------------------------------------------------------------------------- split
@dataclasses.dataclass(frozen=True)
class Split:
    """A chronological split of N grid samples.

    Training is ``[0, train_end)``, validation ``[train_end, val_end)``, test ``[val_end, n)``.
    """

    n: int
    train_end: int
    val_end: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def chronological_split(
    n: int, lookback: int, horizon: int, val_fraction: float, test_fraction: float
) -> Split:
    """Split N samples by time; validation and test each hold at least one full horizon.

    Raises:
        DataError: when the series is shorter than ``lookback + horizon`` or too short for
            the three periods.
    """
    if n < lookback + horizon:
        raise DataError(
            f"--data: the series has {n} samples, fewer than lookback + horizon = "
            f"{lookback} + {horizon}; give a longer series or shorter --lookback/--horizon"
        )
    n_test = max(round(n * test_fraction), horizon)
    n_val = max(round(n * val_fraction), horizon)
    train_end = n - n_test - n_val
    if train_end < lookback + horizon:
        raise DataError(
            f"--data: the series has {n} samples; after {n_val} for validation and {n_test} for "
            f"test, the training period ({max(train_end, 0)}) is shorter than lookback + horizon "
            f"= {lookback + horizon}; give a longer series or shorter --lookback/--horizon"
        )
    return Split(n, train_end, train_end + n_val)


def origins_between(first: int, last: int, stride: int = 1) -> np.ndarray:
    """Origins ``first, first + stride, ... <= last`` (empty when ``last < first``)."""
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def split_origins(
    split: Split, lookback: int, horizon: int, eval_stride: int = 1
) -> dict[str, np.ndarray]:
    """Forecast origins per period, so that targets never cross a period's end.

    - train: ``o`` in ``[lookback - 1, train_end - horizon - 1]`` (inputs and targets in it);
    - validation: targets in ``[train_end, val_end)`` (inputs may reach back into training);
    - test: targets in ``[val_end, n)``, every ``eval_stride``-th origin.
    """
    return {
        "train": origins_between(lookback - 1, split.train_end - horizon - 1),
        "val": origins_between(max(split.train_end - 1, lookback - 1), split.val_end - horizon - 1),
        "test": origins_between(max(split.val_end - 1, lookback - 1), split.n - horizon - 1,
                                eval_stride),
    }  # fmt: skip


def usable_origins(
    target: np.ndarray, origins: np.ndarray, lookback: int, horizon: int, *, need_truth: bool
) -> np.ndarray:
    """Origins whose input window has an observed target value (and, with ``need_truth``,
    whose forecast window has one too); the others are all-gap windows."""
    observed = np.isfinite(target)
    cum = np.concatenate([[0], np.cumsum(observed)])
    seen_in = cum[origins + 1] - cum[origins + 1 - lookback]
    keep = seen_in > 0
    if need_truth:
        ends = np.minimum(origins + 1 + horizon, len(target))
        keep &= (cum[ends] - cum[origins + 1]) > 0
    return origins[keep]


# ------------------------------------------------------------------------------ scaling
@dataclasses.dataclass
class Scaler:
    """Per-column standardisation fitted on the training period only.

    Attributes:
        columns: column names.
        mean: per-column mean over the training period (missing values skipped).
        std: per-column standard deviation (1 where it is 0).
        fitted_on: ``[start, end)`` sample indices of the period it was fitted on.
    """

    columns: list[str]
    mean: list[float]
    std: list[float]
    fitted_on: tuple[int, int]

    @classmethod
    def fit(cls, values: np.ndarray, columns: Sequence[str], end: int) -> Scaler:
        """Fit on ``values[:end]`` (the training period)."""
        part = values[:end]
        mean, std = [], []
        for c in range(values.shape[1]):
            col = part[:, c][np.isfinite(part[:, c])]
            m = float(col.mean()) if len(col) else 0.0
            s = float(col.std()) if len(col) > 1 else 0.0
            mean.append(m)
            std.append(s if s > 0 else 1.0)
        return cls(list(columns), mean, std, (0, int(end)))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled target values (any shape) back to data units."""
        return np.asarray(scaled, dtype=np.float64) * self.std[0] + self.mean[0]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "mean": self.mean, "std": self.std,
                "fitted_on": list(self.fitted_on)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(list(data["columns"]), [float(x) for x in data["mean"]],
                   [float(x) for x in data["std"]], tuple(data["fitted_on"]))  # fmt: skip


def features(values: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Model inputs per sample: for each column its scaled value (0 where missing) and an
    observed flag; float32 ``(N, 2 C)`` ordered ``[x_0, m_0, x_1, m_1, ...]``."""
    scaled = scaler.transform(values)
    observed = np.isfinite(scaled)
    out = np.empty((len(values), 2 * values.shape[1]), dtype=np.float32)
    out[:, 0::2] = np.where(observed, scaled, 0.0)
    out[:, 1::2] = observed
    return out


def gather_windows(feats: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """Input windows ``feats[o - lookback + 1 : o + 1]`` per origin: ``(len(origins), L, F)``."""
    idx = origins[:, None] + np.arange(-lookback + 1, 1)[None, :]
    return feats[idx]


def gather_targets(target: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Targets ``target[o + 1 : o + horizon + 1]`` per origin (NaN beyond the end):
    ``(len(origins), H)``."""
    idx = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    padded = np.concatenate([target, np.full(horizon, np.nan)])
    return padded[idx]


def make_dataset(
    feats: np.ndarray,
    target_scaled: np.ndarray,
    origins: np.ndarray,
    lookback: int,
    horizon: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    trend_change: float = 0.0,
) -> Any:
    """A batched, prefetched ``tf.data`` pipeline of ``(windows (B, L, F), targets (B, H))``;
    windows are gathered from ``feats`` per batch (no copy of every window in memory).
    Missing targets stay NaN (the pinball loss masks them). ``trend_change > 0`` augments
    every window with a random change of trend (:func:`add_trend_change`; for training only)."""
    import tensorflow as tf

    feats_t = tf.constant(feats, tf.float32)
    padded = np.concatenate([target_scaled, np.full(horizon, np.nan)]).astype(np.float32)
    target_t = tf.constant(padded)
    back = tf.range(-lookback + 1, 1, dtype=tf.int64)
    ahead = tf.range(1, horizon + 1, dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(origins.astype(np.int64))
    if shuffle:
        ds = ds.shuffle(len(origins), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(o):
        x = tf.gather(feats_t, o[:, None] + back[None, :])
        y = tf.gather(target_t, o[:, None] + ahead[None, :])
        return x, y

    if trend_change <= 0:
        return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def augmented(o):
        x, y = gather(o)
        n = tf.shape(o)[0]
        slope = tf.random.normal((n, 1), stddev=trend_change, seed=seed)
        kink = tf.random.uniform((n, 1), float(-lookback + 1), 0.0, seed=seed + 1)
        return add_trend_change(x, y, slope, kink)

    # sequential map: the random draws follow the batch order, so a seed repeats a run
    return ds.map(augmented).prefetch(tf.data.AUTOTUNE)


def add_trend_change(x: Any, y: Any, slope: Any, kink: Any) -> tuple[Any, Any]:
    """Add a change of trend to windows and their targets (the training augmentation).

    With ``tau`` the step relative to the origin (``-L+1 .. 0`` for the inputs, ``1 .. H`` for
    the targets), each window gets ``slope * (max(tau - kink, 0) + kink)`` added to its
    target channel: nothing changes before ``kink`` but a constant, the trend changes by
    ``slope`` per step from ``kink`` on, the origin's value is kept, and the targets continue
    the new trend. Seen over many windows, this teaches the model that a recent change of
    trend persists — the assumption of a local linear trend model (Holt's method, ETS) —
    instead of extrapolating the average growth of the training years. Missing inputs stay 0.

    Args:
        x: windows ``(B, L, F)``, channel 0 the scaled target, channel 1 its observed flag.
        y: targets ``(B, H)`` (NaN where missing: stays NaN).
        slope: ``(B, 1)`` change of slope per step, in scaled units.
        kink: ``(B, 1)`` the step (``-L+1 .. 0``, may be fractional) where the change starts.

    Returns:
        ``(x, y)`` with the change added.
    """
    import tensorflow as tf

    lookback, horizon = tf.shape(x)[1], tf.shape(y)[1]
    past = tf.cast(tf.range(-lookback + 1, 1), x.dtype)[None, :]
    future = tf.cast(tf.range(1, horizon + 1), x.dtype)[None, :]
    added = slope * (tf.nn.relu(past - kink) + kink) * x[..., 1]
    x = tf.concat([x[..., :1] + added[..., None], x[..., 1:]], axis=-1)
    return x, y + slope * (tf.nn.relu(future - kink) + kink)


def resolve_season(config_season: int | None, series: Series) -> int | None:
    """The season in use: the config's, else the source's default."""
    return config_season if config_season is not None else series.season


def check_path_exists(spec: str) -> None:
    """Pure-Python check of a ``--data`` value (before TensorFlow loads)."""
    parse_source(spec, tuple(BUILTINS))
    if not spec.startswith("builtin:") and os.path.isdir(os.path.expanduser(spec)):
        raise DataError(f"--data: {spec} is a folder; give a CSV file with a time column")
