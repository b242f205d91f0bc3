"""The forecasting app's commands: main job, train, evaluate, forecast, plot, compare,
ensemble.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; notes and errors to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from apps.common import cli
from apps.common.errors import UsageError
from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text, default_run_dir
from apps.forecast.config import (
    BUILTIN_DATA,
    CLASSICAL_CHOICES,
    ForecastConfig,
    check_model_name,
)

APP_MODULE = "apps.forecast"
DEFAULT_COMPARE = ("window-cnn", "window-mlp", "vanilla", "lstm", "gru", "seq2seq")
MAX_COPIES = 10
DESCRIPTION = (
    "Time-series forecasting: the lecture's fixed-window CNN (HIDRA-style) against recurrent\n"
    "models (vanilla, LSTM, GRU, MUT1-3, searched genotypes, seq2seq with attention), with\n"
    "quantile bands, and persistence / seasonal-naive / ETS or SARIMAX baselines measured on the\n"
    "same test period."
)


# ------------------------------------------------------------------- app wiring
def _check_config(config: ForecastConfig) -> None:
    if config.members:
        raise UsageError("--config: an ensemble is made by `python -m apps.forecast ensemble` "
                         "from trained runs, not trained")  # fmt: skip
    check_model_name(config.model)
    if config.model == "seq2seq":
        from apps.common.cells import parse_cell_name

        parse_cell_name(config.cell, flag="--cell", allow_bidirectional=False)
    if config.freq is not None:
        from apps.forecast.data import _offset

        _offset(config.freq)


def _csv_list(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("give comma-separated column names")
    return items


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"give comma-separated numbers, got {text!r}") from None


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(ForecastConfig.small())

    add = parser.add_argument
    add("--target", metavar="COL", help="CSV column to forecast (default: the only value column)")
    add(
        "--covariates",
        type=_csv_list,
        metavar="COLS",
        help="comma-separated CSV columns fed as past inputs (default: none)",
    )
    add(
        "--time-column",
        dest="time_column",
        metavar="COL",
        help="the CSV's time column " + shown("time_column"),
    )
    add(
        "--freq",
        metavar="ALIAS",
        help="resample to this pandas grid (1h, D, W, MS, ...) with the mean per bin; empty bins "
        "are gaps (default: the builtin's grid or the CSV's own regular spacing)",
    )
    add(
        "--season",
        type=cli.int_at_least(2),
        metavar="S",
        help="seasonal period in samples for seasonal naive, ETS/SARIMAX and MASE (default: "
        "from the grid: 12 monthly, 24 hourly, 7 daily, 52 weekly)",
    )
    add(
        "--lookback",
        type=cli.int_at_least(2),
        metavar="L",
        help="past samples fed to the model " + shown("lookback"),
    )
    add(
        "--horizon",
        type=cli.positive_int,
        metavar="H",
        help="future samples forecast at once " + shown("horizon"),
    )
    add(
        "--quantiles",
        type=_quantiles,
        metavar="Q,..",
        help="forecast quantiles, must include 0.5 (default: 0.1,0.5,0.9)",
    )
    add("--cell", metavar="NAME", help="seq2seq encoder/decoder cell " + shown("cell"))
    add(
        "--attention",
        action="store_true",
        default=None,
        help="seq2seq: Bahdanau attention over the encoder outputs (default: off)",
    )
    add(
        "--units",
        type=cli.positive_int,
        metavar="N",
        help="recurrent units / CNN filters " + shown("units"),
    )
    add(
        "--dropout",
        type=cli.float_in(0.0, 0.99),
        metavar="P",
        help="dropout before the output layer " + shown("dropout"),
    )
    add(
        "--trend-change",
        dest="trend_change",
        type=cli.float_in(0.0, 0.99),
        metavar="SIGMA",
        help="augment training windows with a random change of trend from a random step on, "
        "continued through the targets (std in scaled units per step; CO2: 0.002) "
        + shown("trend_change"),
    )
    add(
        "--level",
        choices=("last", "mean", "drift", "none"),
        help="predict changes from each window's last observed value ('last'), its mean "
        "('mean'), its last value plus mean seasonal drift ('drift'), or raw values ('none') "
        + shown("level"),
    )
    add(
        "--learning-rate",
        dest="learning_rate",
        type=cli.float_in(0.0, 1.0, low_open=True),
        metavar="LR",
        help="Adam learning rate " + shown("learning_rate"),
    )
    add(
        "--val-fraction",
        dest="val_fraction",
        type=cli.float_in(0.0, 0.5, low_open=True),
        metavar="F",
        help="share of the series for validation " + shown("val_fraction"),
    )
    add(
        "--test-fraction",
        dest="test_fraction",
        type=cli.float_in(0.0, 0.5, low_open=True),
        metavar="F",
        help="share of the series (at its end) for test " + shown("test_fraction"),
    )
    add(
        "--eval-stride",
        dest="eval_stride",
        type=cli.positive_int,
        metavar="N",
        help="evaluate every N-th test origin " + shown("eval_stride"),
    )
    add(
        "--limit",
        type=cli.int_at_least(10),
        metavar="N",
        help="use only the last N samples of the series (default: all)",
    )
    add("--classical", choices=CLASSICAL_CHOICES,
        help="statsmodels baseline fitted on the training period " + shown("classical"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=ForecastConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _kind(path: Path) -> str | None:
    """``"compare"`` for a compare run dir, ``"train"`` for a train run, None otherwise."""
    return RunDir.kind_of(path, APP_MODULE)


def _open_train_run(path: Path) -> RunDir:
    return RunDir.open_model_run(path, APP_MODULE, group_kind="compare", example="gru")


def _log(quiet: bool):
    return None if quiet else print


# ------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


def _check_train(args: argparse.Namespace) -> None:
    if args.run_dir is not None and _kind(args.run_dir) == "compare":
        raise UsageError(f"--run-dir: {args.run_dir} is a compare run; train needs its own run dir")
    args.prepared = cli.prepare_training(APP, args)
    _check_data(args.prepared[0].data)


def _check_data(spec: str) -> None:
    from apps.forecast.data import check_path_exists

    check_path_exists(spec)


def _baselines_text(metrics: dict[str, Any]) -> str:
    """``name MAE (DM p P)`` per baseline, P the Diebold-Mariano p-value of equal MAE of the
    model and the baseline."""
    parts = []
    for name, m in metrics["baselines"].items():
        dm = m.get("dm_test")
        parts.append(f"{name} {m['mae']:.4g}" + (f" (DM p {dm['p_value']:.2g})" if dm else ""))
    return ", ".join(parts)


def _summary(metrics: dict[str, Any]) -> str:
    base = _baselines_text(metrics)
    return (f"test MAE {metrics['mae']:.4g} (RMSE {metrics['rmse']:.4g}, MASE {metrics['mase']:.3f}, "
            f"{100 * metrics['coverage']:.0f}% inside the q{metrics['band'][0]:g}-"
            f"q{metrics['band'][1]:g} band) over {metrics['origins']} origins; baselines MAE: {base}")  # fmt: skip


def _run_train(args: argparse.Namespace) -> None:
    from apps.forecast.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    print(_summary(metrics))
    print(f"forecast plot: {run.plots / 'forecast.png'}")
    print(f"run dir: {run.path}")


def _run_main(args: argparse.Namespace) -> None:
    from apps.forecast.train import (
        forecast_at,
        forecast_csv,
        load_run_series,
        load_trained,
        train_and_evaluate,
    )

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    trained = load_trained(run)
    series = load_run_series(trained)
    forecast = forecast_at(trained, series, len(series) - 1)
    text = forecast_csv(forecast, list(config.quantiles), config.median_index)
    atomic_write_text(run.samples / "forecast.csv", text)
    print(f"forecast from the end of the series ({forecast['origin_time']}), first steps:")
    for line in text.splitlines()[:5]:
        print("  " + line)
    print(_summary(metrics))
    print(f"forecast plot (last test window): {run.plots / 'forecast.png'}")
    print(f"forecast CSV: {run.samples / 'forecast.csv'}")
    print(f"run dir: {run.path}")


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "a later stretch of the same series to evaluate on (all of it)")
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_train_run(args.run_dir)
    if args.data is not None:
        _check_data(args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.forecast.train import evaluate_trained, load_run_series, load_trained

    trained = load_trained(args.run)
    series = load_run_series(trained, args.data)
    metrics = evaluate_trained(trained, series, data=args.data or trained.config.data,
                               own_series=args.data is None)  # fmt: skip
    print(json.dumps(metrics, ensure_ascii=False))


# ---------------------------------------------------------------------- forecast
def _add_forecast(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "series (builtin:NAME or CSV) to forecast from its end")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE.csv",
        help="where to write the forecast CSV (default: DIR/samples/forecast.csv)",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_forecast(args: argparse.Namespace) -> None:
    args.run = _open_train_run(args.run_dir)
    if args.data is not None:
        _check_data(args.data)
    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a folder; give a file name")


def _run_forecast(args: argparse.Namespace) -> None:
    from apps.forecast.train import forecast_at, forecast_csv, load_run_series, load_trained

    trained = load_trained(args.run)
    series = load_run_series(trained, args.data)
    forecast = forecast_at(trained, series, len(series) - 1)
    text = forecast_csv(forecast, trained.quantiles, trained.config.median_index)
    out = args.out or args.run.samples / "forecast.csv"
    atomic_write_text(out, text)
    sys.stdout.write(text)
    print(f"forecast written to {out}", file=sys.stderr)


# -------------------------------------------------------------------------- plot
def _add_plot(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "series (builtin:NAME or CSV) to plot a forecast on")
    parser.add_argument(
        "--origin",
        default="test",
        metavar="WHEN",
        help="forecast origin: 'test' (the last test window of the run's own "
        "series, truth known), 'end' (from the end of the series), or a time "
        "(ISO 8601) — the last input sample",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE.png", help="output PNG (default: DIR/plots/forecast.png)"
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_plot(args: argparse.Namespace) -> None:
    args.run = _open_train_run(args.run_dir)
    if args.data is not None:
        _check_data(args.data)
    if args.origin == "test" and args.data is not None:
        raise UsageError(
            "--origin test needs the run's own series; with --data give 'end' or a time"
        )
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise UsageError(f"--out: {args.out} must end with .png")


def _origin_index(series: Any, when: str) -> int:
    import numpy as np
    import pandas as pd

    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise UsageError(f"--origin: {when!r} is not 'test', 'end' or an ISO 8601 time") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    t = np.datetime64(stamp.to_datetime64(), "ns")
    index = int(np.searchsorted(series.times, t, side="right")) - 1
    if index < 0 or index >= len(series):
        raise UsageError(f"--origin: {when} is outside the series ({series.time_str(0)} .. "
                         f"{series.time_str(len(series) - 1)})")  # fmt: skip
    return index


def _run_plot(args: argparse.Namespace) -> None:
    from apps.forecast.train import (
        evaluation_origins,
        forecast_at,
        load_run_series,
        load_trained,
        plot_forecast,
    )

    trained = load_trained(args.run)
    series = load_run_series(trained, args.data)
    if args.origin == "test":
        origin = int(evaluation_origins(trained, series, own_series=True)[-1])
    elif args.origin == "end":
        origin = len(series) - 1
    else:
        origin = _origin_index(series, args.origin)
    forecast = forecast_at(trained, series, origin)
    out = args.out or args.run.plots / "forecast.png"
    plot_forecast(trained, series, forecast, out, own_series=args.data is None)
    print(f"forecast plot: {out}")


# ----------------------------------------------------------------------- compare
def _add_compare(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_COMPARE),
        metavar="LIST",
        help="comma-separated models, all trained with the same data and budget; "
        "'seq2seq+att' is seq2seq with attention; 'NAME*K' trains NAME with K seeds (--seed, "
        "--seed + 1, ...) and scores the average of their forecasts",
    )
    parser.set_defaults(model=None)  # fmt: skip


def _safe_name(model: str) -> str:
    if model.lower().startswith("genotype:"):
        model = f"genotype-{Path(model.split(':', 1)[1]).stem}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in model)


def _copies(name: str) -> tuple[str, int]:
    """``"gru*3"`` -> ``("gru", 3)`` (an ensemble of 3 seeds); ``"gru"`` -> ``("gru", 1)``."""
    base, star, count = name.rpartition("*")
    if not star:
        return name, 1
    if not count.isdigit() or not 2 <= int(count) <= MAX_COPIES:
        raise UsageError(f"--models: {name!r}: K in NAME*K must be 2..{MAX_COPIES}")
    return base, int(count)


def _model_overrides(name: str) -> dict[str, Any]:
    name = _copies(name)[0]
    if name == "seq2seq+att":
        return {"model": "seq2seq", "attention": True}
    return {"model": name, "attention": False}


def _check_compare(args: argparse.Namespace) -> None:
    if args.model is not None:
        raise UsageError("compare takes --models LIST, not --model")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models: give at least one model, e.g. --models window-cnn,gru")
    for name in models:
        check_model_name(_model_overrides(name)["model"])  # (and NAME*K's K)
    if len({_safe_name(m) for m in models}) != len(models):
        raise UsageError(f"--models: a model is listed twice: {args.models}")
    config = cli.config_from_args(APP, args)
    _check_data(config.data)
    path = args.run_dir
    if path is None:
        path = default_run_dir(APP_MODULE)
        path = path.with_name("compare-" + path.name)
    kind = _kind(path) if Path(path).is_dir() else None
    if kind == "train":
        raise UsageError(f"--run-dir: {path} is a train run, not a compare run; give a new folder")
    if kind == "compare":
        run = RunDir.open(path, APP_MODULE)
        saved = ForecastConfig.from_dict(run.read_config(), source=str(run.config_json))
        changed = {k: v for k, v in saved.differences(config).items()
                   if k not in ("epochs", "model", "attention")}  # fmt: skip
        if changed:
            what = ", ".join(f"{k}={a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise UsageError(f"--run-dir: {path} compared models with another config ({what})")
    else:
        run = RunDir.prepare(path, APP_MODULE)
    run.write_config(config.to_dict(), kind="compare", models=models)
    args.prepared = (config, run, models)


def compare_models(
    config: ForecastConfig, run: RunDir, models: list[str], *, quiet: bool = True,
    log: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train and evaluate each model in ``run/models/<name>`` with one budget, then write
    ``compare.json``, ``report.md`` and ``plots/compare.png``; returns the compare record."""
    from apps.forecast import plotting
    from apps.forecast.train import train_and_evaluate

    cli.hide_retracing_warnings()  # each model trained here predicts through its own tf.function
    rows, baselines, first = [], None, None
    for name in models:
        if log:
            log(f"== {name}")
        sub = run.path / "models" / _safe_name(name)
        started = time.monotonic()
        sub_config = config.replace(**_model_overrides(name))
        copies = _copies(name)[1]
        if copies == 1:
            metrics = train_and_evaluate(sub_config, RunDir.prepare(sub, APP_MODULE),
                                         quiet=quiet, log=log)  # fmt: skip
        else:
            metrics = _train_ensemble(sub_config, sub, copies, quiet=quiet, log=log)
        first = first or metrics
        baselines = baselines or metrics["baselines"]
        rows.append({"name": name, "kind": "model", "params": metrics["params"],
                     "mae": metrics["mae"], "rmse": metrics["rmse"], "mase": metrics["mase"],
                     "coverage": metrics["coverage"], "mae_per_step": metrics["mae_per_step"],
                     "train_seconds": round(metrics.get("train_seconds",
                                                        time.monotonic() - started), 1),
                     "run_dir": str(sub)})  # fmt: skip
        rows[-1]["dm_tests"] = {k: b.get("dm_test") for k, b in metrics["baselines"].items()}
        if copies > 1:
            rows[-1]["member_mae"] = metrics["member_mae"]
        if log:
            log(f"   MAE {metrics['mae']:.4g}, RMSE {metrics['rmse']:.4g}, "
                f"coverage {metrics['coverage']:.2f}")  # fmt: skip
    for name, m in (baselines or {}).items():
        rows.append({"name": name, "kind": "baseline", "params": None, "mae": m["mae"],
                     "rmse": m["rmse"], "mase": m["mase"], "coverage": None,
                     "mae_per_step": m["mae_per_step"], "train_seconds": None, "run_dir": None})  # fmt: skip
    record = {"config": config.to_dict(), "rows": rows,
              "period": first["period"], "origins": first["origins"],
              "season": first["season"], "notes": first.get("baseline_notes", {})}  # fmt: skip
    record["verdict"] = verdict(rows)
    atomic_write_json(run.path / "compare.json", record)
    atomic_write_text(run.path / "report.md", compare_report(config, record))
    plotting.compare_plot(rows, run.plots / "compare.png",
                          title=f"{config.data}: lookback {config.lookback}, horizon "
                          f"{config.horizon}")  # fmt: skip
    return record


def _train_ensemble(
    config: ForecastConfig, folder: Path, copies: int, *, quiet: bool, log: Any
) -> dict[str, Any]:
    """Train ``config`` with ``copies`` seeds in ``folder/s<seed>`` and score the average of
    their forecasts (``folder/ensemble``, remade each time)."""
    import shutil

    from apps.forecast.ensemble import make_ensemble_run
    from apps.forecast.train import train_and_evaluate

    runs, seconds = [], 0.0
    for seed in range(config.seed, config.seed + copies):
        member = RunDir.prepare(folder / f"s{seed}", APP_MODULE)
        metrics = train_and_evaluate(config.replace(seed=seed), member, quiet=quiet, log=log)
        seconds += metrics.get("train_seconds") or 0.0
        runs.append(member)
    shutil.rmtree(folder / "ensemble", ignore_errors=True)
    metrics = make_ensemble_run(runs, folder / "ensemble")
    metrics["train_seconds"] = seconds
    return metrics


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best recurrent model, the window CNN, and whether the former beats every baseline."""
    models = [r for r in rows if r["kind"] == "model"]
    bases = [r for r in rows if r["kind"] == "baseline"]
    recurrent = [r for r in models if not r["name"].startswith("window-")]
    out: dict[str, Any] = {}
    if recurrent:
        best = min(recurrent, key=lambda r: r["mae"])
        out["best_recurrent"] = best["name"]
        out["best_recurrent_mae"] = best["mae"]
        if bases:
            out["best_recurrent_beats_all_baselines"] = all(best["mae"] < b["mae"] for b in bases)
            strongest = min(bases, key=lambda r: r["mae"])["name"]
            dm = best.get("dm_tests", {}).get(strongest)
            if dm:
                out["best_recurrent_dm_p_value"] = dm["p_value"]
    cnn = [r for r in models if r["name"] == "window-cnn"]
    if cnn:
        out["window_cnn_mae"] = cnn[0]["mae"]
    if bases:
        b = min(bases, key=lambda r: r["mae"])
        out["best_baseline"], out["best_baseline_mae"] = b["name"], b["mae"]
    return out


def compare_report(config: ForecastConfig, record: dict[str, Any]) -> str:
    """The compare table as markdown."""
    v = record["verdict"]
    augmented = f", trend change {config.trend_change:g}" if config.trend_change else ""
    lines = [
        f"# Forecasting models on {config.data}",
        "",
        (
            f"Test period {record['period'][0]} .. {record['period'][1]} ({record['origins']} "
            f"origins), lookback {config.lookback}, horizon {config.horizon}, season "
            f"{record['season']}; every model trained with {config.epochs} epochs, batch size "
            f"{config.batch_size}, learning rate {config.learning_rate}, {config.units} units, "
            f"seed {config.seed}, quantiles {list(config.quantiles)}{augmented}. Baselines "
            "forecast the same origins; the classical one is fitted on the training period only."
        ),
        "",
        "| Method | Kind | Parameters | MAE | RMSE | MASE | Band coverage | Training time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["rows"]:
        params = f"{r['params']:,}" if r["params"] is not None else "-"
        cov = f"{100 * r['coverage']:.0f}%" if r["coverage"] is not None else "-"
        secs = f"{r['train_seconds']:.1f}" if r["train_seconds"] is not None else "-"
        lines.append(f"| {r['name']} | {r['kind']} | {params} | {r['mae']:.4g} | {r['rmse']:.4g} | "
                     f"{r['mase']:.3f} | {cov} | {secs} |")  # fmt: skip
    lines.append("")
    if "best_recurrent" in v:
        beats = v.get("best_recurrent_beats_all_baselines")
        lines.append(f"Best recurrent model: **{v['best_recurrent']}** (MAE "
                     f"{v['best_recurrent_mae']:.4g}); best baseline: {v.get('best_baseline')} "
                     f"(MAE {v.get('best_baseline_mae', float('nan')):.4g}); beats every baseline: "
                     f"**{'yes' if beats else 'no'}**.")  # fmt: skip
        if "best_recurrent_dm_p_value" in v:
            lines.append(f"Diebold-Mariano test of equal MAE, best recurrent model against the "
                         f"best baseline: p = {v['best_recurrent_dm_p_value']:.2g}.")  # fmt: skip
    if "window_cnn_mae" in v:
        lines.append(
            f"Window CNN (the lecture's fixed-window model): MAE {v['window_cnn_mae']:.4g}."
        )
    for name, note in record.get("notes", {}).items():
        lines.append(f"Note: {name}: {note}.")
    lines += ["", "![MAE per method and per horizon step](plots/compare.png)", ""]
    return "\n".join(lines)


def _run_compare(args: argparse.Namespace) -> None:
    config, run, models = args.prepared
    compare_models(config, run, models, quiet=args.quiet, log=_log(args.quiet) or print)
    print((run.path / "report.md").read_text(encoding="utf-8"))
    print(f"report: {run.path / 'report.md'}")
    print(f"run dir: {run.path}")


# ---------------------------------------------------------------------- ensemble
def _add_ensemble(parser: argparse.ArgumentParser) -> None:
    cli.add_ensemble_arguments(
        parser,
        members_help="two or more trained runs of one series, split, lookback, horizon and "
        "quantiles",
        data_help="a later stretch of the same series to evaluate on (default: the members' "
        "test period)",
    )


def _check_ensemble(args: argparse.Namespace) -> None:
    from apps.forecast.ensemble import check_members

    runs = cli.open_members(args.members, _open_train_run)
    check_members(runs)
    cli.check_new_folder(args.run_dir)
    if args.data is not None:
        _check_data(args.data)
    args.runs = runs


def _run_ensemble(args: argparse.Namespace) -> None:
    from apps.forecast.ensemble import make_ensemble_run

    metrics = make_ensemble_run(args.runs, args.run_dir, data=args.data)
    if not args.quiet:
        for path, mae in zip(metrics["members"], metrics["member_mae"]):
            print(f"member {path}: MAE {mae:.4g}")
        print(f"ensemble of {len(args.runs)}: MAE {metrics['mae']:.4g} over "
              f"{metrics['origins']} origins; baselines MAE: {_baselines_text(metrics)}; "
              f"run dir {args.run_dir}")  # fmt: skip
    print(json.dumps(metrics, ensure_ascii=False))


# -------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train a GRU on builtin:co2 (--size small), evaluate it against the baselines, forecast "
    "from the end of the series, write plots/forecast.png",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a model (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "MAE/RMSE/MASE per step, band coverage and baselines as one JSON line "
             "(also DIR/metrics.json)", _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("forecast", "forecast from the end of a series; prints and writes the CSV",
             _add_forecast, _run_forecast, _check_forecast),
    cli.Verb("plot", "history, forecast, band and truth where known as a PNG",
             _add_plot, _run_plot, _check_plot),
    cli.Verb("compare", "train several models with one budget beside the baselines; "
             "DIR/report.md, plots/compare.png", _add_compare, _run_compare, _check_compare),
    cli.Verb("ensemble", "average the forecasts of trained runs into one model in a new run "
             "dir, and evaluate it", _add_ensemble, _run_ensemble, _check_ensemble),
]  # fmt: skip
