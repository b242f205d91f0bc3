"""The cells benchmark under the JAX backend next to TensorFlow, each in its own process.

Our layers are pure ``keras.ops``, so they must run unchanged under ``KERAS_BACKEND=jax``. This
runs ``python -m benchmarks cells`` (same settings) once with ``KERAS_BACKEND=tensorflow`` and
once with ``KERAS_BACKEND=jax``, in fresh subprocesses, and compares every layer's training
step: ``ratio`` = JAX time / TensorFlow time. Both runs' own ours-vs-keras ratios are kept.
JAX is an optional extra (``pip install jax``); without it the benchmark records why it
skipped. The two processes run one after the other (not alternating): the CPU-time clock
with one compute thread keeps the comparison fair on a loaded machine, the wall clock does not.

    python -m benchmarks backends
    python -m benchmarks backends --quick
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import cells, common

BACKENDS = ("tensorflow", "jax")


def backend_available(name: str) -> bool:
    """Whether the backend's library is importable in this environment."""
    return importlib.util.find_spec(name) is not None


def cells_argv(args: argparse.Namespace, out_dir: Path, quick: bool) -> list[str]:
    """The ``python -m benchmarks cells`` arguments carrying this run's settings."""
    argv = ["cells", "--out", str(out_dir)]
    if quick:
        argv.append("--quick")
    for flag, value in (
        ("--units", getattr(args, "units", None)),
        ("--cells", getattr(args, "cells", None)),
    ):
        if value is not None:
            argv += [flag, ",".join(str(v) for v in value)]
    for flag in ("batch", "steps", "repeats", "warmup", "threads"):
        value = getattr(args, flag, None)
        if value is not None:
            argv += [f"--{flag}", str(value)]
    if getattr(args, "clock", None):
        argv += ["--clock", args.clock]
    if getattr(args, "jit", True) is False:
        argv.append("--no-jit")
    return argv


def run_backend(backend: str, argv: list[str]) -> tuple[dict[str, Any] | None, str]:
    """Runs the cells benchmark under ``backend``; ``(payload, "")`` or ``(None, reason)``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "benchmarks", *argv]
    proc = subprocess.run(
        cmd, cwd=common.REPO, env=env, capture_output=True, text=True, check=False
    )
    out_json = Path(argv[argv.index("--out") + 1]) / "cells.json"
    if proc.returncode != 0 or not out_json.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f"{backend} run failed (exit {proc.returncode}): {' | '.join(tail)}"
    return json.loads(out_json.read_text()), ""


def layer_times(payload: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    """``{(units, layer): figure}`` from a cells payload (each layer's measured figure)."""
    times = {}
    for rec in payload["records"]:
        for side in ("ours", "reference"):
            times[(rec["units"], rec[side]["label"])] = rec[side]
    return times


def records(payloads: dict[str, dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per (units, layer): JAX step (ours) vs TensorFlow step (reference)."""
    tf_times, jax_times = (layer_times(payloads[b]) for b in BACKENDS)
    tf_ratios = {r["name"]: r["ratio"] for r in payloads["tensorflow"]["records"]}
    jax_ratios = {r["name"]: r["ratio"] for r in payloads["jax"]["records"]}
    out = []
    for key in sorted(
        set(tf_times) & set(jax_times), key=lambda k: (k[0], list(cells.LAYERS).index(k[1]))
    ):
        units, layer = key
        pair = next((f"{o} vs {r}, units {units}" for o, r, _ in cells.PAIRS if o == layer), None)
        out.append(
            {
                "benchmark": "backends",
                "name": f"{layer} jax vs tensorflow, units {units}",
                "unit": "s",
                "units": units,
                "layer": layer,
                "ours": {**jax_times[key], "label": f"{layer} (jax)"},
                "reference": {**tf_times[key], "label": f"{layer} (tensorflow)"},
                "ratio": jax_times[key]["median"] / tf_times[key]["median"],
                "vs_keras": {
                    "pair": pair,
                    "tensorflow": tf_ratios.get(pair),
                    "jax": jax_ratios.get(pair),
                },
                "target": None,
                "meets_target": None,
                **ctx,
                "machine_jax": payloads["jax"]["machine"],
                "machine_tensorflow": payloads["tensorflow"]["machine"],
            }
        )
    return out


def table(recs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in recs:
        vk = r["vs_keras"]
        fmt = lambda v: "" if v is None else f"{v:.2f}"
        rows.append(
            (
                r["units"],
                r["layer"],
                common.seconds(r["reference"]["median"]),
                common.seconds(r["ours"]["median"]),
                f"{r['ratio']:.2f}",
                vk["pair"] or "",
                fmt(vk["tensorflow"]),
                fmt(vk["jax"]),
            )
        )
    headers = ("units", "layer", "tensorflow", "jax", "jax / tf", "comparison",
               "ratio on tf", "ratio on jax")  # fmt: skip
    return common.markdown_table(headers, rows)


def run_from_args(args: argparse.Namespace, out_dir: Any, name: str = "backends") -> int:
    out_dir = Path(out_dir)
    settings = cells.settings_from_args(args, args.quick)
    ctx = cells.context(settings)
    missing = [b for b in BACKENDS if not backend_available(b)]
    if missing:
        payload = {"benchmark": "backends", **ctx, "records": [],
                   "skipped": f"not installed: {', '.join(missing)} (pip install jax)"}  # fmt: skip
        common.write_results(out_dir, name, payload, "", payload["skipped"])
        print(payload["skipped"])
        return 0
    payloads, errors = {}, []
    for backend in BACKENDS:
        argv = cells_argv(args, out_dir / f"{name}-{backend}", args.quick)
        payload, error = run_backend(backend, argv)
        if payload is None:
            errors.append(error)
        else:
            payloads[backend] = payload
    if errors:
        payload = {"benchmark": "backends", **ctx, "records": [], "errors": errors}
        common.write_results(out_dir, name, payload, "", "\n".join(errors))
        print("\n".join(errors), file=sys.stderr)
        return 1
    recs = records(payloads, ctx)
    payload = {"benchmark": "backends", **ctx, "records": recs}
    notes = (
        "ratio = JAX step / TensorFlow step of the same layer (each backend in its own "
        f"process, {settings.clock} time, {settings.threads or 'default'} compute thread(s)); "
        "'ratio on tf/jax' = that backend's ours / keras ratio from its cells run. Per-backend "
        f"tables: `{name}-tensorflow/cells.md`, `{name}-jax/cells.md`."
    )
    common.write_results(out_dir, name, payload, table(recs), notes)
    print(table(recs), end="", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks backends", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(common.DEFAULT_OUT), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    cells.add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, args.out)
