"""Flickr8k captioning benchmark: a from-scratch CNN encoder + attending LSTM decoder trained on
the 2,000 official training images present in ``shared/data/flickr8k``, scored on the official
test images present (all 5 references each), next to two baselines measured in the same run:

- **most frequent caption**: the training caption (lower-cased words) that occurs most often,
  given to every test image;
- **nearest training image**: the caption of the training image closest (cosine) to the test
  image in the trained encoder's space (the mean of its attention features); of that image's
  five captions, the consensus one (highest mean BLEU-1..4 against its other four) is used.

BLEU-1..4 and CIDEr-D come from ``pycocoevalcap`` (see :mod:`apps.captioning.metrics`).
Writes ``benchmarks/out/captioning_flickr8k.json`` and ``.md``::

    python benchmarks/captioning_flickr8k.py [--data DIR] [--epochs N] [--image-size N]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DATA = (
    Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data")) / "flickr8k"
)
METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Flickr8k folder")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="run dir (default: OUT/captioning_flickr8k_run; resumes)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="at most N images per split (a quick check; default: all)",
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def consensus_caption(captions: list[str]) -> str:
    """The caption with the highest mean BLEU-1..4 against the image's other captions."""
    from apps.captioning.metrics import caption_scores

    if len(captions) == 1:
        return captions[0]
    best, best_score = captions[0], -1.0
    for i, cap in enumerate(captions):
        others = [c for j, c in enumerate(captions) if j != i]
        scores = caption_scores([others], [cap])
        score = float(np.mean([scores[f"bleu_{n}"] for n in range(1, 5)]))
        if score > best_score:
            best, best_score = cap, score
    return best


def most_frequent_caption(captions: list[list[str]]) -> tuple[str, int]:
    """The most frequent training caption (compared as lower-cased words) and its count."""
    from apps.captioning.vocab import metric_tokens

    counts = collections.Counter(" ".join(metric_tokens(c)) for caps in captions for c in caps)
    text, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return text, count


def encoder_space(captioner, images: np.ndarray) -> np.ndarray:
    """Unit-length mean attention features (the decoder's ``values``) per image."""
    states = captioner.encode(images)
    values = states[captioner.num_states]  # (N, positions, units)
    mean = values.mean(axis=1)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def main(argv=None) -> int:
    args = parse_args(argv)
    from apps.common.cli import import_backend

    import_backend()
    from apps.captioning.config import CaptioningConfig
    from apps.captioning.metrics import caption_scores
    from apps.captioning.train import evaluate_trained, train
    from apps.common.rundir import atomic_write_json, atomic_write_text

    if not (args.data / "images").is_dir():
        print(f"error: no Flickr8k folder at {args.data} (give --data)", file=sys.stderr)
        return 2
    run_dir = args.run_dir or args.out / "captioning_flickr8k_run"
    config = CaptioningConfig.base().replace(
        data=str(args.data), image_size=args.image_size, filters=args.filters, units=args.units,
        cell=args.cell, epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
        limit=args.limit,
    )  # fmt: skip
    started = time.monotonic()
    trained, data = train(config, run_dir, quiet=args.quiet, log=print)
    train_wall = time.monotonic() - started
    model_metrics = evaluate_trained(trained, data.test, data=config.data, split_name="test")

    refs = data.test.captions
    frequent, count = most_frequent_caption(data.train.captions)
    frequent_metrics = caption_scores(refs, [frequent] * len(refs))

    captioner = trained.captioner
    train_space = encoder_space(captioner, data.train.images)
    test_space = encoder_space(captioner, data.test.images)
    nearest = (test_space @ train_space.T).argmax(axis=1)
    consensus = [consensus_caption(caps) for caps in data.train.captions]
    nn_captions = [consensus[i] for i in nearest]
    nn_metrics = caption_scores(refs, nn_captions)
    total_wall = time.monotonic() - started

    rows = {
        "model": {k: model_metrics[k] for k in METRICS},
        "most_frequent_caption": frequent_metrics,
        "nearest_training_image": nn_metrics,
    }
    beats = {name: {k: rows["model"][k] > base[k] for k in METRICS}
             for name, base in rows.items() if name != "model"}  # fmt: skip
    result = {
        "data": str(args.data),
        "description": data.description,
        "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "config": config.to_dict(),
        "params": model_metrics["params"],
        "vocab_size": model_metrics["vocab_size"],
        "rows": rows,
        "model_beats": beats,
        "most_frequent_caption": {"text": frequent, "count": count},
        "train_seconds": model_metrics.get("train_seconds"),
        "this_call_seconds": round(total_wall, 1),
        "total_seconds": round(total_wall, 1),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "run_dir": str(run_dir),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "captioning_flickr8k.json", result)
    lines = [
        "# Flickr8k captioning (from-scratch encoder)",
        "",
        (
            f"{data.description}. Encoder: CNN from scratch ({config.image_size}x"
            f"{config.image_size} input), decoder: attention + {config.cell} ({config.units} "
            f"units), {config.epochs} epochs over all training captions, greedy decoding; "
            f"{model_metrics['params']:,} parameters, {model_metrics['vocab_size']:,} words. "
            "Scores on the official test images present, all 5 references each (pycocoevalcap "
            "BLEU and CIDEr-D)."
        ),
        "",
        "| | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"model": "model (greedy)", "most_frequent_caption": f"most frequent caption (\"{frequent}\")",
             "nearest_training_image": "nearest training image (encoder space)"}  # fmt: skip
    for key, label in names.items():
        r = rows[key]
        lines.append(f"| {label} | " + " | ".join(f"{r[m]:.3f}" for m in METRICS) + " |")
    fit_seconds = model_metrics.get("train_seconds") or train_wall
    timing = (
        f"Training (fit, summed over resumed calls) {fit_seconds:.0f} s; this call "
        f"{total_wall:.0f} s ({os.cpu_count()} CPUs, load average at the end "
        f"{os.getloadavg()[0]:.1f}). Running the script again resumes the finished run and only "
        "re-evaluates."
    )
    lines += ["", timing, ""]
    atomic_write_text(args.out / "captioning_flickr8k.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
