"""The lecture's fixed-window CNN against recurrent forecasters, beside the baselines.

Two settings, each run through ``apps.forecast``'s ``compare`` (every model trained with the
same data, split and budget; persistence, seasonal naive and ETS forecast the same test
origins, ETS fitted on the training period only):

- ``sealevel``: the Koper tide-gauge record (``../shared/data/sealevel/koper_hidra2_hourly.csv``,
  hourly, 11,832 hours, 8 gaps) — the HIDRA setting: 72 hours ahead from the last
  ``--sea-lookback`` hours, season 24. Extra rows: seasonal naive with season 25 (two
  semidiurnal M2 tides, 24.84 h, are closer to 25 h than to 24 h), so the neural models are
  also held against the strongest naive tide forecast;
- ``co2``: ``builtin:co2``, monthly Mauna Loa CO2, 96 months in, 12 months out, season 12
  (the main job's setting; the lookback was chosen on the validation period).

Writes ``benchmarks/out/forecast_compare.json`` and ``.md`` (one table per setting, MAE on
the test period) and the run dirs under ``--runs`` (default ``runs/forecast-bench``); prints
the tables. Honest by construction: the verdict line says whether the best recurrent model
beats every baseline, whatever the answer.

Usage::

    python benchmarks/forecast_compare.py   # both settings: 2.5 CPU-minutes; 20 min wall on a busy 2-core box
    python benchmarks/forecast_compare.py --only co2 --co2-models window-cnn,gru
    # the CO2 recipe (~6 min on 2 cores):
    python benchmarks/forecast_compare.py --only co2 --co2-models window-cnn,gru*5 --units 128 --co2-epochs 200 --co2-trend-change 0.002
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--only", choices=("sealevel", "co2"), help="run one setting only")
    p.add_argument(
        "--sea-models",
        default="window-cnn,gru",
        help="comma-separated models for sealevel (as compare --models)",
    )
    p.add_argument("--co2-models", default="window-cnn,window-mlp,gru,lstm,seq2seq",
                   help="comma-separated models for co2 (as compare --models)")  # fmt: skip
    p.add_argument("--sea-data", default=str(SHARED / "sealevel" / "koper_hidra2_hourly.csv"))
    p.add_argument("--sea-lookback", type=int, default=72)
    p.add_argument("--sea-epochs", type=int, default=10)
    p.add_argument("--co2-lookback", type=int, default=96)
    p.add_argument("--co2-epochs", type=int, default=80)
    p.add_argument("--co2-trend-change", type=float, default=0.0,
                   help="co2: the trend-change augmentation of the training windows")  # fmt: skip
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--runs", default=str(REPO / "runs" / "forecast-bench"), help="run dirs")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="output folder")
    return p.parse_args(argv)


def settings(args: argparse.Namespace) -> dict[str, dict]:
    out = {
        "sealevel": {"data": args.sea_data, "lookback": args.sea_lookback, "horizon": 72,
                     "season": 24, "epochs": args.sea_epochs, "batch_size": 64,
                     "units": args.units, "seed": args.seed},
        "co2": {"data": "builtin:co2", "lookback": args.co2_lookback, "horizon": 12,
                "season": 12, "epochs": args.co2_epochs, "batch_size": 32, "units": args.units,
                "seed": args.seed, "trend_change": args.co2_trend_change},
    }  # fmt: skip
    return {k: v for k, v in out.items() if args.only in (None, k)}


def extra_baselines(config, record: dict) -> list[dict]:
    """Seasonal naive with season 25 on the sea-level test origins (same points)."""
    from apps.forecast import baselines as bl
    from apps.forecast import metrics as mx
    from apps.forecast.data import (
        chronological_split,
        gather_targets,
        load_series,
        split_origins,
        usable_origins,
    )

    series = load_series(config.data, freq=None)
    L, H = config.lookback, config.horizon
    split = chronological_split(len(series), L, H, config.val_fraction, config.test_fraction)
    origins = usable_origins(series.target, split_origins(split, L, H)["test"], L, H,
                             need_truth=True)  # fmt: skip
    truth = gather_targets(series.target, origins, H)
    scale = mx.mase_scale(series.target[: split.train_end], config.season)
    pred = bl.seasonal_naive(series.target, origins, H, 25)
    m = mx.point_metrics(pred, truth, scale)
    assert len(origins) == record["origins"]
    return [{"name": "seasonal_naive_s25", "kind": "baseline", "params": None, "mae": m["mae"],
             "rmse": m["rmse"], "mase": m["mase"], "coverage": None,
             "mae_per_step": m["mae_per_step"], "train_seconds": None, "run_dir": None}]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from apps.common.cli import import_backend

    import_backend()
    from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text
    from apps.forecast.config import ForecastConfig
    from apps.forecast.verbs import compare_models, compare_report, verdict

    model_lists = {"sealevel": args.sea_models, "co2": args.co2_models}
    results, sections = {}, []
    for name, overrides in settings(args).items():
        models = [m.strip() for m in model_lists[name].split(",") if m.strip()]
        if name == "sealevel" and not Path(overrides["data"]).is_file():
            print(f"skipping sealevel: {overrides['data']} not found", file=sys.stderr)
            continue
        config = ForecastConfig.small().replace(**overrides)
        run = RunDir.prepare(Path(args.runs) / name, "apps.forecast")
        run.write_config(config.to_dict(), kind="compare", models=models)
        print(f"=== {name}: {config.data}", flush=True)
        started = time.monotonic()
        record = compare_models(config, run, models, quiet=True, log=print)
        if name == "sealevel":
            record["rows"] += extra_baselines(config, record)
            record["verdict"] = verdict(record["rows"])
        record["wall_seconds"] = round(time.monotonic() - started, 1)
        results[name] = record
        figure = os.path.relpath(run.path / "plots" / "compare.png", args.out)
        sections.append(compare_report(config, record).replace("plots/compare.png", figure))
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count()}  # fmt: skip
    out = Path(args.out)
    atomic_write_json(out / "forecast_compare.json", {"meta": meta, "settings": results})
    text = "\n\n".join(sections) + "\n"
    atomic_write_text(out / "forecast_compare.md", text)
    print(text)
    print(f"wrote {out / 'forecast_compare.json'} and {out / 'forecast_compare.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
