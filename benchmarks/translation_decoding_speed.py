"""Decoding speed of a trained translation run: sentences per second of batched greedy decoding
and of beam search, with the attention keys ``H U_a`` precomputed once per sentence versus the
naive decoder that recomputes them at every step.

Both decoders give the same translations (checked here); only the work per step differs. Results
go to ``benchmarks/out/translation_decoding_speed_<tag>.{json,md}``.

Usage::

    python -m apps.translation --run-dir runs/translation/numbers     # a trained run first
    python benchmarks/translation_decoding_speed.py --run-dir runs/translation/numbers
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


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--run-dir", required=True, help="a trained attention run")
    parser.add_argument("--sentences", type=int, default=256, help="test sentences decoded")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per greedy batch")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    parser.add_argument("--tag", default=None,
                        help="output name suffix (default: the run dir's folder name)")  # fmt: skip
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from apps.common.cli import import_backend

    import_backend()
    from apps.common.rundir import RunDir
    from apps.translation.train import APP_MODULE, load_data, load_trained

    trained = load_trained(RunDir.open(args.run_dir, APP_MODULE))
    if trained.config.model != "attention":
        print("error: the speed benchmark compares attention decoders; give an attention run",
              file=sys.stderr)  # fmt: skip
        return 2
    test = load_data(trained.config).test[: args.sentences]
    max_len = trained.config.max_source_len
    sources = [
        ids[:max_len] for ids in (trained.source_tokenizer.encode(s) for s, _ in test) if ids
    ]
    decoders = {"precomputed keys": trained.translator(precomputed_keys=True),
                "naive (keys every step)": trained.translator(precomputed_keys=False)}  # fmt: skip
    rows, outputs = [], {}
    settings = [("greedy", 1, args.batch_size), ("greedy, batch 1", 1, 1),
                (f"beam {args.beam}", args.beam, args.batch_size)]  # fmt: skip
    for label, beam, batch in settings:
        subset = sources if batch > 1 else sources[:32]
        for name, translator in decoders.items():
            translator.translate_ids(subset[:batch], beam=beam, batch_size=batch)  # trace once
            translator.steps_run = 0

            def run(translator=translator, subset=subset, beam=beam, batch=batch):
                return translator.translate_ids(subset, beam=beam, batch_size=batch)

            seconds = _time(run, args.repeats)
            outputs[(label, name)] = run()
            rows.append({"decoding": label, "decoder": name, "sentences": len(subset),
                         "batch_size": batch, "seconds": round(seconds, 3),
                         "sentences_per_second": round(len(subset) / seconds, 1)})  # fmt: skip
            print(f"{label:<16} {name:<24} {len(subset) / seconds:8.1f} sentences/s")
        a, b = (outputs[(label, n)] for n in decoders)
        if [x for x, _ in a] != [x for x, _ in b]:
            print(f"warning: {label}: the two decoders disagree", file=sys.stderr)
    import platform

    result = {"benchmark": "translation_decoding_speed", "run_dir": str(args.run_dir),
              "config": trained.config.to_dict(), "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "rows": rows}  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"translation_decoding_speed_{args.tag or Path(args.run_dir).name}"
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = ["# Translation decoding speed", "",
          (f"Run {args.run_dir} ({trained.config.model}, {trained.config.cell}, {trained.config.units} "
           f"units, data {trained.config.data}); {os.cpu_count()} CPUs; best of {args.repeats}."), "",
          "| decoding | decoder | sentences | batch | sentences/s |", "|---|---|---:|---:|---:|",
          *(f"| {r['decoding']} | {r['decoder']} | {r['sentences']} | {r['batch_size']} | "
            f"{r['sentences_per_second']} |" for r in rows), ""]  # fmt: skip
    (OUT / f"{stem}.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
