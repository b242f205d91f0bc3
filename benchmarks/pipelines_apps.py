"""Input pipeline vs model, per app: can the ``tf.data`` pipeline feed the training step?

For every app, its real ``train`` command (``--size small``, the built-in data of the main job)
runs up to the point where it hands its model and datasets to the shared training loop
(:func:`apps.common.training.fit`); the benchmark takes them there and stops the command. Then,
in the same process:

- ``pipeline``: examples/s of iterating the app's training dataset alone (a fresh pass, first
  batch excluded) — everything the pipeline does per batch (gathering, padding, augmentation);
- ``model``: examples/s of ``model.fit`` on the same batches cached in memory (compiled, after a
  warm-up call) — the rate at which training consumes batches.

``ratio = pipeline / model``: above 1 the pipeline produces batches faster than the model takes
them, so with ``prefetch`` (every app's pipeline ends with it) the step never waits for data.
Both are measured on the same cores one after the other, so the ratio is a lower bound: in
training the pipeline runs in parallel with the step. The pipeline and model passes alternate
for ``--rounds`` rounds; figures are medians.

Writes ``benchmarks/out/pipelines_apps.json`` and ``.md``.

Usage::

    python benchmarks/pipelines_apps.py                   # every app, ~5 min
    python benchmarks/pipelines_apps.py --quick           # --size tiny, ~1 min
    python benchmarks/pipelines_apps.py --apps sentiment,music --batches 20
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common

APPS = ("sentiment", "charlm", "music", "tagger", "forecast", "captioning", "translation")


class _Captured(BaseException):
    """Raised by the stand-in ``fit``; a BaseException so the CLI's error handling lets it by."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated apps")
    p.add_argument("--batches", type=int, default=30, help="batches per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating pipeline/model rounds")
    p.add_argument("--size", default="small", choices=("tiny", "small", "base"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    p.add_argument("--quick", action="store_true", help="--size tiny, 10 batches, 2 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batches, args.rounds = "tiny", 10, 2
    return args


def capture(app: str, size: str, seed: int, run_dir: Path) -> dict:
    """Run ``python -m apps.<app> train`` in-process until it calls ``training.fit``."""
    from apps.common import cli, training

    verbs = importlib.import_module(f"apps.{app}.verbs")
    captured: dict = {}
    real_fit = training.fit

    def stand_in(model, train_ds, val_ds, run, epochs, **kwargs):
        captured.update(model=model, train_ds=train_ds)
        raise _Captured

    training.fit = stand_in
    try:
        argv = ["train", "--size", size, "--seed", str(seed), "--run-dir", str(run_dir), "--quiet"]
        cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)
    except _Captured:
        pass
    finally:
        training.fit = real_fit
    if "model" not in captured:
        raise RuntimeError(f"{app}: train did not reach training.fit")
    return captured


def _examples(batch) -> int:
    import tensorflow as tf

    return int(tf.nest.flatten(batch)[0].shape[0])


def pipeline_rate(ds, batches: int) -> float:
    it = iter(ds)
    next(it)  # the first batch starts the pipeline's threads
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            n += _examples(next(it))
        except StopIteration:
            break
    return n / (time.perf_counter() - start)


def model_rate(model, cached, examples: int) -> float:
    start = time.perf_counter()
    model.fit(cached, epochs=1, verbose=0, shuffle=False)
    return examples / (time.perf_counter() - start)


def measure(app: str, args: argparse.Namespace, tmp: Path) -> dict:
    got = capture(app, args.size, args.seed, tmp / app)
    model, ds = got["model"], got["train_ds"]
    cached = ds.take(args.batches).cache()
    examples = sum(_examples(b) for b in cached)  # fills the cache
    model.fit(cached.take(2), epochs=1, verbose=0, shuffle=False)  # compile + warm up
    pipe, fed = [], []
    for _ in range(args.rounds):
        pipe.append(pipeline_rate(ds, args.batches))
        fed.append(model_rate(model, cached, examples))
    ratios = [p / m for p, m in zip(pipe, fed, strict=True)]
    return {
        "app": app,
        "batch_examples": _examples(next(iter(cached))),
        "batches": args.batches,
        "pipeline_examples_per_s": round(statistics.median(pipe), 1),
        "model_examples_per_s": round(statistics.median(fed), 1),
        "ratio": round(statistics.median(ratios), 2),
        "ratio_min": round(min(ratios), 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apps = common.pick(args.apps, APPS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnsuite-pipelines-") as tmp:
        for app in apps:
            row = measure(app, args, Path(tmp))
            rows.append(row)
            print(f"{app}: pipeline {row['pipeline_examples_per_s']:,.0f} ex/s, model "
                  f"{row['model_examples_per_s']:,.0f} ex/s, ratio {row['ratio']}", flush=True)  # fmt: skip
    table = common.markdown_table(
        ["app", "examples / batch", "pipeline ex/s", "model (fit) ex/s", "pipeline / model",
         "lowest round"],
        [[r["app"], r["batch_examples"], f"{r['pipeline_examples_per_s']:,.0f}",
          f"{r['model_examples_per_s']:,.0f}", f"{r['ratio']:.1f}", f"{r['ratio_min']:.1f}"]
         for r in rows],
    )  # fmt: skip
    notes = (
        f"Each app's `train --size {args.size}` pipeline on its built-in data, {args.batches} "
        f"batches per measurement, {args.rounds} alternating rounds (medians). *pipeline*: "
        "iterating the training dataset alone; *model*: `model.fit` on the same batches "
        "cached in memory. A ratio above 1: the pipeline outpaces the training step."
    )
    payload = {"benchmark": "pipelines_apps", "command": common.command_line(),
               "machine": common.machine_info(), "rows": rows}  # fmt: skip
    common.write_results(args.out, "pipelines_apps", payload, table, notes)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
