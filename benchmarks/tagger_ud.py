"""UD English-EWT part-of-speech benchmark: UPOS token accuracy of the BiLSTM tagger on dev.

Data: the shared ``ud_english_ewt`` folder (CoNLL-U; train = 90 % of the official train split by
document, validation = the other 10 %, test = the official **dev** split — the official test
split is not shipped). Model: ``apps.tagger`` with the ``base`` preset plus the part-of-speech
changes ``apps.tagger.config.UPOS_RECIPE`` (word embeddings trained from scratch + a character
CNN + two BiLSTM layers, no pretrained vectors), best epoch by validation accuracy.
Target: UPOS accuracy >= 95 % on dev.

Writes ``benchmarks/out/tagger_ud.json`` and ``.md`` and prints the table.

Usage::

    python benchmarks/tagger_ud.py                       # base preset + UPOS_RECIPE, 20 epochs
    python benchmarks/tagger_ud.py --preset-only         # the base preset alone
    python benchmarks/tagger_ud.py --set layers=3        # one config key changed (repeatable)
    python benchmarks/tagger_ud.py --tags xpos --model bigru
    python benchmarks/tagger_ud.py --quick               # smoke run (tiny, 300 sentences)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data"))
PUBLISHED = (
    "approximate, from the literature (other UD versions / splits): BiLSTM word+char taggers "
    "without contextual embeddings reach roughly 94-95% UPOS on English UD (Plank et al. 2016, "
    "UD 1.2), about 95-96% with pretrained word vectors (UDPipe 2 / Stanza class)"
)


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=JSON`` -> ``(KEY, value)``; the config checks the key and the value's type."""
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected KEY=JSON (e.g. layers=2), got {text!r}"
        ) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--data", default=str(SHARED / "ner" / "ud_english_ewt"))
    p.add_argument("--tags", default="upos", choices=("upos", "xpos"))
    p.add_argument("--model", default="bilstm")
    p.add_argument("--size", default="base", choices=("tiny", "small", "base"))
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--preset-only", action="store_true",
                   help="the --size preset as it is, without the part-of-speech changes "
                   "(apps.tagger.config.UPOS_RECIPE)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", type=_key_value,
                   help="override one config key of the preset (repeatable), e.g. layers=2")  # fmt: skip
    p.add_argument("--max-minutes", type=float, default=30.0,
                   help="stop training at the first epoch end after this many minutes")  # fmt: skip
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--run-dir", default=str(REPO / "runs" / "tagger" / "bench-ud"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    p.add_argument("--fresh", action="store_true", help="delete --run-dir first")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, 300 sentences")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import keras

    from apps.common.rundir import atomic_write_json, atomic_write_text
    from apps.tagger.config import UPOS_RECIPE, TaggerConfig
    from apps.tagger.train import train_and_evaluate

    config = TaggerConfig.preset("tiny" if args.quick else args.size).replace(
        data=args.data, tags=args.tags, model=args.model, seed=args.seed
    )
    if not args.quick and not args.preset_only:
        config = config.replace(**UPOS_RECIPE)
    if args.epochs:
        config = config.replace(epochs=args.epochs)
    if args.set:
        config = TaggerConfig.from_dict({**config.to_dict(), **dict(args.set)})
    if args.quick:
        config = config.replace(limit=300)
    if args.fresh:
        shutil.rmtree(args.run_dir, ignore_errors=True)
    budget = args.max_minutes * 60

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() - self.start > budget:
                print(f"time budget of {args.max_minutes} min reached after epoch {epoch + 1}")
                self.model.stop_training = True

    t0 = time.perf_counter()
    metrics = train_and_evaluate(config, args.run_dir, quiet=True, log=print,
                                 callbacks=[TimeBudget()])  # fmt: skip
    seconds = time.perf_counter() - t0
    history = (Path(args.run_dir) / "history.csv").read_text().strip().splitlines()
    row = {
        "model": config.model,
        "tags": config.tags,
        "data": config.data,
        "split": "official dev (as test)",
        "token_accuracy": metrics["token_accuracy"],
        "oov_rate": metrics["oov_rate"],
        "oov_token_accuracy": metrics["oov_token_accuracy"],
        "sentences": metrics["sentences"],
        "tokens": metrics["tokens"],
        "params": metrics["params"],
        "epochs_trained": len(history) - 1,
        "train_seconds": metrics.get("train_seconds"),
        "total_seconds": round(seconds, 1),
        "config": config.to_dict(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "published": PUBLISHED,
    }
    out = Path(args.out)
    name = "tagger_ud" + ("_quick" if args.quick else "") + ("" if args.tags == "upos" else "_xpos")
    atomic_write_json(out / f"{name}.json", row)
    md = "\n".join([
        f"# UD English-EWT {config.tags.upper()} tagging (apps.tagger)",
        "",
        (
            "| Model | Params | Epochs | Dev tokens | Token accuracy | OOV rate | OOV accuracy "
            "| Train time (s) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {row['model']} | {row['params']:,} | {row['epochs_trained']} | "
            f"{row['tokens']:,} | {100 * row['token_accuracy']:.2f}% | "
            f"{100 * row['oov_rate']:.1f}% | {100 * (row['oov_token_accuracy'] or 0):.1f}% | "
            f"{row['train_seconds']} |"
        ),
        "",
        (
            f"Train = 90% of en_ewt-ud-train by document (seed {config.seed}), validation = the "
            "rest, scored on the official dev split (never used for model selection). No "
            f"pretrained embeddings. Machine: {row['machine']}."
        ),
        "",
        f"Published reference points: {PUBLISHED}.",
        "",
    ])  # fmt: skip
    atomic_write_text(out / f"{name}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
