"""Piano-roll generation speed: the one-step loop vs re-running the whole prefix, Keras and TFLite.

A music roll model of ``apps.music`` (``--cell``/``--units``, random weights: speed does not
depend on training; the output layer is scaled so that no key sits near the decision boundary)
generates ``--lengths`` frames (200 and 1,000 by default) greedily — a key sounds in the next
frame when its logit is above 0 — from the same first frame, four ways:

- ``tflite step loop``: the exported one-step model (``frame, states -> logits, states``,
  :func:`export.steps.export_step_model`) in LiteRT, the state carried (what a phone does);
- ``tflite re-run prefix``: the dynamic-length TFLite sequence model over the whole roll so far,
  for every new frame (quadratic);
- ``keras step loop``: the Keras one-step model (:func:`apps.music.model.build_step_model`) as a
  ``tf.function``;
- ``keras re-run prefix``: the Keras sequence model as a ``tf.function`` over the prefix.

All four must produce the same frames (checked). Each timing is repeated ``--repeats`` times
(medians, min-max spread). Writes ``benchmarks/out/music_generation.{json,md}``.

    python benchmarks/music_generation.py --quick        # ~1 min
    python benchmarks/music_generation.py --units 160 --lengths 200,1000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--cell", default="gru", help="apps.common.cells name")
    p.add_argument("--units", type=int, default=160, help="the main job's GRU width")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--lengths", default="200,1000", help="generated frames per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--refeed-max", type=int, default=1000,
                   help="skip 're-run prefix' above this length (it is quadratic)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--quick", action="store_true", help="lengths 100,400, 2 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.repeats = "100,400", 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from apps.music.model import build_model, build_step_model
    from apps.music.notes import KEYS
    from export.reference_loop import TFLiteFunction
    from export.steps import export_step_model
    from export.tflite import convert_to_tflite

    keras.utils.set_random_seed(args.seed)
    model = build_model("roll", args.cell, units=args.units, layers=args.layers)
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 8.0, bias])  # decisive logits: no near-ties
    step = build_step_model(model)
    lengths = [int(n) for n in args.lengths.split(",")]
    first = np.zeros((1, KEYS), "float32")
    first[0, [39, 43, 46, 51]] = 1.0  # a C major chord

    exported = export_step_model(step, "step")
    layout = exported.layout.as_dict()
    step_fn = TFLiteFunction(exported.result.content)
    frame_in, logits_out = layout["token_input"], layout["logits_output"]
    sequence = convert_to_tflite(model, seq_len=None)
    seq_fn = TFLiteFunction(sequence.content)
    seq_in = next(iter(seq_fn.input_shapes))
    seq_out = sequence.outputs[0].name

    @tf.function(reduce_retracing=True)
    def keras_step(inputs):
        return step(inputs, training=False)

    @tf.function(input_signature=[tf.TensorSpec((1, None, KEYS), tf.float32)])
    def keras_sequence(frames):
        return model(frames, training=False)[:, -1, :]

    def decide(logits) -> np.ndarray:
        return (np.asarray(logits).reshape(1, KEYS) > 0).astype("float32")

    def tflite_loop(n: int) -> np.ndarray:
        states = {s["input"]: np.zeros(s["shape"], s["dtype"]) for s in layout["states"]}
        frame, out = first, []
        for _ in range(n):
            result = step_fn(**{frame_in: frame}, **states)
            states = {s["input"]: result[s["output"]] for s in layout["states"]}
            frame = decide(result[logits_out])
            out.append(frame)
        return np.concatenate(out)

    def keras_loop(n: int) -> np.ndarray:
        states = [np.zeros((1, int(t.shape[-1])), "float32") for t in step.inputs[1:]]
        frame, out = first, []
        for _ in range(n):
            logits, *states = keras_step([frame, *states])
            frame = decide(logits)
            out.append(frame)
        return np.concatenate(out)

    def refeed(next_logits, n: int) -> np.ndarray:
        roll = [first]
        for _ in range(n):
            roll.append(decide(next_logits(np.concatenate(roll)[None])))
        return np.concatenate(roll[1:])

    methods = {
        "tflite step loop": tflite_loop,
        "keras step loop (tf.function)": keras_loop,
        "tflite re-run prefix": lambda n: refeed(lambda r: seq_fn(**{seq_in: r})[seq_out][0, -1], n),
        "keras re-run prefix (tf.function)": lambda n: refeed(
            lambda r: keras_sequence(tf.constant(r))[0], n
        ),
    }
    rows, reference = [], {}
    skip = lambda name, n: "prefix" in name and n > args.refeed_max
    for name, n, times, frames in common.time_methods(methods, lengths, args.repeats, skip):
        reference.setdefault(n, frames)
        median = statistics.median(times)
        rows.append({
            "method": name, "frames": n, "seconds": median, "min_s": min(times),
            "max_s": max(times), "frames_per_s": n / median, "ms_per_frame": 1000 * median / n,
            "notes_per_frame": float(frames.sum() / n),
            "same_frames_as_tflite_step_loop": bool(np.array_equal(frames, reference[n])),
        })  # fmt: skip
        print(f"{name:34s} {n:5d} frames: {rows[-1]['frames_per_s']:9.1f} frames/s",
              file=sys.stderr)  # fmt: skip

    by = {(r["method"], r["frames"]): r for r in rows}
    ratios = []
    for n in lengths:
        for kind in ("tflite", "keras"):
            loop = by.get((f"{kind} step loop" + (" (tf.function)" if kind == "keras" else ""), n))
            again = by.get((f"{kind} re-run prefix" + (" (tf.function)" if kind == "keras" else ""), n))
            if loop and again:
                ratios.append({"frames": n, "runtime": kind,
                               "step_loop_speedup": again["seconds"] / loop["seconds"]})  # fmt: skip
    table = common.markdown_table(
        ["method", "frames", "frames/s", "ms/frame", "seconds (median)", "spread (min-max s)",
         "same frames"],
        [[r["method"], r["frames"], f"{r['frames_per_s']:.1f}", f"{r['ms_per_frame']:.3f}",
          f"{r['seconds']:.3f}", f"{r['min_s']:.3f}-{r['max_s']:.3f}",
          "yes" if r["same_frames_as_tflite_step_loop"] else "NO"] for r in rows],
    )  # fmt: skip
    notes = "\n".join(
        f"- {r['frames']} frames, {r['runtime']}: the step loop is {r['step_loop_speedup']:.1f}x "
        "faster than re-running the prefix" for r in ratios
    ) + (f"\n\nModel: {args.cell}, {args.units} units, {args.layers} layer(s), 88-key roll; "
         f"step file {len(exported.result.content) / 1024:.1f} KiB, sequence file "
         f"{len(sequence.content) / 1024:.1f} KiB (both builtin ops only).")  # fmt: skip
    payload = {"benchmark": "music_generation", "command": common.command_line(),
               "machine": common.machine_info(), "settings": {k: str(v) for k, v in vars(args).items()},
               "rows": rows, "ratios": ratios}  # fmt: skip
    common.write_results(args.out, "music_generation", payload, table, notes)
    print(table)
    print(notes)
    return 0 if all(r["same_frames_as_tflite_step_loop"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
