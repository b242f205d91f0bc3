"""Generation speed of the char LM: the stateful one-step loop vs re-feeding the whole prefix.

The one-step model (``apps.charlm.model.build_step_model``) costs one recurrent step per new
character whatever the length so far; re-running the sequence model over the whole prefix for
every character costs a number of steps that grows with the prefix (quadratic in total). Both
decode greedily from the same weights, so their outputs must be identical (checked).

    python benchmarks/charlm_generation_speed.py                      # random LSTM-256 weights
    python benchmarks/charlm_generation_speed.py --run-dir runs/charlm/X   # a trained run

Writes ``benchmarks/out/charlm_generation_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run-dir", type=Path, help="a trained charlm run (default: random weights)"
    )
    parser.add_argument("--cell", default="lstm", help="cell of the random-weight model")
    parser.add_argument("--units", type=int, default=256, help="units of the random-weight model")
    parser.add_argument(
        "--vocab", type=int, default=98, help="characters of the random-weight model"
    )
    parser.add_argument(
        "--lengths", default="500,2000", help="characters generated per measurement"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from apps.charlm.data import CharVocab
    from apps.charlm.model import build_model
    from apps.charlm.sample import Generator, greedy_ids, refeed_generate
    from apps.common.rundir import atomic_write_json, atomic_write_text

    if args.run_dir is not None:
        from apps.charlm.train import load_trained
        from apps.common.rundir import RunDir

        trained = load_trained(RunDir.open(args.run_dir, "apps.charlm"))
        model, vocab = trained.model, trained.vocab
        what = f"trained run {args.run_dir} ({trained.config.layers} x {trained.config.cell}, {trained.config.units} units)"
    else:
        vocab = CharVocab([chr(32 + i) for i in range(args.vocab - 1)])
        model = build_model(args.cell, vocab.size, units=args.units, embedding_dim=32)
        what = f"random weights, 1 x {args.cell}, {args.units} units, {vocab.size} characters"
    gen = Generator.from_model(model, vocab)
    prime = np.array([1], np.int32)
    greedy_ids(gen, prime, 5)  # trace the graphs once
    refeed_generate(model, prime, 5)

    rows = []
    for n in [int(x) for x in args.lengths.split(",")]:
        t0 = time.perf_counter()
        stepped = greedy_ids(gen, prime, n)
        t1 = time.perf_counter()
        refed = refeed_generate(model, prime, n)
        t2 = time.perf_counter()
        rows.append(
            {
                "chars": n,
                "stateful_chars_per_s": n / (t1 - t0),
                "refeed_chars_per_s": n / (t2 - t1),
                "stateful_s": t1 - t0,
                "refeed_s": t2 - t1,
                "speedup": (t2 - t1) / (t1 - t0),
                "identical_output": stepped == refed,
            }
        )
        print(
            f"{n:>6} chars: one-step {n / (t1 - t0):8.1f} chars/s, re-feed {n / (t2 - t1):8.1f} chars/s "
            f"(x{(t2 - t1) / (t1 - t0):.1f}), identical: {stepped == refed}",
            flush=True,
        )

    device = f"CPU: {os.cpu_count()} cores visible, {platform.processor() or platform.machine()}"
    result = {"model": what, "device": device, "tensorflow": tf.__version__, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "charlm_generation_speed.json", result)
    lines = [
        "# Char LM generation speed",
        "",
        f"Model: {what}. Device: {device}. Greedy decoding, batch 1, from a one-character prime.",
        "",
        "| Characters | One-step (chars/s) | Re-feed prefix (chars/s) | Speed-up | Same output |",
        "|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['chars']:,} | {r['stateful_chars_per_s']:.1f} | {r['refeed_chars_per_s']:.1f} | "
            f"x{r['speedup']:.1f} | {'yes' if r['identical_output'] else 'NO'} |"
        )
    atomic_write_text(args.out / "charlm_generation_speed.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / 'charlm_generation_speed.md'}")


if __name__ == "__main__":
    main()
