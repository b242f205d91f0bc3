"""Training throughput of the sentiment input pipeline against plain fixed-length pipelines.

Same model, same training texts (the shared IMDB ``train.csv.gz`` by default, or the training
split of any ``--data`` source of the app, e.g. ``builtin:tweets``), same optimiser; only the
input pipeline differs:

- ``ours``: :func:`apps.sentiment.data.make_dataset` — texts tokenised once, int ids cached,
  length buckets padded per batch, prefetch;
- ``keras-textvec``: the plain Keras recipe — strings in the dataset, a default
  ``TextVectorization`` (adapted on the same texts) mapped over every batch each epoch, every
  text padded/truncated to ``--max-len``;
- ``pad-arrays``: ids from our tokenizer padded once to ``--max-len`` with
  ``keras.utils.pad_sequences`` and fed as numpy arrays (isolates the effect of padding).

Each pipeline trains ``--epochs`` epochs of a freshly built model, interleaved: one epoch of
every pipeline per round, so load from other processes on a shared machine falls on all of them
alike. The first epoch includes tracing and is left out; examples/s is the median over the later
epochs, and "ours is x faster" the median over rounds of the epoch-time ratio within a round.
Writes ``benchmarks/out/sentiment_pipeline[_TAG].json`` and ``.md`` and prints the table.

Usage::

    python benchmarks/sentiment_pipeline.py --quick          # ~1-2 min on 2 CPU cores
    python benchmarks/sentiment_pipeline.py --limit 25000 --epochs 2 --model bilstm
    python benchmarks/sentiment_pipeline.py --data builtin:tweets --max-len 200 --limit 20000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--data", default=str(SHARED / "imdb" / "train.csv.gz"),
                   help="text,label CSV (the shared IMDB train file), or builtin:tweets / "
                   "tfds:... (its training split)")  # fmt: skip
    p.add_argument("--model", default="bilstm", help="model name for build_model")
    p.add_argument("--limit", type=int, default=5000, help="training texts used")
    p.add_argument("--epochs", type=int, default=2, help="epochs per pipeline")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=200, help="tokens kept / fixed padded length")
    p.add_argument("--vocab-size", type=int, default=20000)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pipelines", default="ours,keras-textvec,pad-arrays",
                   help="comma-separated subset of ours, keras-textvec, pad-arrays")  # fmt: skip
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="output folder")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--quick", action="store_true",
                   help="small setting: 1000 texts, 3 epochs, batch 32, 16 units")  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.epochs, args.batch_size = 1000, 3, 32
        args.embed_dim, args.units = 32, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from apps.common.text import WordTokenizer
    from apps.sentiment.data import load_splits, make_dataset, read_labelled_csv
    from apps.sentiment.model import build_model

    if args.data.startswith(("builtin:", "tfds:")):
        # any --data source of the app: its training split
        data = load_splits(args.data, seed=args.seed, limit=args.limit)
        texts = [t for t, _ in data.train]
        labels = np.array([y for _, y in data.train], dtype=np.int32)
        num_classes = data.num_classes
    else:
        rows = read_labelled_csv(args.data)
        rng = np.random.default_rng(args.seed)
        pick = rng.permutation(len(rows))[: args.limit]
        texts = [rows[i][0] for i in pick]
        labels = np.array([1 if rows[i][1] == "positive" else 0 for i in pick], dtype=np.int32)
        num_classes = 2
    n = len(texts)

    t0 = time.perf_counter()
    tokenizer = WordTokenizer(args.vocab_size).fit(texts)
    fit_s = time.perf_counter() - t0
    lengths = np.array([len(tokenizer.encode(t)) for t in texts])

    def fresh_model(vocab_size: int) -> keras.Model:
        keras.utils.set_random_seed(args.seed)
        model = build_model(args.model, vocab_size, num_classes, embed_dim=args.embed_dim,
                            units=args.units, seed=args.seed)  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        return model

    def prepare(name: str) -> dict:
        t = time.perf_counter()
        vocab_size = tokenizer.vocab_size
        if name == "ours":
            train = make_dataset(texts, labels, tokenizer, args.batch_size, True, args.seed,
                                 args.max_len)  # fmt: skip
            fit_kwargs = {"shuffle": False}  # the dataset reshuffles itself
            padded_tokens = None
        elif name == "keras-textvec":
            vectorize = keras.layers.TextVectorization(
                max_tokens=args.vocab_size, output_sequence_length=args.max_len
            )
            vectorize.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(256))
            vocab_size = vectorize.vocabulary_size()
            train = (
                tf.data.Dataset.from_tensor_slices((texts, labels))
                .shuffle(n, seed=args.seed)
                .batch(args.batch_size)
                .map(lambda x, y: (vectorize(x), y))
            )
            fit_kwargs = {"shuffle": False}
            padded_tokens = n * args.max_len
        elif name == "pad-arrays":
            ids = keras.utils.pad_sequences(
                [tokenizer.encode(x, args.max_len) for x in texts],
                maxlen=args.max_len, padding="post", truncating="post", dtype="int32",
            )  # fmt: skip
            train = ids
            fit_kwargs = {"y": labels, "batch_size": args.batch_size, "shuffle": True}
            padded_tokens = n * args.max_len
        else:
            raise SystemExit(f"unknown pipeline {name!r}")
        prep_s = time.perf_counter() - t
        if name == "ours":
            padded_tokens = int(sum(int(np.prod(x.shape)) for x, _ in train))
        return {"name": name, "train": train, "fit_kwargs": fit_kwargs, "prep_s": prep_s,
                "padded_tokens": padded_tokens, "vocab_size": vocab_size,
                "model": fresh_model(vocab_size), "seconds": []}  # fmt: skip

    runs = [prepare(name.strip()) for name in args.pipelines.split(",") if name.strip()]
    # Interleaved: one epoch of every pipeline per round, so that other load on a shared machine
    # falls on all of them alike; each round's ratios compare epochs run side by side.
    for epoch in range(args.epochs):
        for r in runs:
            start = time.perf_counter()
            r["model"].fit(r["train"], initial_epoch=epoch, epochs=epoch + 1, verbose=0,
                           **r["fit_kwargs"])  # fmt: skip
            r["seconds"].append(time.perf_counter() - start)
    later = slice(1, None) if args.epochs > 1 else slice(None)  # epoch 1 includes tracing
    results = []
    for r in runs:
        steady = statistics.median(r["seconds"][later])
        results.append({
            "pipeline": r["name"],
            "prep_s": round(r["prep_s"], 3),
            "epoch_s": [round(x, 3) for x in r["seconds"]],
            "examples_per_s_first_epoch": round(n / r["seconds"][0], 1),
            "examples_per_s": round(n / steady, 1),
            "padded_tokens_per_epoch": r["padded_tokens"],
            "vocab_size": r["vocab_size"],
        })  # fmt: skip
    by_name = {r["name"]: r for r in runs}
    if "ours" in by_name:
        ours = by_name["ours"]["seconds"][later]
        for result, r in zip(results, runs):
            # median over rounds of (their epoch time / our epoch time in the same round)
            ratios = [theirs / mine for theirs, mine in zip(r["seconds"][later], ours)]
            result["speedup_of_ours"] = round(statistics.median(ratios), 2)
            result["speedup_of_ours_per_round"] = [round(x, 2) for x in ratios]
    gpus = tf.config.list_physical_devices("GPU")
    report = {
        "benchmark": "sentiment_pipeline",
        "data": args.data,
        "texts": n,
        "tokens_per_text_mean": round(float(lengths.mean()), 1),
        "tokens_per_text_kept_mean": round(float(np.minimum(lengths, args.max_len).mean()), 1),
        "tokenizer_fit_s": round(fit_s, 2),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "device": f"GPU: {gpus[0].name}" if gpus else f"CPU ({os.cpu_count()} cores)",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "results": results,
    }
    title = (
        f"Sentiment input pipelines — {args.model}, {n} train texts of {args.data}, batch "
        f"{args.batch_size}, max_len {args.max_len}, {report['device']}"
    )
    header = (
        "| pipeline | prep s | epoch s (first → last) | examples/s (median later epoch) "
        "| padded tokens/epoch | ours is × faster |"
    )
    table = [title, "", header, "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        epochs = " → ".join(f"{s:.1f}" for s in r["epoch_s"])
        table.append(
            f"| {r['pipeline']} | {r['prep_s']:.1f} | {epochs} | {r['examples_per_s']:.0f} "
            f"| {r['padded_tokens_per_epoch']:,} | {r.get('speedup_of_ours', float('nan')):.2f} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from apps.common.rundir import atomic_write_json, atomic_write_text

    stem = "sentiment_pipeline" + (f"_{args.tag}" if args.tag else "")
    atomic_write_json(out / f"{stem}.json", report)
    atomic_write_text(out / f"{stem}.md", "\n".join(table) + "\n")
    print("\n".join(table))
    print(f"\nwritten: {out / (stem + '.json')}, {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
