"""Spanish → English on the Tatoeba pairs: train the attention model, report sacreBLEU at beam 1
and beam 4 (target: BLEU >= 35).

The full run (``--size base``: all 116,964 pairs, 256 units, 4 epochs) trains for about 35
minutes on two CPU cores; ``--limit``, ``--epochs``, ``--units`` make a shorter, partial run.
Training resumes when the same command is run again with the same ``--run-dir``. Results go to
``benchmarks/out/translation_spa_eng.{json,md}`` (``--model noattention``:
``translation_spa_eng_noattention.{json,md}``, the fixed-context baseline on the same budget).

Usage::

    python benchmarks/translation_spa_eng.py                       # the full run
    python benchmarks/translation_spa_eng.py --model noattention \\
        --run-dir runs/translation/spa-eng-bench-noattention        # its baseline
    python benchmarks/translation_spa_eng.py --limit 30000 --epochs 6 --units 128 \\
        --run-dir runs/translation/spa-short                        # a partial run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "spa-eng"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="spa-eng folder or spa.txt")
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "translation" / "spa-eng-bench"))
    parser.add_argument("--limit", type=int, default=None, help="pairs used (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the base preset's")
    parser.add_argument("--units", type=int, default=None, help="default: the base preset's")
    parser.add_argument("--embedding-dim", type=int, default=None)
    parser.add_argument("--model", default="attention", choices=("attention", "noattention"))
    parser.add_argument(
        "--beam-examples",
        type=int,
        default=2000,
        help="test pairs decoded at beam 1 and beam 4 (beam search is slow)",
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the JSON and table")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from apps.common.cli import import_backend

    import_backend()
    from apps.common.rundir import RunDir
    from apps.translation.config import TranslationConfig
    from apps.translation.metrics import corpus_scores
    from apps.translation.train import (
        APP_MODULE,
        load_data,
        load_trained,
        train_and_evaluate,
        translate_pairs,
    )
    from benchmarks.common import markdown_table

    changes = {"data": args.data, "model": args.model}
    for key in ("limit", "epochs", "units", "embedding_dim"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    config = TranslationConfig.base().replace(**changes)
    run = RunDir.prepare(args.run_dir, APP_MODULE)
    started = time.monotonic()
    greedy_all = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    total = time.monotonic() - started
    trained = load_trained(run)
    test = load_data(config).test[: args.beam_examples]
    translator = trained.translator()
    by_beam = {}
    for beam in (1, 4):
        t0 = time.monotonic()
        hyps, refs, _ = translate_pairs(trained, test, beam=beam, translator=translator)
        by_beam[beam] = {**corpus_scores(hyps, refs), "seconds": round(time.monotonic() - t0, 1)}
        print(f"beam {beam}: BLEU {by_beam[beam]['bleu']:.2f}, chrF {by_beam[beam]['chrf']:.2f} "
              f"on {len(hyps)} test pairs")  # fmt: skip
    result = {
        "benchmark": "translation_spa_eng",
        "config": config.to_dict(),
        "full_run": args.limit is None and args.epochs is None and args.units is None,
        "test_pairs_all": greedy_all["examples"],
        "greedy_all": {k: greedy_all[k] for k in ("bleu", "chrf", "exact_match", "token_accuracy")},
        "greedy_by_source_length": greedy_all["by_length"],
        "beam_subset_pairs": len(test),
        "by_beam": {str(k): v for k, v in by_beam.items()},
        "train_seconds": greedy_all.get("train_seconds"),
        "wall_seconds": round(total, 1),
        "target_bleu": 35.0,
        "run_dir": str(run.path),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "translation_spa_eng" + ("" if args.model == "attention" else f"_{args.model}")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    kind = "full" if result["full_run"] else "partial (shortened)"
    best_bleu = max(greedy_all["bleu"], by_beam[4]["bleu"])
    md = [
        f"# Spanish → English (Tatoeba), {args.model} {config.cell.upper()} encoder–decoder",
        "",
        (f"Run: {kind}; {config.limit or 'all'} pairs, {config.units} units, "
         f"{config.epochs} epochs; training {result['train_seconds']} s."),
        "",
        (f"Greedy on all {result['test_pairs_all']} test pairs: sacreBLEU "
         f"{greedy_all['bleu']:.2f}, chrF {greedy_all['chrf']:.2f}, exact match "
         f"{greedy_all['exact_match']:.2f}%."),
        "",
        markdown_table(["beam", "BLEU", "chrF", "exact match", f"seconds ({len(test)} pairs)"],
                       [[b, f"{v['bleu']:.2f}", f"{v['chrf']:.2f}", f"{v['exact_match']:.2f}%",
                         v["seconds"]] for b, v in by_beam.items()]).rstrip("\n"),
        "",
        (f"Target: BLEU >= 35 ({'met' if best_bleu >= 35 else 'not met'} by this run)."
         if args.model == "attention" else
         "Baseline: the attention model, trained on the same budget, has to score higher."),
        "",
        "Greedy, all test pairs, by source length (tokens):",
        "",
        markdown_table(["source tokens", "pairs", "BLEU", "chrF", "exact match"],
                       [[f"{r['low']}-{r['high']}", r["count"], f"{r['bleu']:.2f}",
                         f"{r['chrf']:.2f}", f"{r['exact_match']:.2f}%"]
                        for r in greedy_all["by_length"]]).rstrip("\n"),
        "",
    ]  # fmt: skip
    (args.out / f"{stem}.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
