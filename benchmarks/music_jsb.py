"""Polyphonic music benchmark: piano-roll NLL per time step of recurrent cells at matched size.

Trains the music app's piano-roll model (88 independent sigmoids per time step) with each cell
at (about) the same number of parameters on a Boulanger-Lewandowski dataset, keeps the epoch
with the best validation NLL, and reports the test negative log-likelihood per time step (sum
over the 88 keys, mean over all test time steps; every frame predicted, the first from an
all-off frame). Papers differ on the first frame of each piece: Bai et al. 2018's code leaves it
out and averages per piece, so the table also gives the NLL without first frames
(``w/o 1st frame``) and that per-piece average (``TCN-style``). Writes
``benchmarks/out/music_<dataset>.json`` and ``.md``.

Published test NLL per time step (lower is better):

=========== ===================== ================================
dataset     Chung et al. 2014     Bai et al. 2018
=========== ===================== ================================
JSB         GRU 8.54, LSTM 8.67,  GRU 8.43, LSTM 8.45, TCN 8.10
            tanh RNN 9.10
Nottingham  GRU 3.13, LSTM 3.49,  GRU 3.46, LSTM 3.29, TCN 3.07
            tanh RNN 3.22
=========== ===================== ================================

Usage::

    python benchmarks/music_jsb.py                         # JSB, GRU LSTM vanilla MUT1-3
    python benchmarks/music_jsb.py --cells gru              # ~4-6 min on 2 CPU cores
    python benchmarks/music_jsb.py --dataset nottingham --cells gru,lstm
    python benchmarks/music_jsb.py --data my_rolls.json.gz --steps-per-quarter 2
    python benchmarks/music_jsb.py --dataset nottingham --patience 20 --weight-noise 0.02 --ensemble

``--ensemble`` adds a row for the ensemble of every cell's model (their key probabilities
averaged, :mod:`apps.music.ensemble`); its parameters are the members' together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common

SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data")) / "music"
DATASETS = {
    "jsb": SHARED / "jsb_chorales" / "jsb-chorales-quarter.json",
    "nottingham": SHARED / "boulanger_lewandowski" / "Nottingham.json.gz",
    "musedata": SHARED / "boulanger_lewandowski" / "MuseData.json.gz",
    "piano_midi": SHARED / "boulanger_lewandowski" / "Piano_midi.json.gz",
}
PUBLISHED = {
    "jsb": {"Chung et al. 2014": {"gru": 8.54, "lstm": 8.67, "vanilla": 9.10},
            "Bai et al. 2018": {"gru": 8.43, "lstm": 8.45, "tcn": 8.10}},
    "nottingham": {"Chung et al. 2014": {"gru": 3.13, "lstm": 3.49, "vanilla": 3.22},
                   "Bai et al. 2018": {"gru": 3.46, "lstm": 3.29, "tcn": 3.07}},
}  # fmt: skip
CELLS = ("gru", "lstm", "vanilla", "mut1", "mut2", "mut3")


def units_for_params(cell: str, target: int, layers: int = 1) -> tuple[int, int]:
    """The hidden size whose roll model has the parameter count closest to ``target``."""
    from apps.music.model import build_model

    def count(units: int) -> int:
        return build_model("roll", cell, units=units, layers=layers).count_params()

    return common.units_for_params(count, target)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default="jsb", help="benchmark set")
    p.add_argument("--data", type=Path, help="a piano-roll JSON(.gz) instead of --dataset")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    p.add_argument("--params", type=int, default=120000, help="parameter budget per model")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--epochs", type=int, default=160, help="most epochs")
    p.add_argument(
        "--patience",
        type=int,
        default=10,
        help="early stopping on validation NLL (LR halved after patience // 3)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="pieces per batch")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--dropout", type=float, default=0.0, help="after each layer")
    p.add_argument("--weight-noise", type=float, default=0.0,
                   help="std of Gaussian weight noise at each training step")  # fmt: skip
    p.add_argument("--transpose", type=int, default=0,
                   help="random transposition of training windows by -K..K semitones")  # fmt: skip
    p.add_argument(
        "--seq-len", type=int, default=200, help="training window (JSB pieces fit whole)"
    )
    p.add_argument("--ensemble", action="store_true",
                   help="also evaluate the ensemble of all the cells' models (averaged key "
                        "probabilities, `python -m apps.music ensemble`)")  # fmt: skip
    p.add_argument("--steps-per-quarter", type=int, default=1, help="only used to write MIDI")
    p.add_argument("--seed", type=int, default=1234, help="weights and shuffling")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out", help="results")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from apps.common.cli import import_backend

    import_backend()
    from apps.music.config import MusicConfig
    from apps.music.train import train_and_evaluate

    data = args.data or DATASETS[args.dataset]
    name = data.name.split(".")[0].lower() if args.data else args.dataset
    if not data.is_file():
        print(f"error: {data} not found (set RNNSUITE_SHARED_DATA or give --data)", file=sys.stderr)
        return 2
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    rows = []
    for cell in cells:
        units, params = units_for_params(cell, args.params, args.layers)
        config = MusicConfig(data=str(data), representation="roll", cell=cell, units=units,
                             layers=args.layers, dropout=args.dropout, seq_len=args.seq_len,
                             steps_per_quarter=args.steps_per_quarter, epochs=args.epochs,
                             batch_size=args.batch_size, learning_rate=args.learning_rate,
                             patience=args.patience, transpose=args.transpose,
                             weight_noise=args.weight_noise, seed=args.seed)  # fmt: skip
        tag = (
            f"p{args.params}_l{args.layers}_d{args.dropout:g}_b{args.batch_size}"
            f"_lr{args.learning_rate:g}_s{args.seed}"
            + (f"_t{args.transpose}" if args.transpose else "")
            + (f"_wn{args.weight_noise:g}" if args.weight_noise else "")
            + f"_e{args.epochs}"
        )  # a resumable run per setting
        run_dir = args.out / "runs" / f"music_{name}_{cell}_{tag}"
        print(f"== {cell}: {units} units, {params:,} parameters -> {run_dir}", flush=True)
        started = time.monotonic()
        metrics = train_and_evaluate(config, run_dir, quiet=args.quiet,
                                     log=None if args.quiet else print)  # fmt: skip
        history = (run_dir / "history.csv").read_text().strip().splitlines()[1:]
        val = [float(r.split(",")[2]) * 88 for r in history]
        row = {"cell": cell, "units": units, "params": params,
               "test_nll_per_step": round(metrics["nll_per_step"], 4),
               "test_nll_from_second": round(metrics["nll_per_step_from_second"], 4),
               "test_nll_tcn": round(metrics["nll_per_step_tcn"], 4),
               "frame_accuracy": round(metrics["frame_accuracy"], 4),
               "best_valid_nll_windows": round(min(val), 4), "epochs_run": len(val),
               "best_epoch": 1 + val.index(min(val)),
               "train_seconds": metrics.get("train_seconds"),
               "wall_seconds": round(time.monotonic() - started, 1), "run_dir": str(run_dir)}  # fmt: skip
        rows.append(row)
        print(f"   test NLL {row['test_nll_per_step']:.3f} per step (best epoch {row['best_epoch']} "
              f"of {row['epochs_run']})", flush=True)  # fmt: skip
        _write(args, name, data, rows)
    if args.ensemble and len(rows) >= 2:
        rows.append(ensemble_row(rows, args.out / "runs" / f"music_{name}_ensemble_{tag}"))
        print(f"== ensemble of {len(rows) - 1}: test NLL {rows[-1]['test_nll_per_step']:.3f} "
              "per step", flush=True)  # fmt: skip
        _write(args, name, data, rows)
    return 0


def ensemble_row(rows: list[dict], run_dir: Path) -> dict:
    """The row of the ensemble of the rows' run dirs, made and evaluated by the app's
    ``ensemble`` verb in ``run_dir`` (replaced if it is there from an earlier call)."""
    import contextlib
    import io
    import shutil

    from apps.common import cli
    from apps.music import verbs

    if (run_dir / "config.json").is_file():
        shutil.rmtree(run_dir)
    argv = ["ensemble", "--run-dir", str(run_dir), *(r["run_dir"] for r in rows), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)
    if status != 0:
        raise RuntimeError(f"python -m apps.music {' '.join(argv)} exited {status}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"cell": "ensemble (" + "+".join(r["cell"] for r in rows) + ")",
            "units": metrics["units"], "params": metrics["params"],
            "test_nll_per_step": round(metrics["nll_per_step"], 4),
            "test_nll_from_second": round(metrics["nll_per_step_from_second"], 4),
            "test_nll_tcn": round(metrics["nll_per_step_tcn"], 4),
            "frame_accuracy": round(metrics["frame_accuracy"], 4),
            "best_valid_nll_windows": None, "epochs_run": None, "best_epoch": None,
            "train_seconds": sum(r["train_seconds"] or 0 for r in rows) or None,
            "wall_seconds": None, "run_dir": str(run_dir)}  # fmt: skip


def _epochs(row: dict) -> str:
    return "-" if row["best_epoch"] is None else f"{row['best_epoch']}/{row['epochs_run']}"


def _write(args: argparse.Namespace, name: str, data: Path, rows: list[dict]) -> None:
    from apps.common.rundir import atomic_write_json, atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    setup = {"data": str(data), "params_target": args.params, "layers": args.layers,
             "epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size,
             "learning_rate": args.learning_rate, "dropout": args.dropout,
             "weight_noise": args.weight_noise,
             "seq_len": args.seq_len, "seed": args.seed}  # fmt: skip
    published = PUBLISHED.get(name, {})
    atomic_write_json(args.out / f"music_{name}.json", {"setup": setup, "rows": rows,
                                                        "published": published})  # fmt: skip
    lines = [
        f"# Piano-roll NLL on {name} ({data.name})",
        "",
        (
            f"Test negative log-likelihood per time step (sum over 88 keys, mean over all test "
            f"steps; lower is better). ~{args.params:,} parameters per model, {args.layers} "
            f"layer(s), Adam lr {args.learning_rate}, batch {args.batch_size}, dropout "
            f"{args.dropout}, weight noise {args.weight_noise}, at most {args.epochs} epochs "
            f"with early stopping (patience {args.patience}) on validation NLL; the best "
            "validation epoch is evaluated. One seed."
        ),
        "",
        (
            "| Cell | Units | Parameters | Test NLL/step | w/o 1st frame | TCN-style "
            "| Frame acc. | Best epoch | Train s |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['units']} | {r['params']:,} | {r['test_nll_per_step']:.3f} | "
                     f"{r['test_nll_from_second']:.3f} | {r['test_nll_tcn']:.3f} | "
                     f"{r['frame_accuracy']:.3f} | "
                     f"{_epochs(r)} | {r['train_seconds']} |")  # fmt: skip
    for paper, numbers in published.items():
        shown = ", ".join(f"{k} {v}" for k, v in numbers.items())
        lines.append(f"\nPublished ({paper}): {shown}.")
    atomic_write_text(args.out / f"music_{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
