"""Size, batch-1 latency and parity of our TFLite exports, per length mode and quantization.

One sentiment-shaped classifier (``Embedding(mask_zero) -> recurrent -> Dense``) per
``--models`` entry is exported in every supported combination:

- ``dyn/none``, ``dyn/float16``, ``dyn/dynamic``: dynamic length ``(1, None)``, builtin WHILE;
- ``T/none``, ``T/int8``: fixed length ``(1, T)``, unrolled (int8 needs a fixed length).

For each: file size, median batch-1 latency in the LiteRT interpreter (1 thread, inputs of
``--seq-len`` tokens), max |diff| and argmax agreement against Keras on random ids, and, as
the reference, Keras' own batch-1 latency (a compiled ``tf.function`` of the model). The
weights are random (only size, speed and numerical agreement are measured; argmax agreement
of an untrained model is a pessimistic figure). Writes ``benchmarks/out/export_latency.json``
and ``.md`` and prints the table.

Usage::

    python benchmarks/export_latency.py --quick          # ~1 min on 2 CPU cores
    python benchmarks/export_latency.py --models lstm,bilstm,gru --vocab-size 20000 --units 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
COMBINATIONS = (
    ("dyn", "none"),
    ("dyn", "float16"),
    ("dyn", "dynamic"),
    ("T", "none"),
    ("T", "int8"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument(
        "--models", default="lstm,bilstm,gru", help="comma-separated: lstm, bilstm, gru, simple_rnn"
    )
    p.add_argument("--vocab-size", type=int, default=10000)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--units", type=int, default=64)
    p.add_argument(
        "--seq-len", type=int, default=48, help="fixed length T and the timed input length"
    )
    p.add_argument("--examples", type=int, default=64, help="parity / calibration examples")
    p.add_argument("--runs", type=int, default=50, help="timed batch-1 runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="output folder")
    p.add_argument("--quick", action="store_true", help="lstm only, 2000 words, 32 units, 20 runs")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.vocab_size, args.units, args.embed_dim, args.runs = (
            "lstm",
            2000,
            32,
            32,
            20,
        )
    return args


def build(kind: str, args: argparse.Namespace):
    import keras

    layers = {
        "lstm": lambda: keras.layers.LSTM(args.units),
        "gru": lambda: keras.layers.GRU(args.units),
        "simple_rnn": lambda: keras.layers.SimpleRNN(args.units),
        "bilstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(args.units)),
    }
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(args.vocab_size, args.embed_dim, mask_zero=True)(ids)
    h = layers[kind]()(h)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(h), name=kind)


def keras_latency_ms(model, x, runs: int) -> float:
    import tensorflow as tf

    fn = tf.function(lambda ids: model(ids, training=False))
    fn(x)  # trace
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np

    from export.parity import parity_report, tflite_latency_ms
    from export.tflite import convert_to_tflite

    rng = np.random.default_rng(args.seed)
    inputs = rng.integers(1, args.vocab_size, (args.examples, args.seq_len)).astype("int32")
    rows = []
    for kind in args.models.split(","):
        keras.utils.set_random_seed(args.seed)
        model = build(kind.strip(), args)
        reference = keras_latency_ms(model, inputs[:1], args.runs)
        rows.append({"model": kind, "export": "keras (tf.function)", "bytes": None,
                     "latency_ms": reference, "max_abs_diff": 0.0, "agreement": 1.0})  # fmt: skip
        for mode, quantization in COMBINATIONS:
            seq_len = None if mode == "dyn" else args.seq_len
            start = time.perf_counter()
            result = convert_to_tflite(
                model, seq_len=seq_len, quantization=quantization,
                representative_inputs=inputs if quantization == "int8" else None,
            )  # fmt: skip
            convert_s = time.perf_counter() - start
            report = parity_report(model, result.content, inputs)
            rows.append({
                "model": kind,
                "export": f"{'dynamic' if seq_len is None else f'T={seq_len}'} / {quantization}",
                "bytes": len(result.content),
                "latency_ms": tflite_latency_ms(result.content, inputs[:1], runs=args.runs),
                "max_abs_diff": report["max_abs_diff"],
                "agreement": report["argmax_agreement"],
                "convert_s": convert_s,
            })  # fmt: skip
            print(f"{kind:8s} {rows[-1]['export']:18s} done", file=sys.stderr)

    header = "| model | export | size KiB | batch-1 ms | max abs diff | argmax agreement |"
    lines = [header, "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        size = "" if r["bytes"] is None else f"{r['bytes'] / 1024:.1f}"
        lines.append(f"| {r['model']} | {r['export']} | {size} | {r['latency_ms']:.3f} | "
                     f"{r['max_abs_diff']:.2e} | {r['agreement']:.1%} |")  # fmt: skip
    machine = (
        f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPUs"
    )
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    (out / "export_latency.json").write_text(
        json.dumps({"settings": settings, "machine": machine, "rows": rows}, indent=2) + "\n"
    )
    (out / "export_latency.md").write_text(
        f"# Export size and batch-1 latency\n\n{machine}; settings: {settings}\n\n{table}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
