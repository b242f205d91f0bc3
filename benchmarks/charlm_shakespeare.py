"""Tiny-shakespeare validation loss of a suite RNN; the target is <= 1.50 nats per character.

Trains ``apps.charlm`` (truncated BPTT, stateful streams, gradient-norm clipping) on
``tinyshakespeare/input.txt`` (the first 90% trains, the last 10% validates) and reports the
best validation nats/char after each epoch, with wall time. The run dir makes it resumable:
re-running the same command continues from the last finished epoch.

    python benchmarks/charlm_shakespeare.py             # 2 x 512 LSTM, up to 25 epochs of ~3-5 min
    python benchmarks/charlm_shakespeare.py --epochs 12 # stop (and report) after 12 epochs
    python benchmarks/charlm_shakespeare.py --epochs 1 --units 256 --layers 1   # a short partial run

Writes ``benchmarks/out/charlm_shakespeare.{json,md}`` (and the run dir under benchmarks/out/).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
TARGET = 1.50


def add_training_flags(parser: argparse.ArgumentParser, *, layers: int, dropout: float,
                       epochs: int) -> None:  # fmt: skip
    """The data and training flags of a tiny-shakespeare run (``charlm_cells.py`` shares them)."""
    add = parser.add_argument
    add("--data", type=Path, default=DEFAULT_DATA, help="tinyshakespeare input.txt")
    add("--layers", type=int, default=layers)
    add("--embedding-dim", type=int, default=64)
    add("--dropout", type=float, default=dropout)
    add("--bptt", type=int, default=100)
    add("--batch-size", type=int, default=64)
    add("--epochs", type=int, default=epochs)
    add("--learning-rate", type=float, default=2e-3)
    add("--clipnorm", type=float, default=5.0)
    add("--seed", type=int, default=1234)


def make_config(args: argparse.Namespace, *, cell: str, units: int) -> Any:
    """The app config of a tiny-shakespeare run: ``args``' training flags, one cell and size."""
    from apps.charlm.config import CharLMConfig

    return CharLMConfig.base().replace(
        data=str(args.data),
        max_chars=None,
        cell=cell,
        layers=args.layers,
        units=units,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        bptt=args.bptt,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        seed=args.seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add_training_flags(parser, layers=2, dropout=0.25, epochs=25)
    add("--cell", default="lstm", help="suite cell: lstm, gru, vanilla, mut1..3, genotype:PATH")
    add("--units", type=int, default=512)
    add(
        "--run-dir",
        type=Path,
        help="default: benchmarks/out/charlm_shakespeare_<cell>_<layers>x<units>",
    )
    add("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(
            f"error: {args.data} not found (give --data .../tinyshakespeare/input.txt)"
        )

    from apps.charlm.train import train_and_evaluate
    from apps.common.rundir import atomic_write_json, atomic_write_text

    config = make_config(args, cell=args.cell, units=args.units)
    run_dir = (
        args.run_dir or args.out / f"charlm_shakespeare_{args.cell}_{args.layers}x{args.units}"
    )
    started = time.monotonic()
    metrics = train_and_evaluate(config, run_dir, quiet=False, log=print)
    wall = time.monotonic() - started
    with open(Path(run_dir) / "history.csv", newline="") as f:
        history = [
            {
                "epoch": int(r["epoch"]) + 1,
                "val_nats_per_char": float(r["val_loss"]),
                "train_nats_per_char": float(r["loss"]),
            }
            for r in csv.DictReader(f)
        ]
    best = metrics["val_nats_per_char"]
    result = {
        "target_nats_per_char": TARGET,
        "reached": best <= TARGET,
        "best_val_nats_per_char": best,
        "best_val_bits_per_char": metrics["val_bits_per_char"],
        "epochs_done": len(history),
        "epochs_planned": args.epochs,
        "wall_seconds_this_call": round(wall, 1),
        "train_seconds_total": metrics.get("train_seconds"),
        "params": metrics["params"],
        "config": config.to_dict(),
        "history": history,
        "run_dir": str(run_dir),
        "device": f"CPU: {os.cpu_count()} cores visible, {platform.processor() or platform.machine()}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "charlm_shakespeare.json", result)
    lines = [
        "# Char LM on tiny-shakespeare",
        "",
        (
            f"{args.layers} x {args.cell}, {args.units} units ({metrics['params']:,} parameters), "
            f"windows of {args.bptt} x {args.batch_size} streams, dropout {args.dropout}, "
            f"Adam {args.learning_rate}, clipnorm {args.clipnorm}. {result['device']}."
        ),
        "",
        (
            f"Best validation: **{best:.4f} nats/char** ({metrics['val_bits_per_char']:.4f} "
            f"bits/char) after {len(history)} of {args.epochs} epochs; target <= {TARGET} "
            f"nats/char: {'reached' if result['reached'] else 'not reached'}. Training time "
            f"{result['train_seconds_total']} s."
        ),
        "",
        "| Epoch | Train nats/char | Validation nats/char |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {h['epoch']} | {h['train_nats_per_char']:.4f} | {h['val_nats_per_char']:.4f} |"
        for h in history
    ]
    atomic_write_text(args.out / "charlm_shakespeare.md", "\n".join(lines) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("best_val_nats_per_char", "reached", "epochs_done", "train_seconds_total")
            }
        )
    )


if __name__ == "__main__":
    main()
