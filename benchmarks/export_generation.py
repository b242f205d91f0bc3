"""Generation speed on a phone's terms: the exported one-step TFLite loop vs re-running the prefix.

The char LM of ``apps.charlm`` (random weights of the given size; speed does not depend on
training) is exported twice: its one-step model (``apps.charlm.model.build_step_model``,
``[token, states...] -> [logits, new states...]``) and its sequence model at dynamic length
(``ids (1, None) -> logits``, builtin ``WHILE``). For ``--lengths`` tokens (200 and 1000 by
default) from the same prime, greedy decoding runs:

- ``tflite step loop``: :class:`export.reference_loop.StepLoop` (NumPy + LiteRT, what a phone
  does) — one step per token, the state carried;
- ``tflite re-run prefix``: the dynamic-length TFLite sequence model over the whole prefix for
  every new token (quadratic);
- ``keras step loop``: the Keras one-step model as a compiled ``tf.function``;
- ``keras re-run prefix``: the Keras sequence model as a ``tf.function`` over the prefix.

All four must produce the same ids (checked; greedy, peaked output weights). Each timing is
repeated ``--repeats`` times: the table shows the median and the min–max spread (the machine
may be shared). Also the per-token latency of one raw TFLite step invocation. Writes
``benchmarks/out/export_generation.{json,md}``.

    python benchmarks/export_generation.py --quick       # ~2 min on 2 loaded cores
    python benchmarks/export_generation.py --units 256 --lengths 200,1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--cell", default="lstm", help="apps.common.cells name")
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--vocab", type=int, default=98, help="character ids")
    p.add_argument("--embedding-dim", type=int, default=32)
    p.add_argument("--lengths", default="200,1000", help="generated tokens per measurement")
    p.add_argument("--repeats", type=int, default=3, help="repeats of every timing")
    p.add_argument("--refeed-max", type=int, default=1000,
                   help="skip 're-run prefix' above this length (it is quadratic)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="output folder")
    p.add_argument("--quick", action="store_true", help="128 units, 2 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.units, args.repeats = 128, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np
    import tensorflow as tf

    from apps.charlm.model import build_model, build_step_model
    from apps.common import decoding
    from benchmarks import common
    from export.manifest import add_to_manifest, export_entry
    from export.reference_loop import StepLoop, TFLiteFunction
    from export.steps import export_step_model
    from export.tflite import convert_to_tflite

    keras.utils.set_random_seed(args.seed)
    model = build_model(args.cell, args.vocab, units=args.units, layers=args.layers,
                        embedding_dim=args.embedding_dim)  # fmt: skip
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 8.0, bias])  # peaked: no near-ties
    step = build_step_model(model)
    lengths = [int(n) for n in args.lengths.split(",")]
    start_id = 5

    folder = Path(tempfile.mkdtemp(prefix="export-generation-"))
    t0 = time.perf_counter()
    exported = export_step_model(step, "step")
    step_convert_s = time.perf_counter() - t0
    (folder / "step.tflite").write_bytes(exported.result.content)
    add_to_manifest(folder, export_entry(
        folder / "step.tflite", format="tflite", signatures={}, quantization="none", seq_len=1,
        batch_size=1, extra={"step": exported.layout.as_dict()},
    ))  # fmt: skip
    t0 = time.perf_counter()
    sequence = convert_to_tflite(model, seq_len=None).content
    sequence_convert_s = time.perf_counter() - t0
    loop = StepLoop.from_export(folder, "step")
    seq_fn = TFLiteFunction(sequence)
    seq_in = next(iter(seq_fn.input_shapes))
    seq_out = None

    @tf.function(reduce_retracing=True)
    def keras_step(inputs):
        return step(inputs, training=False)

    @tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
    def keras_sequence(ids):
        return model(ids, training=False)[:, -1, :]

    def keras_step_fn(tokens, states):
        outs = keras_step([np.asarray(tokens, "int32").reshape(-1, 1), *states])
        return outs[0].numpy(), [o.numpy() for o in outs[1:]]

    def zero_states():
        return [np.zeros((1, int(t.shape[-1])), "float32") for t in step.inputs[1:]]

    def refeed(next_logits, length):
        ids = [start_id]
        for _ in range(length):
            ids.append(int(np.asarray(next_logits(np.array([ids], "int32"))).argmax()))
        return ids[1:]

    def tflite_next(ids):
        nonlocal seq_out
        out = seq_fn(**{seq_in: ids})
        seq_out = seq_out or next(iter(out))
        return out[seq_out][0, -1]

    methods = {
        "tflite step loop": lambda n: loop.greedy(start_id, n),
        "keras step loop (tf.function)": lambda n: decoding.greedy(
            keras_step_fn, zero_states(), np.array([start_id]), None, n
        )[0],
        "tflite re-run prefix": lambda n: refeed(tflite_next, n),
        "keras re-run prefix (tf.function)": lambda n: refeed(
            lambda ids: keras_sequence(tf.constant(ids))[0], n
        ),
    }
    rows, reference = [], {}
    skip = lambda name, n: "prefix" in name and n > args.refeed_max
    for name, n, times, ids in common.time_methods(methods, lengths, args.repeats, skip):
        reference.setdefault(n, ids)
        rows.append({
            "method": name, "tokens": n, "seconds": statistics.median(times),
            "min_s": min(times), "max_s": max(times),
            "tokens_per_s": n / statistics.median(times),
            "ms_per_token": 1000 * statistics.median(times) / n,
            "same_ids_as_tflite_step_loop": ids == reference[n],
        })  # fmt: skip
        print(f"{name:34s} {n:5d} tokens: {rows[-1]['tokens_per_s']:9.1f} tok/s", file=sys.stderr)

    # Raw per-token latency of the step file: one invocation, fed arrays ready.
    feed = {loop.token_input: np.array([[start_id]], "int32")}
    feed.update({s["input"]: np.zeros(s["shape"], "float32") for s in loop.states})
    raw, _ = common.timed(lambda: [loop.function(**feed) for _ in range(200)], args.repeats)
    raw_ms = [1000 * t / 200 for t in raw]

    machine = (
        f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPUs"
    )
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    summary = {
        "settings": settings, "machine": machine,
        "step_file_bytes": len(exported.result.content), "sequence_file_bytes": len(sequence),
        "step_convert_s": step_convert_s, "sequence_convert_s": sequence_convert_s,
        "step_ops": list(exported.result.ops),
        "raw_step_invoke_ms": {"median": statistics.median(raw_ms), "min": min(raw_ms),
                               "max": max(raw_ms)},
        "rows": rows,
    }  # fmt: skip
    lines = [
        "| method | tokens | tokens/s | ms/token | seconds (median) | spread (min–max s) | same ids |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['tokens']} | {r['tokens_per_s']:.1f} | "
                     f"{r['ms_per_token']:.3f} | {r['seconds']:.3f} | {r['min_s']:.3f}–"
                     f"{r['max_s']:.3f} | {'yes' if r['same_ids_as_tflite_step_loop'] else 'NO'} |")  # fmt: skip
    step_rows = {(r["method"], r["tokens"]): r for r in rows}
    ratios = []
    for n in lengths:
        loop_row = step_rows.get(("tflite step loop", n))
        refeed_row = step_rows.get(("tflite re-run prefix", n))
        if loop_row and refeed_row:
            ratios.append(f"- {n} tokens: the TFLite step loop is "
                          f"{refeed_row['seconds'] / loop_row['seconds']:.1f}x faster than "
                          "re-running the prefix in TFLite")  # fmt: skip
    table = "\n".join(lines)
    raw_line = (f"raw step invocation (LiteRT, 1 thread, batch 1): "
                f"{summary['raw_step_invoke_ms']['median']:.3f} ms median "
                f"({summary['raw_step_invoke_ms']['min']:.3f}–{summary['raw_step_invoke_ms']['max']:.3f})")  # fmt: skip
    print(table)
    print(raw_line)
    print("\n".join(ratios))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_generation.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "export_generation.md").write_text(
        f"# One-step generation: exported step loop vs re-running the prefix\n\n{machine}; "
        f"settings: {settings}\n\nstep file {len(exported.result.content) / 1024:.1f} KiB, "
        f"sequence file {len(sequence) / 1024:.1f} KiB; {raw_line}\n\n{table}\n\n"
        + "\n".join(ratios)
        + "\n"
    )
    return 0 if all(r["same_ids_as_tflite_step_loop"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
