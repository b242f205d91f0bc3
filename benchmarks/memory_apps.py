"""Peak memory (RSS) of training each app on its largest shared dataset.

Each app's ``train`` runs as its own process on the full dataset (``--size small``, the app's
defaults otherwise); the peak resident set size is the kernel's ``ru_maxrss`` of that process
(``os.wait4``), so it covers loading and preprocessing the whole dataset and the training
steps. A run longer than ``--budget`` seconds is stopped there (SIGINT, which the apps treat as
an interruption that a rerun resumes): by then the data is loaded and the training steps run
at their steady state, which is where the peak is reached; the table says which runs finished
their epoch. A first row measures the floor: a process that imports TensorFlow and Keras and
builds a one-layer model.

Writes ``benchmarks/out/memory_apps.json`` and ``.md``.

Usage::

    python benchmarks/memory_apps.py                  # all apps, about 20 minutes
    python benchmarks/memory_apps.py --apps forecast,tagger --budget 60
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNSUITE_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

from benchmarks import common

# app -> (data path, extra train flags, what the data is)
CASES: dict[str, tuple[Path, list[str], str]] = {
    "sentiment": (SHARED / "imdb", [], "IMDB, 25,000 + 24,000 reviews"),
    "charlm": (SHARED / "tinyshakespeare" / "input.txt", [], "Tiny Shakespeare, 1.1M characters"),
    "music": (SHARED / "music" / "boulanger_lewandowski" / "MuseData.json.gz", [],
              "MuseData piano rolls (Boulanger-Lewandowski)"),
    "tagger": (SHARED / "ner" / "ud_english_ewt", [], "UD English-EWT, 12,544 sentences"),
    "forecast": (SHARED / "sealevel" / "venice_punta_salute_hourly.csv",
                 ["--lookback", "72", "--horizon", "72", "--classical", "none"],
                 "Venice tide gauge, 245,881 hours"),
    "captioning": (SHARED / "flickr8k", [], "Flickr8k, 2,700 images / 13,500 captions"),
    "translation": (SHARED / "spa-eng", [], "Tatoeba spa-eng, 116,964 pairs"),
}
FLOOR = (
    "import os; os.environ.setdefault('KERAS_BACKEND', 'tensorflow'); import keras, numpy as np; "
    "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); m.compile('adam', 'mse'); "
    "m.fit(np.zeros((8, 4)), np.zeros((8, 1)), verbose=0)"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--apps", default=",".join(CASES), help="comma-separated apps")
    p.add_argument("--budget", type=float, default=180.0,
                   help="seconds a train run may take before it is stopped")  # fmt: skip
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    return p.parse_args(argv)


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_measured(cmd: list[str], budget: float, log: Path) -> dict:
    """Run ``cmd``, stopped (SIGINT) after ``budget`` s: its own peak RSS (``os.wait4``),
    exit status and wall time."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        stopped = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if not stopped and time.monotonic() - start > budget:
                proc.send_signal(signal.SIGINT)
                stopped = True
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "returncode": proc.returncode,
        "stopped_after_budget": stopped,
        "wall_s": round(time.monotonic() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A background shell starts jobs with SIGINT ignored, which their children inherit (and
    # Python then never raises KeyboardInterrupt); a handler here resets to default on exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    apps = common.pick(args.apps, list(CASES))
    missing = [str(CASES[a][0]) for a in apps if not CASES[a][0].exists()]
    if missing:
        print(f"error: shared data not found: {missing[0]} (set RNNSUITE_SHARED_DATA)",
              file=sys.stderr)  # fmt: skip
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnsuite-memory-") as tmp:
        floor = run_measured([sys.executable, "-c", FLOOR], 600, Path(tmp) / "floor.log")
        rows.append({"app": "(floor: import TF + Keras, fit a Dense layer)", "data": "-",
                     "data_mib": 0.0, **floor})  # fmt: skip
        print(f"floor: {floor['peak_rss_mib']} MiB", flush=True)
        for app in apps:
            data, extra, what = CASES[app]
            run_dir = Path(tmp) / app
            cmd = [sys.executable, "-m", f"apps.{app}", "train", "--data", str(data),
                   "--size", "small", "--epochs", str(args.epochs), "--seed", str(args.seed),
                   "--run-dir", str(run_dir), "--quiet", *extra]  # fmt: skip
            log = Path(tmp) / f"{app}.log"
            result = run_measured(cmd, args.budget, log)
            said = [line for line in log.read_text(errors="replace").splitlines()
                    if line.strip() and not line.startswith(("I0000", "W0000", "E0000", "WARNING"))]  # fmt: skip
            row = {"app": app, "data": what, "data_mib": round(_size_on_disk(data) / 2**20, 1),
                   **result, "command": shlex.join(cmd), "output": [x[:300] for x in said[:4] + said[-2:]]}  # fmt: skip
            rows.append(row)
            print(f"{app}: {row['peak_rss_mib']} MiB peak, {row['wall_s']} s, exit "
                  f"{row['returncode']}{' (stopped)' if row['stopped_after_budget'] else ''}",
                  flush=True)  # fmt: skip

    payload = {"benchmark": "memory_apps", "command": common.command_line(),
               "machine": common.machine_info(), "budget_s": args.budget, "epochs": args.epochs,
               "rows": rows}  # fmt: skip
    base = rows[0]["peak_rss_mib"]
    table_rows = []
    for r in rows:
        if r is rows[0]:
            above, done = "-", "-"
        else:
            above = f"{r['peak_rss_mib'] - base:.0f}"
            done = ("stopped" if r["stopped_after_budget"] else
                    "yes" if r["returncode"] == 0 else f"exit {r['returncode']}")  # fmt: skip
        table_rows.append([r["app"], r["data"], f"{r['data_mib']:.1f}",
                           f"{r['peak_rss_mib']:.0f}", above, f"{r['wall_s']:.0f}", done])  # fmt: skip
    table = common.markdown_table(
        ["app", "data", "on disk MiB", "peak RSS MiB", "above floor MiB", "wall s", "finished"],
        table_rows,
    )
    notes = (
        f"One `train` process per app, `--size small --epochs {args.epochs}`, on the full "
        "dataset; peak RSS is the process's `ru_maxrss`. *stopped*: the run reached the "
        f"{args.budget:g} s budget (data loaded, training at its steady state) and was "
        "interrupted. *above floor*: peak RSS minus that of a process that only imports "
        "TensorFlow + Keras and fits one Dense layer."
    )
    common.write_results(args.out, "memory_apps", payload, table, notes)
    lines = [table, notes]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
