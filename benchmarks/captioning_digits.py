"""Digit scenes: exact-caption accuracy of the captioning main job over several seeds, and
what the wrong captions get wrong.

Each seed trains the main job's config (``python -m apps.captioning train --seed N``: the
``small`` preset, 16,000 training scenes, 6 epochs) in its own resumable run dir and scores
its 3,200 test scenes (digit images never seen in training). Every wrong caption is sorted
into: *order* (the right digits in the wrong order, e.g. two middle digits swapped),
*misread* (one digit wrong), *other* (several wrong, or the wrong number of digits); and the
error rate is given per layout (2, 3 or 4 digits).

    python benchmarks/captioning_digits.py                     # seeds 1234,1,2,3,7 (~3 min each)
    python benchmarks/captioning_digits.py --seeds 1 --scenes 2000 --epochs 2   # a quick check

Writes ``benchmarks/out/captioning_digits.{json,md}`` (run dirs under ``--work``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common

TARGET = 0.95
KINDS = ("order", "misread", "other")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--seeds", default="1234,1,2,3,7", help="comma-separated seeds")
    p.add_argument("--scenes", type=int, help="training scenes (default: the main job's)")
    p.add_argument("--epochs", type=int, help="epochs (default: the main job's)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    p.add_argument("--work", type=Path, help="run dirs (default: OUT/captioning_digits_runs)")
    return p.parse_args(argv)


def classify(truth: Sequence[int], generated: Sequence[int]) -> str:
    """What a wrong caption got wrong, from the digits in reading order."""
    if len(truth) == len(generated) and sorted(truth) == sorted(generated):
        return "order"
    if len(truth) == len(generated) and sum(a != b for a, b in zip(truth, generated)) == 1:
        return "misread"
    return "other"


def caption_digits(caption: str) -> list[int]:
    """The digits a caption names, in order (the count word of ``"three digits: ..."`` skipped)."""
    from apps.captioning.scenes import DIGIT_WORDS

    words = caption.replace(",", " ").split()
    if len(words) > 1 and words[1] == "digits:":
        words = words[2:]
    return [DIGIT_WORDS.index(w) for w in words if w in DIGIT_WORDS]


def error_breakdown(scenes: Sequence[Any], generated: Sequence[str]) -> dict[str, Any]:
    """Counts of wrong captions per kind (``KINDS``) and per number of digits in the scene."""
    kinds = dict.fromkeys(KINDS, 0)
    wrong, total = collections.Counter(), collections.Counter()
    for scene, caption in zip(scenes, generated, strict=True):
        n = len(scene.digits)
        total[n] += 1
        if caption != scene.caption:
            wrong[n] += 1
            kinds[classify(scene.digits, caption_digits(caption))] += 1
    return {"kinds": kinds, "by_digits": {n: [wrong[n], total[n]] for n in sorted(total)}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from apps.captioning.config import CaptioningConfig
    from apps.captioning.data import scene_counts
    from apps.captioning.scenes import make_scenes
    from apps.captioning.train import train_and_evaluate

    work = args.work or args.out / "captioning_digits_runs"
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    base = CaptioningConfig.small()
    base = base.replace(scenes=args.scenes or base.scenes, epochs=args.epochs or base.epochs)
    rows = []
    for seed in seeds:
        run_dir = work / f"seed{seed}"
        print(f"== seed {seed} -> {run_dir}", flush=True)
        metrics = train_and_evaluate(base.replace(seed=seed), run_dir, quiet=True)
        lines = (run_dir / "samples" / "captions-test.jsonl").read_text().splitlines()
        generated = [json.loads(line)["caption"] for line in lines]
        scenes = make_scenes(scene_counts(base.scenes), seed)["test"]
        rows.append({"seed": seed, "exact_caption_accuracy": metrics["exact_caption_accuracy"],
                     "bleu_4": metrics["bleu_4"], "cider": metrics["cider"],
                     "test_scenes": len(scenes), **error_breakdown(scenes, generated),
                     "train_seconds": metrics.get("train_seconds"), "run_dir": str(run_dir)})  # fmt: skip
        print(f"   exact captions {100 * rows[-1]['exact_caption_accuracy']:.2f}%", flush=True)
        _write(args, base, rows)
    return 0


def _write(args: argparse.Namespace, config: Any, rows: list[dict]) -> None:
    accuracies = [r["exact_caption_accuracy"] for r in rows]
    payload = {"command": common.command_line(), "machine": common.machine_info(),
               "config": config.to_dict(), "target": TARGET, "rows": rows,
               "min_accuracy": min(accuracies),
               "mean_accuracy": sum(accuracies) / len(accuracies)}  # fmt: skip

    def rate(row: dict, n: int) -> str:
        wrong, total = row["by_digits"].get(n, [0, 0])
        return f"{100 * wrong / total:.1f}% ({wrong}/{total})" if total else "-"

    table = common.markdown_table(
        ["Seed", "Exact captions", "Wrong: order", "misread", "other", "2 digits", "3 digits",
         "4 digits", "Train s"],
        [(r["seed"], f"{100 * r['exact_caption_accuracy']:.2f}%", *r["kinds"].values(),
          rate(r, 2), rate(r, 3), rate(r, 4), r["train_seconds"]) for r in rows],
    )  # fmt: skip
    notes = (
        f"Main-job config ({config.scenes:,} training scenes, {config.epochs} epochs, "
        f"{config.cell} decoder, {config.units} units); test scenes use digit images never seen "
        f"in training. Lowest {100 * min(accuracies):.2f}%, mean "
        f"{100 * payload['mean_accuracy']:.2f}%; target >= {100 * TARGET:.0f}%: "
        f"{'met by every seed' if min(accuracies) >= TARGET else 'not met by every seed'}. "
        "Error columns: wrong captions per kind; per layout: the share of its scenes wrong."
    )
    common.write_results(args.out, "captioning_digits", payload, table, notes)


if __name__ == "__main__":
    sys.exit(main())
