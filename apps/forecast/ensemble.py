"""Ensembles of forecasters: the members' quantile forecasts averaged, as one model.

Forecasters trained on the same windows with other seeds (or other models) err differently;
the mean of their quantile forecasts (the "Vincentized" average; still increasing in the
quantile level, since each member's is) usually has a lower error than a typical member.
:func:`build_ensemble` wraps trained members in one ``keras.Model`` with the same input and
output as a single forecaster (``window (B, L, C)`` -> ``(B, H, Q)``), so ``evaluate``,
``forecast``, ``plot`` and ``python -m export`` work on it as on any run.
:func:`make_ensemble_run` writes such a run dir (the app's ``ensemble`` verb and the ``NAME*K``
entries of ``compare`` use it).

Members must read the series alike: the same data, target, covariates, grid, split, lookback,
horizon and quantiles, and so the same training-period scaler (checked). Imports no
TensorFlow until a model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apps.common.errors import UsageError
from apps.common.rundir import RunDir, atomic_write_json

MEMBER_PREFIX = "member_"
SHARED_KEYS = ("data", "target", "covariates", "time_column", "freq", "season", "lookback",
               "horizon", "quantiles", "val_fraction", "test_fraction", "eval_stride", "limit",
               "classical")  # fmt: skip


def build_ensemble(models: Sequence[Any], name: str = "forecast_ensemble") -> Any:
    """One forecaster averaging the quantile forecasts of ``models``.

    Args:
        models: two or more trained forecasters with one input shape ``(L, C)`` and one output
            shape ``(H, Q)``. Their layers (and weights) are shared, not copied.
        name: the model's name.

    Returns:
        ``keras.Model`` ``window (B, L, C) -> (B, H, Q)``; member ``i`` is the nested model
        ``member_i``.

    Raises:
        ValueError: fewer than two models, or shapes that differ.
    """
    import keras

    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models. Received: {len(models)}")
    in_shape, out_shape = models[0].inputs[0].shape[1:], models[0].outputs[0].shape[1:]
    window = keras.Input(shape=in_shape, name="window")
    outputs = []
    for i, model in enumerate(models, 1):
        if model.inputs[0].shape[1:] != in_shape or model.outputs[0].shape[1:] != out_shape:
            raise ValueError(f"member {i} ({model.name}) maps {model.inputs[0].shape[1:]} to "
                             f"{model.outputs[0].shape[1:]}, member 1 {in_shape} to {out_shape}")  # fmt: skip
        member = keras.Model(model.inputs[0], model.outputs[0], name=f"{MEMBER_PREFIX}{i}")
        outputs.append(member(window))
    out = keras.layers.Average(name="quantiles")(outputs)
    return keras.Model(window, out, name=name)


def check_members(runs: Sequence[RunDir], flag: str = "RUN") -> None:
    """Refuse members that do not read the series alike (one line naming the difference).

    Raises:
        UsageError: a differing :data:`SHARED_KEYS` value, or another scaler.
    """
    from apps.forecast.train import SCALER_FILE, read_run_config

    def shared(run: RunDir) -> dict[str, Any]:
        config, meta = read_run_config(run)
        values = {key: getattr(config, key) for key in SHARED_KEYS}
        # the grid and season in use, whether given or the source's own
        values.update({key: meta[key] for key in ("freq", "season") if key in meta})
        return values

    first = shared(runs[0])
    scaler = runs[0].read_json(SCALER_FILE)
    for run in runs[1:]:
        values = shared(run)
        for key in SHARED_KEYS:
            if values[key] != first[key]:
                raise UsageError(f"{flag}: {run.path} has {key} {values[key]!r}, "
                                 f"{runs[0].path} {first[key]!r}; members must read "
                                 "the series alike")  # fmt: skip
        if run.read_json(SCALER_FILE) != scaler:
            raise UsageError(f"{flag}: {run.path} was scaled unlike {runs[0].path}")


def make_ensemble_run(
    runs: Sequence[RunDir], out: Any, *, data: str | None = None, plot: bool = True
) -> dict[str, Any]:
    """Write an ensemble of trained ``runs`` to the run dir ``out`` and evaluate it.

    ``out`` gets ``model.keras``, the first member's ``scaler.json`` and ``baselines.json``, a
    ``config.json`` with ``model: "ensemble"`` and the ``members``, ``metrics.json`` and
    ``plots/forecast.png``. Call :func:`check_members` first.

    Args:
        runs: the members' run dirs.
        out: a new or empty folder.
        data: evaluate on this later stretch of the series instead of the test period.
        plot: draw the forecast from the last evaluation origin.

    Returns:
        :func:`apps.forecast.train.evaluate_trained`'s metrics plus ``member_mae``.
    """
    from apps.common.cli import hide_retracing_warnings
    from apps.forecast.train import (
        BASELINES_FILE,
        SCALER_FILE,
        TrainedRun,
        evaluate_trained,
        evaluation_origins,
        forecast_at,
        load_run_series,
        load_trained,
        plot_forecast,
    )

    hide_retracing_warnings()
    members = [load_trained(run) for run in runs]
    first = members[0]
    series = load_run_series(first, data)
    spec = data or first.config.data
    member_mae = [
        evaluate_trained(m, series, data=spec, own_series=data is None, write=False)["mae"]
        for m in members
    ]
    run = RunDir.prepare(out, "apps.forecast")
    run.write_json(SCALER_FILE, first.run.read_json(SCALER_FILE))
    run.write_json(BASELINES_FILE, first.run.read_json(BASELINES_FILE))
    model = build_ensemble([m.model for m in members])
    with run.output("model.keras") as tmp:
        model.save(tmp)
    config = first.config.replace(
        model="ensemble", units=sum(m.config.units for m in members),
        members=tuple(str(r.path.resolve()) for r in runs),
    )  # fmt: skip
    extras = {k: v for k, v in first.meta.items() if k not in ("app", "format", "config")}
    run.write_config(config.to_dict(), **extras)
    trained = TrainedRun(run, config, first.meta, first.scaler, first.baselines, model)
    metrics = evaluate_trained(trained, series, data=spec, own_series=data is None, write=False)
    metrics["member_mae"] = member_mae
    metrics["members"] = list(config.members)
    atomic_write_json(run.metrics_json, metrics)
    if plot:
        last = evaluation_origins(trained, series, own_series=data is None)[-1]
        plot_forecast(trained, series, forecast_at(trained, series, int(last)),
                      run.plots / "forecast.png")  # fmt: skip
    return metrics
