"""Configuration of the forecasting app: one typed, frozen dataclass with three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (a GRU on monthly Mauna Loa CO2 in
well under three minutes on two CPU cores), ``base`` is a longer run.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from apps.common.cells import parse_cell_name
from apps.common.config import AppConfig
from apps.common.errors import ConfigError, UsageError

BUILTIN_DATA = ("co2", "sunspots", "elnino")
WINDOW_MODELS = ("window-cnn", "window-mlp")
RECURRENT_MODELS = ("vanilla", "lstm", "gru", "mut1", "mut2", "mut3")
MODEL_CHOICES = (*WINDOW_MODELS, *RECURRENT_MODELS, "genotype:PATH.json", "seq2seq")
CLASSICAL_CHOICES = ("ets", "sarimax", "none")


@dataclasses.dataclass(frozen=True)
class ForecastConfig(AppConfig):
    """Everything needed to rebuild a forecaster and its preprocessing.

    Args:
        data: ``--data`` source: ``builtin:co2`` (Mauna Loa CO2, monthly means),
            ``builtin:sunspots`` (yearly), ``builtin:elnino`` (monthly sea-surface
            temperature), or a CSV with a time column and value columns.
        target: the CSV column to forecast (``None``: the only value column).
        covariates: extra CSV columns fed as past inputs (never forecast).
        time_column: name of the CSV's time column.
        freq: the sampling grid (a pandas offset alias such as ``1h``, ``D``, ``MS``); the
            series is resampled to it with the mean of the samples in each bin, and empty bins
            are gaps (masked, never filled). ``None``: the builtin's own grid, or the CSV's
            regular spacing (an irregular CSV then needs ``freq``).
        season: seasonal period in samples for the seasonal-naive and classical baselines and
            MASE (``None``: from the frequency: 12 monthly, 24 hourly, 7 daily, 52 weekly, 4
            quarterly; 11 for sunspots; no season otherwise).
        lookback: past samples fed to the model (the lecture's window length L).
        horizon: future samples forecast at once (H).
        quantiles: forecast quantiles, trained with the pinball loss; must include 0.5 (the
            point forecast); the outer two form the uncertainty band.
        model: ``window-cnn``, ``window-mlp``, ``vanilla``, ``lstm``, ``gru``, ``mut1..3``,
            ``genotype:PATH.json`` or ``seq2seq``.
        cell: recurrent cell of the ``seq2seq`` encoder and decoder.
        attention: ``seq2seq`` only: the decoder attends over the encoder outputs (Bahdanau).
        units: hidden size (recurrent units, CNN filters, MLP width / 2).
        dropout: dropout rate before the output layer.
        trend_change: training augmentation: the standard deviation (scaled units per step)
            of a random change of trend that each training window gets from a random step of
            its lookback on, continued through its targets (0: off). It teaches the model that
            a recent change of trend persists; 0.002 helps on CO2 (``benchmarks/RESULTS.md``).
        level: ``"last"`` / ``"mean"``: every window is shifted by its last observed value /
            the mean of its observed values and the model predicts changes from it (handles
            trends outside the training range); ``"drift"``: the last value plus the window's
            mean seasonal slope, extended over the horizon; ``"none"``: raw scaled values.
        epochs: training epochs.
        batch_size: windows per batch.
        learning_rate: Adam learning rate.
        val_fraction: share of the series (by time) for validation, after the training part.
        test_fraction: share of the series (by time) for the test period, at the end.
        eval_stride: evaluate every this many forecast origins in the test period.
        limit: keep only the last ``limit`` samples of the series (``None``: all).
        classical: the statsmodels baseline: ``ets`` (exponential smoothing with additive
            trend and season), ``sarimax`` (``(1,1,1)x(0,1,1,S)``) or ``none``.
        seed: seed for weights and shuffling.
        members: an ensemble's member run dirs (made by the ``ensemble`` verb or a ``NAME*K``
            entry of ``compare``; ``model`` is then ``"ensemble"`` and ``units`` the members'
            units together): their quantile forecasts are averaged, see
            :mod:`apps.forecast.ensemble`. Empty for a trained model.
    """

    data: str = "builtin:co2"
    target: str | None = None
    covariates: tuple[str, ...] = ()
    time_column: str = "time"
    freq: str | None = None
    season: int | None = None
    lookback: int = 96
    horizon: int = 12
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    model: str = "gru"
    cell: str = "gru"
    attention: bool = False
    units: int = 32
    dropout: float = 0.0
    trend_change: float = 0.0
    level: Literal["last", "mean", "drift", "none"] = "last"
    epochs: int = 80
    batch_size: int = 32
    learning_rate: float = 3e-3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    eval_stride: int = 1
    limit: int | None = None
    classical: Literal["ets", "sarimax", "none"] = "ets"
    seed: int = 1234
    members: tuple[str, ...] = ()

    @classmethod
    def tiny(cls) -> ForecastConfig:
        """Seconds: short windows, 8 units, one epoch."""
        return cls(lookback=24, horizon=6, units=8, epochs=1, batch_size=64)

    @classmethod
    def small(cls) -> ForecastConfig:
        """The main job: a GRU on monthly CO2, 96 months in, 12 months out."""
        return cls()

    @classmethod
    def base(cls) -> ForecastConfig:
        """A longer run: 64 units, more epochs."""
        return cls(units=64, epochs=150)

    @property
    def median_index(self) -> int:
        """Index of the 0.5 quantile (the point forecast) in ``quantiles``."""
        return self.quantiles.index(0.5)

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("lookback", self.lookback >= 2, ">= 2"),
            ("horizon", self.horizon >= 1, ">= 1"),
            ("season", self.season is None or self.season >= 2, ">= 2 or null"),
            ("units", self.units >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("trend_change", 0.0 <= self.trend_change < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("val_fraction", 0.0 < self.val_fraction < 0.5, "in (0, 0.5)"),
            ("test_fraction", 0.0 < self.test_fraction < 0.5, "in (0, 0.5)"),
            ("eval_stride", self.eval_stride >= 1, ">= 1"),
            ("limit", self.limit is None or self.limit >= 10, ">= 10 or null"),
            ("seed", self.seed >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if self.val_fraction + self.test_fraction >= 0.8:
            raise ConfigError(
                "config: val_fraction + test_fraction must be < 0.8 (the training period needs "
                f"the rest), got {self.val_fraction} + {self.test_fraction}"
            )
        qs = self.quantiles
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or list(qs) != sorted(set(qs)):
            raise ConfigError(
                f"config: quantiles must be increasing numbers in (0, 1), got {list(qs)!r}"
            )
        if 0.5 not in qs:
            raise ConfigError(
                f"config: quantiles must include 0.5 (the point forecast), got {list(qs)!r}"
            )
        if not self.model.strip():
            raise ConfigError("config: model must not be empty")
        if bool(self.members) != (self.model == "ensemble"):
            raise ConfigError("config: model 'ensemble' goes with its members, and only it")
        if self.attention and self.model != "seq2seq":
            raise ConfigError(f"config: attention needs model 'seq2seq', got {self.model!r}")
        if len(set(self.covariates)) != len(self.covariates):
            raise ConfigError(f"config: covariates are listed twice: {list(self.covariates)!r}")
        if self.target is not None and self.target in self.covariates:
            raise ConfigError(f"config: the target {self.target!r} cannot also be a covariate")


def check_model_name(name: str) -> None:
    """``window-cnn``, ``window-mlp``, ``seq2seq`` or a one-way recurrent cell name.

    Raises:
        UsageError: unknown name (the message lists the choices) or a missing genotype file.
    """
    if name in (*WINDOW_MODELS, "seq2seq"):
        return
    try:
        parse_cell_name(name, flag="--model", allow_bidirectional=False)
    except UsageError as e:
        if "unknown cell" in str(e) or "bidirectional" in str(e):
            raise UsageError(
                f"--model: unknown model {name!r} (choose from {', '.join(MODEL_CHOICES)})"
            ) from None
        raise
