"""Searched cells vs tuned LSTM and GRU on JSB Chorales, at a fixed parameter and trial budget.

For each seed, one ``python -m tuning cells --task jsb`` search runs the strategies ``evolution``
(Jozefowicz-style mutation of the best cells, from LSTM/GRU/MUT3), ``random`` (keras-tuner's
random search over the genotype encoding) and the baselines ``lstm`` / ``gru`` (their learning
rate tuned with the same number of trials). Every candidate's recurrent block is sized to
``--param-budget`` weights. The report gives, per strategy, the best validation NLL per frame
(nats) of each seed, their mean and spread, and says whether the best searched cell matched
the best tuned standard cell; plus trials/hour and the search's own overhead (wall time of the
searches outside trials, relative to the time inside trials).

Writes ``benchmarks/out/tuning_jsb.json`` and ``.md`` (and keeps each seed's run dir under
``benchmarks/out/tuning_jsb_runs/``; re-running resumes them).

Usage::

    python benchmarks/tuning_jsb.py --quick      # 3 seeds x 4 strategies x 3 trials, ~15-25 min
    python benchmarks/tuning_jsb.py --trials 20 --steps 600 --param-budget 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data"))
SEARCHED = ("evolution", "random", "bayesian")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--data", default=str(SHARED / "music" / "jsb_chorales" / "jsb-chorales-quarter.json")
    )
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    p.add_argument("--strategies", default="evolution,random,lstm,gru")
    p.add_argument("--trials", type=int, default=10, help="trials per strategy")
    p.add_argument("--param-budget", type=int, default=20000)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=5e-3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    p.add_argument(
        "--quick", action="store_true", help="3 trials per strategy, 150 steps, budget 10000"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.steps, args.eval_every, args.param_budget = 3, 150, 50, 10000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from apps.common.cli import import_backend

    import_backend()
    from tuning.cell_search import run_cell_search
    from tuning.config import CellSearchConfig

    out = Path(args.out)
    runs = out / "tuning_jsb_runs"
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = tuple(s.strip() for s in args.strategies.split(","))
    per_seed: dict[int, dict] = {}
    started = time.time()
    for seed in seeds:
        config = CellSearchConfig.base().replace(
            data=args.data,
            strategies=strategies,
            trials=args.trials,
            param_budget=args.param_budget,
            steps=args.steps,
            eval_every=args.eval_every,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            learning_rate=args.learning_rate,
            seed=seed,
        )
        run_dir = runs / (f"seed{seed}_b{args.param_budget}_t{args.trials}_s{args.steps}")
        print(f"seed {seed}: {run_dir}", flush=True)
        summary = run_cell_search(config, run_dir, log=lambda m: print("  " + m, flush=True))
        per_seed[seed] = summary
    table = {}
    for strategy in strategies:
        best = [per_seed[s]["strategies"][strategy]["best"] for s in seeds]
        cells = [per_seed[s]["strategies"][strategy]["best_cell"] for s in seeds]
        values = [b for b in best if b is not None]
        table[strategy] = {
            "best_per_seed": best,
            "cells": cells,
            "mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values) if values else None,
        }
    timing = [per_seed[s]["timing"] for s in seeds]
    search_s = sum(t["search_seconds"] for t in timing)
    trial_s = sum(t["trial_seconds"] for t in timing)
    trained = sum(t["trials_trained"] for t in timing)
    searched = [s for s in strategies if s in SEARCHED]
    standard = [s for s in strategies if s not in SEARCHED]
    verdict = None
    if searched and standard:
        best_searched = min(table[s]["mean"] for s in searched)
        best_standard = min(table[s]["mean"] for s in standard)
        verdict = {
            "best_searched_mean": best_searched,
            "best_standard_mean": best_standard,
            "searched_at_least_as_good": best_searched <= best_standard,
            "per_seed_wins": sum(
                min(per_seed[s]["strategies"][x]["best"] for x in searched)
                <= min(per_seed[s]["strategies"][x]["best"] for x in standard)
                for s in seeds
            ),
        }
    result = {
        "setting": vars(args) | {"seeds": seeds, "strategies": list(strategies)},
        "strategies": table,
        "verdict": verdict,
        "timing": {
            "search_seconds": search_s,
            "trial_seconds": trial_s,
            "trials_trained": trained,
            "trials_per_hour": 3600 * trained / search_s if search_s else None,
            "overhead_fraction": (search_s - trial_s) / trial_s if trial_s else None,
            "wall_seconds_this_run": time.time() - started,
        },
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "tuning_jsb.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "tuning_jsb.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    s = result["setting"]
    lines = [
        "# Cell search on JSB Chorales: searched cells vs tuned LSTM / GRU",
        "",
        (
            f"Validation NLL per frame (nats, lower is better); recurrent block budget "
            f"{s['param_budget']:,} weights; {s['trials']} trials per strategy; {s['steps']} "
            f"steps per trial (early stopping every {s['eval_every']}); batch "
            f"{s['batch_size']}, windows of {s['seq_len']}; seeds "
            f"{', '.join(map(str, s['seeds']))}. Machine: {result['machine']}."
        ),
        "",
        "| strategy | best per seed | mean ± std | best cells |",
        "|---|---|---|---|",
    ]
    for name, row in result["strategies"].items():
        per = ", ".join("—" if b is None else f"{b:.3f}" for b in row["best_per_seed"])
        mean = "—" if row["mean"] is None else f"{row['mean']:.3f} ± {row['std']:.3f}"
        lines.append(f"| {name} | {per} | {mean} | {', '.join(str(c) for c in row['cells'])} |")
    v = result["verdict"]
    if v:
        lines += [
            "",
            (
                f"Best searched strategy (mean) {v['best_searched_mean']:.3f} vs best tuned standard "
                f"cell {v['best_standard_mean']:.3f}: the searched cell "
                + (
                    "**matched or beat** "
                    if v["searched_at_least_as_good"]
                    else "**did not reach** "
                )
                + f"the tuned standard cell (per seed: {v['per_seed_wins']} of "
                f"{len(s['seeds'])} seeds)."
            ),
        ]
    t = result["timing"]
    lines += [
        "",
        (
            f"Throughput: {t['trials_trained']} trials trained in "
            f"{t['search_seconds'] / 60:.1f} min of search = {t['trials_per_hour']:.0f} "
            f"trials/hour; search overhead (oracle, bookkeeping) "
            f"{100 * t['overhead_fraction']:.2f}% of the time spent in trials."
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
