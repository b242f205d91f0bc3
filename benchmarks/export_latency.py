"""Size, batch-1 latency and parity of our TFLite exports, per length mode and quantization.

One sentiment classifier per ``--models`` entry — the app's own architecture
(:func:`apps.sentiment.model.build_model`; default sizes = the app's main-job config: 10k
words, 64-d embeddings, 64 units, 48 tokens) — is exported in every supported combination:

- ``dyn/none``, ``dyn/float16``, ``dyn/dynamic``, ``dyn/int8``: dynamic length ``(1, None)``,
  builtin WHILE (int8 calibrated by :mod:`export.loop_calibration`);
- ``T/none``, ``T/int8``: fixed length ``(1, T)``, unrolled (int8's only form before the loop
  calibration: one copy of the graph per step).

For each: file size (and its share of the float32 file of the same length mode; with the
internal tensor names kept, too — the exporter strips them), median batch-1 latency in the
LiteRT interpreter (1 thread, inputs of ``--seq-len`` tokens), max |diff| and argmax agreement
against Keras on random ids. References on the same input: ``model.predict`` and a compiled
``tf.function`` of the model; the ``x tf.function`` / ``x predict`` columns are how many times
faster the TFLite file is. Every latency is measured ``--repeats`` times (the machine may be
shared): the median of the repeats is shown with their min–max spread. The weights are random
(size, speed and numerical agreement only; argmax agreement of an untrained model is a
pessimistic figure). Writes ``benchmarks/out/export_latency.json`` and ``.md``.

Usage::

    python benchmarks/export_latency.py --quick          # lstm only, small sizes
    python benchmarks/export_latency.py --models bilstm,lstm --repeats 3
    python benchmarks/export_latency.py --models bilstm --vocab-size 16000 --embed-dim 128 \\
        --units 140 --seq-len 64                         # the app's "base" (lecture) config
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
    ("dyn", "int8"),
    ("T", "none"),
    ("T", "int8"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument(
        "--models", default="bilstm,lstm,gru",
        help="comma-separated apps.sentiment model names: lstm, bilstm, gru, vanilla, mut1, ...",
    )  # fmt: skip
    p.add_argument("--vocab-size", type=int, default=10000)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="repeats of every latency measurement")
    p.add_argument(
        "--seq-len", type=int, default=48, help="fixed length T and the timed input length"
    )
    p.add_argument("--examples", type=int, default=64, help="parity / calibration examples")
    p.add_argument("--runs", type=int, default=50, help="timed batch-1 runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="output folder")
    p.add_argument(
        "--quick", action="store_true", help="lstm only, 2000 words, 32 units, 20 runs, 2 repeats"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.vocab_size, args.units, args.embed_dim, args.runs, args.repeats = (
            "lstm", 2000, 32, 32, 20, 2,
        )  # fmt: skip
    return args


def build(kind: str, args: argparse.Namespace):
    """The sentiment app's classifier (``token_ids -> probabilities``), random weights."""
    from apps.sentiment.model import build_model

    return build_model(kind, args.vocab_size, 3, embed_dim=args.embed_dim, units=args.units,
                       seed=args.seed)  # fmt: skip


def _median_ms(call, runs: int) -> float:
    call()  # warm up (trace / allocate)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def keras_latency_ms(model, x, runs: int) -> float:
    """Median batch-1 latency of a compiled ``tf.function`` of the model."""
    import tensorflow as tf

    fn = tf.function(lambda ids: model(ids, training=False))
    return _median_ms(lambda: fn(x).numpy(), runs)


def predict_latency_ms(model, x, runs: int) -> float:
    """Median batch-1 latency of ``model.predict`` (what a Keras user calls)."""
    return _median_ms(lambda: model.predict(x, verbose=0), runs)


def repeated(measure, repeats: int) -> dict[str, float]:
    """``measure()`` (a median in ms) ``repeats`` times: their median, min and max."""
    values = [measure() for _ in range(repeats)]
    return {"latency_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np

    from export.parity import parity_report, tflite_latency_ms
    from export.tflite import convert_to_tflite, strip_tensor_names

    rng = np.random.default_rng(args.seed)
    inputs = rng.integers(1, args.vocab_size, (args.examples, args.seq_len)).astype("int32")
    x = inputs[:1]
    rows = []
    for kind in args.models.split(","):
        kind = kind.strip()
        keras.utils.set_random_seed(args.seed)
        model = build(kind, args)
        refs = {
            "keras model.predict": repeated(lambda m=model: predict_latency_ms(m, x, args.runs),
                                            args.repeats),
            "keras tf.function": repeated(lambda m=model: keras_latency_ms(m, x, args.runs),
                                          args.repeats),
        }  # fmt: skip
        for name, latency in refs.items():
            rows.append({"model": kind, "export": name, "bytes": None, "bytes_names_kept": None,
                         **latency, "max_abs_diff": 0.0, "agreement": 1.0})  # fmt: skip
        float_bytes = {}
        for mode, quantization in COMBINATIONS:
            seq_len = None if mode == "dyn" else args.seq_len
            start = time.perf_counter()
            result = convert_to_tflite(
                model, seq_len=seq_len, quantization=quantization, strip_names=False,
                representative_inputs=inputs if quantization == "int8" else None,
            )  # fmt: skip
            content = strip_tensor_names(result.content)  # what the exporter writes
            convert_s = time.perf_counter() - start
            if quantization == "none":
                float_bytes[mode] = len(content)
            report = parity_report(model, content, inputs)
            latency = repeated(lambda c=content: tflite_latency_ms(c, x, runs=args.runs),
                               args.repeats)  # fmt: skip
            rows.append({
                "model": kind,
                "export": f"{'dynamic' if seq_len is None else f'T={seq_len}'} / {quantization}",
                "bytes": len(content),
                "bytes_names_kept": len(result.content),
                "share_of_float32": len(content) / float_bytes[mode],
                **latency,
                "x_tf_function": refs["keras tf.function"]["latency_ms"] / latency["latency_ms"],
                "x_predict": refs["keras model.predict"]["latency_ms"] / latency["latency_ms"],
                "max_abs_diff": report["max_abs_diff"],
                "agreement": report["argmax_agreement"],
                "convert_s": convert_s,
            })  # fmt: skip
            print(f"{kind:8s} {rows[-1]['export']:18s} done", file=sys.stderr)

    header = (
        "| model | export | size KiB | % of float32 | size KiB, names kept | batch-1 ms (median) "
        "| spread ms | x tf.function | x predict | max abs diff | argmax agreement |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        size = "" if r["bytes"] is None else f"{r['bytes'] / 1024:.1f}"
        kept = "" if r["bytes_names_kept"] is None else f"{r['bytes_names_kept'] / 1024:.1f}"
        share = f"{r['share_of_float32']:.1%}" if "share_of_float32" in r else ""
        xtf = f"{r['x_tf_function']:.1f}" if "x_tf_function" in r else ""
        xpr = f"{r['x_predict']:.1f}" if "x_predict" in r else ""
        lines.append(f"| {r['model']} | {r['export']} | {size} | {share} | {kept} | "
                     f"{r['latency_ms']:.3f} | {r['min_ms']:.3f}–{r['max_ms']:.3f} | {xtf} | "
                     f"{xpr} | {r['max_abs_diff']:.2e} | {r['agreement']:.1%} |")  # fmt: skip
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
