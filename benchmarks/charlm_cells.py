"""Tiny-shakespeare: the suite's cells compared at matched parameter counts on one budget.

Every cell (LSTM, GRU, vanilla tanh RNN, MUT1-3) gets the hidden size whose char LM has the
parameter count closest to ``--params`` (default: that of the ``--units`` LSTM), and the same
data, windows, optimiser, seed and number of epochs as ``charlm_shakespeare.py`` (whose training
flags this script shares). Reports the best validation nats/char of each, with wall time; each
cell's run dir is resumable.

    python benchmarks/charlm_cells.py                          # 1 x 256-unit LSTM size, 8 epochs
    python benchmarks/charlm_cells.py --cells lstm,gru --epochs 1 --max-chars 200000   # quick

Writes ``benchmarks/out/charlm_cells.{json,md}`` (run dirs under ``benchmarks/out/runs/``).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import common
from benchmarks.charlm_shakespeare import TARGET, add_training_flags, make_config

CELLS = ("lstm", "gru", "vanilla", "mut1", "mut2", "mut3")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = p.add_argument
    add_training_flags(p, layers=1, dropout=0.0, epochs=8)
    add("--cells", default=",".join(CELLS), help="comma-separated suite cells")
    add("--units", type=int, default=256, help="LSTM size that sets the parameter budget")
    add("--params", type=int, help="parameter budget per model (default: the --units LSTM's)")
    add("--max-chars", type=int, help="use only the first N characters (quick checks)")
    add("--out", type=Path, default=REPO / "benchmarks" / "out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data} not found (give --data .../tinyshakespeare/input.txt)",
              file=sys.stderr)  # fmt: skip
        return 2
    from apps.charlm.data import CharVocab, load_corpus
    from apps.charlm.model import build_model
    from apps.charlm.train import train_and_evaluate

    cells = common.pick(args.cells, CELLS, "cell")
    corpus = load_corpus(str(args.data), max_chars=args.max_chars)
    vocab = CharVocab.fit(corpus.train, make_config(args, cell="lstm", units=1).vocab_size).size

    def count(cell: str, units: int) -> int:
        return build_model(cell, vocab, units=units, layers=args.layers,
                           embedding_dim=args.embedding_dim).count_params()  # fmt: skip

    budget = args.params or count("lstm", args.units)
    rows = []
    for cell in cells:
        units, params = common.units_for_params(lambda u, c=cell: count(c, u), budget)
        config = make_config(args, cell=cell, units=units).replace(max_chars=args.max_chars)
        tag = f"p{budget}_l{args.layers}_d{args.dropout:g}_e{args.epochs}_s{args.seed}" + (
            f"_c{args.max_chars}" if args.max_chars else ""
        )  # a resumable run per setting
        run_dir = args.out / "runs" / f"charlm_cells_{cell}_{tag}"
        print(f"== {cell}: {units} units, {params:,} parameters -> {run_dir}", flush=True)
        started = time.monotonic()
        metrics = train_and_evaluate(config, run_dir, quiet=True)
        with open(run_dir / "history.csv", newline="") as f:
            val = [float(r["val_loss"]) for r in csv.DictReader(f)]
        rows.append({"cell": cell, "units": units, "params": metrics["params"],
                     "val_nats_per_char": round(metrics["val_nats_per_char"], 4),
                     "val_bits_per_char": round(metrics["val_bits_per_char"], 4),
                     "best_epoch": 1 + val.index(min(val)), "epochs": len(val),
                     "train_seconds": metrics.get("train_seconds"),
                     "wall_seconds": round(time.monotonic() - started, 1),
                     "run_dir": str(run_dir)})  # fmt: skip
        print(f"   validation {rows[-1]['val_nats_per_char']:.4f} nats/char", flush=True)
        _write(args, budget, rows)
    return 0


def _write(args: argparse.Namespace, budget: int, rows: list[dict]) -> None:
    setup = {k: getattr(args, k) for k in ("layers", "embedding_dim", "dropout", "bptt",
                                           "batch_size", "epochs", "learning_rate", "clipnorm",
                                           "max_chars", "seed")}  # fmt: skip
    payload = {"command": common.command_line(), "machine": common.machine_info(),
               "data": str(args.data), "params_target": budget, "setup": setup,
               "target_nats_per_char": TARGET, "rows": rows}  # fmt: skip
    table = common.markdown_table(
        ["Cell", "Units", "Parameters", "Validation nats/char", "bits/char", "Best epoch",
         "Train s"],
        [(r["cell"], r["units"], f"{r['params']:,}", f"{r['val_nats_per_char']:.4f}",
          f"{r['val_bits_per_char']:.4f}", f"{r['best_epoch']}/{r['epochs']}",
          r["train_seconds"]) for r in rows],
    )  # fmt: skip
    notes = (
        f"Tiny-shakespeare ({args.data.name}, first 90 % trains, last 10 % validates), "
        f"{args.layers} layer(s), ~{budget:,} parameters per model, {args.epochs} epochs, "
        f"windows of {args.bptt} x {args.batch_size} streams, dropout {args.dropout:g}, Adam "
        f"{args.learning_rate:g}, clipnorm {args.clipnorm:g}, seed {args.seed}. "
        f"CPU: {os.cpu_count()} cores visible, {platform.machine()}."
    )
    common.write_results(args.out, "charlm_cells", payload, table, notes)


if __name__ == "__main__":
    sys.exit(main())
