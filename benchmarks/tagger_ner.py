"""NER benchmarks of the BiLSTM tagger: WNUT-17 (dev) and Wikigold (seeded document split).

Data (the shared ``ner`` folder):

- ``wnut17``: train = 90 % of ``wnut17train.conll`` (seeded), validation = the other 10 %,
  scored on the official **dev** file ``emerging.dev.conll`` (the test file is not shipped);
- ``wikigold``: IOB1, read and converted to IOB2; split 80/10/10 by document (seed).

Entity-level precision / recall / F1 with exact span matching (seqeval, conlleval mode).
Model: ``apps.tagger`` ``base`` preset (word + character CNN + BiLSTM, no pretrained vectors,
no CRF), best epoch by validation loss.

Writes ``benchmarks/out/tagger_ner.json`` and ``.md`` and prints the table.

Usage::

    python benchmarks/tagger_ner.py                              # both, base preset
    python benchmarks/tagger_ner.py --datasets wnut17 --max-minutes 5
    python benchmarks/tagger_ner.py --quick                      # smoke run
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
PUBLISHED = {
    "wnut17": "WNUT-17 shared task (Derczynski et al. 2017): the best systems scored about 40-42 "
    "entity F1 on the *test* set; later systems without large pretrained language models "
    "about 45-50 (test; dev scores are not directly comparable)",
    "wikigold": "no standard split; reported only for this seeded document split",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--datasets", default="wnut17,wikigold")
    p.add_argument("--model", default="bilstm")
    p.add_argument("--size", default="base", choices=("tiny", "small", "base"))
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=6.0,
                   help="per dataset: stop training at the first epoch end after this long")  # fmt: skip
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--runs", default=str(REPO / "runs" / "tagger" / "bench-ner"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    p.add_argument("--fresh", action="store_true", help="delete the run dirs first")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, 200 sentences")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import keras

    from apps.common.rundir import atomic_write_json, atomic_write_text
    from apps.tagger.config import TaggerConfig
    from apps.tagger.train import train_and_evaluate

    budget = args.max_minutes * 60

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() - self.start > budget:
                print(f"time budget of {args.max_minutes} min reached after epoch {epoch + 1}")
                self.model.stop_training = True

    rows = []
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        config = TaggerConfig.preset("tiny" if args.quick else args.size).replace(
            data=str(SHARED / "ner" / name), tags="ner", model=args.model, seed=args.seed
        )
        if args.epochs:
            config = config.replace(epochs=args.epochs)
        if args.quick:
            config = config.replace(limit=200)
        run_dir = Path(args.runs) / name
        if args.fresh:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"== {name}")
        t0 = time.perf_counter()
        m = train_and_evaluate(config, run_dir, quiet=True, log=print, callbacks=[TimeBudget()])
        epochs = len((run_dir / "history.csv").read_text().strip().splitlines()) - 1
        rows.append({
            "dataset": name, "model": config.model, "split": m["split"],
            "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
            "token_accuracy": m["token_accuracy"], "entities": m["entities"],
            "per_type": m["per_type"], "sentences": m["sentences"], "params": m["params"],
            "epochs_trained": epochs, "train_seconds": m.get("train_seconds"),
            "total_seconds": round(time.perf_counter() - t0, 1),
            "data_description": json.loads((run_dir / "config.json").read_text())[
                "data_description"],
            "published": PUBLISHED.get(name, ""), "config": config.to_dict(),
        })  # fmt: skip
        print(f"   entity F1 {m['f1']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f})")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    header = ("| Data | Scored on | Model | Epochs | Entities | Precision | Recall | F1 "
              "| Train time (s) |")  # fmt: skip
    lines = ["# NER with the BiLSTM tagger (apps.tagger)", "", header,
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        scored = "official dev" if r["dataset"] == "wnut17" else "seeded 10% of documents"
        lines.append(f"| {r['dataset']} | {scored} | {r['model']} | {r['epochs_trained']} | "
                     f"{r['entities']:,} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | "
                     f"**{100 * r['f1']:.1f}** | {r['train_seconds']} |")  # fmt: skip
    lines += ["", "Per type (F1):", ""]
    for r in rows:
        per = ", ".join(
            f"{t} {100 * v['f1']:.1f} ({v['support']})" for t, v in r["per_type"].items()
        )
        lines.append(f"- {r['dataset']}: {per}")
    lines += ["", "Published reference points:", ""]
    lines += [f"- {r['dataset']}: {r['published']}" for r in rows]
    lines += ["", f"No pretrained embeddings, no CRF. Machine: {machine}.", ""]
    md = "\n".join(lines)
    out = Path(args.out)
    suffix = "_quick" if args.quick else ""
    atomic_write_json(out / f"tagger_ner{suffix}.json", {"rows": rows, "machine": machine})
    atomic_write_text(out / f"tagger_ner{suffix}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
