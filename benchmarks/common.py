"""Shared pieces of the benchmark suite: timing, statistics, machine info, JSON and markdown output.

Timing on a shared machine: every comparison runs its candidates *alternately* (round-robin,
the order rotated each round) after a warm-up, so slow phases of the machine hit all of them
alike; figures are medians with their inter-quartile range. Two clocks are recorded per call:

- ``cpu``: CPU time of this process (``time.process_time``). With one compute thread
  (``--threads 1``, the default) it is the work the step needed, almost unaffected by other
  processes competing for the cores; it is the figure the ratios use by default.
- ``wall``: elapsed time, which on a loaded machine mostly measures the other processes.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "out"
CLOCKS = ("cpu", "wall")


# --- models of matched size ------------------------------------------------------------------
def units_for_params(count: Callable[[int], int], target: int) -> tuple[int, int]:
    """The hidden size ``u`` whose model has the parameter count ``count(u)`` closest to
    ``target`` (``count`` increasing in ``u``), and that count: models "at matched size"."""
    lo, hi = 1, 2048
    while lo < hi:  # smallest units with count >= target
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    best = min((u for u in (lo - 1, lo) if u >= 1), key=lambda u: abs(count(u) - target))
    return best, count(best)


# --- environment -----------------------------------------------------------------------------
def configure_threads(threads: int) -> None:
    """Limits the compute threads of the backend about to be imported (0 = its default).

    Must run before the backend does any work. Sets ``XLA_FLAGS`` for JAX and TensorFlow's
    intra/inter-op pools for TensorFlow.
    """
    if threads <= 0:
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags += " --xla_cpu_multi_thread_eigen=false"
    if "intra_op_parallelism_threads" not in flags:
        flags += f" intra_op_parallelism_threads={threads}"
    os.environ["XLA_FLAGS"] = flags.strip()
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised: keep what the process has
            pass


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py") and Path(argv[0]).parent.name == "benchmarks":
        argv = ["python", "-m", "benchmarks", *argv[1:]]
    elif argv:
        argv = ["python", *argv]
    return " ".join(shlex.quote(a) for a in argv)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU, cores, load, OS and library versions of this machine, for every record."""
    import keras

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "compute_threads": threads,
    }
    backend = info["backend"]
    if backend == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        info["jax"] = jax.__version__
    return info


# --- timing ----------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """``fn()`` run ``repeats`` times: ``(wall seconds of each run, the last result)``."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def time_methods(
    methods: Mapping[str, Callable[[int], Any]],
    sizes: Sequence[int],
    repeats: int,
    skip: Callable[[str, int], bool] = lambda name, size: False,
) -> list[tuple[str, int, list[float], Any]]:
    """Time every ``methods[name](size)`` for each size (after one warm-up call of each at size
    3): ``[(name, size, seconds of each repeat, the last result), ...]``."""
    for fn in methods.values():  # trace / allocate once
        fn(3)
    runs = []
    for size in sizes:
        for name, fn in methods.items():
            if not skip(name, size):
                times, result = timed(lambda fn=fn, size=size: fn(size), repeats)
                runs.append((name, size, times, result))
    return runs


def pick(csv: str, known: Sequence[str], what: str = "app") -> list[str]:
    """The names of a comma-separated flag value; an unknown one prints an error naming the
    choices and exits with status 2."""
    names = [n.strip() for n in csv.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: unknown {what}(s) {', '.join(unknown)} (choose from {', '.join(known)})",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return names


def time_call(fn: Callable[[], Any]) -> dict[str, float]:
    """Runs ``fn`` once; returns its ``{"cpu": s, "wall": s}``."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}


def alternate(
    fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, dict[str, list[float]]]:
    """Times every function ``repeats`` times, round-robin, after ``warmup`` untimed rounds.

    The order rotates each round, so no candidate always runs first (or right after the same
    neighbour). Returns ``{name: {"cpu": [s, ...], "wall": [s, ...]}}``, samples in round order.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1. Received: repeats={repeats}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples = {name: {clock: [] for clock in CLOCKS} for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t = time_call(fns[name])
            for clock in CLOCKS:
                samples[name][clock].append(t[clock])
    return samples


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, inter-quartile range, min and count of ``values``."""
    vals = sorted(values)
    if not vals:
        raise ValueError("summary of no values")
    if len(vals) == 1:
        q1 = q3 = vals[0]
    else:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return {
        "median": statistics.median(vals),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": vals[0],
        "n": len(vals),
    }


def figure(samples: Mapping[str, Sequence[float]], clock: str) -> dict[str, Any]:
    """One measured figure: the ``clock`` summary plus the other clock's median."""
    out: dict[str, Any] = {"clock": clock, **summary(samples[clock])}
    for other in CLOCKS:
        if other != clock:
            out[f"{other}_median"] = statistics.median(samples[other])
    return out


def paired_ratio(
    ours: Mapping[str, Sequence[float]], reference: Mapping[str, Sequence[float]], clock: str
) -> dict[str, float]:
    """``ratio`` = median(ours) / median(reference), with the spread of the per-round ratios."""
    a, b = ours[clock], reference[clock]
    per_round = summary([x / y for x, y in zip(a, b) if y > 0])
    return {
        "ratio": statistics.median(a) / statistics.median(b),
        "ratio_q1": per_round["q1"],
        "ratio_q3": per_round["q3"],
    }


def comparison(
    benchmark: str,
    name: str,
    ours: tuple[str, Mapping[str, Sequence[float]]],
    reference: tuple[str, Mapping[str, Sequence[float]]],
    clock: str,
    context: dict[str, Any],
    target: float | None = None,
    unit: str = "s",
) -> dict[str, Any]:
    """A JSON record comparing two alternately measured candidates (lower is better).

    ``ours`` / ``reference`` are ``(label, {"cpu": [...], "wall": [...]})``. ``ratio`` is ours
    divided by reference (below 1: ours is faster); ``meets_target`` is ``ratio <= target``.
    ``context`` holds ``machine``, ``command`` and the settings.
    """
    record = {
        "benchmark": benchmark,
        "name": name,
        "unit": unit,
        "ours": {"label": ours[0], **figure(ours[1], clock)},
        "reference": {"label": reference[0], **figure(reference[1], clock)},
        **paired_ratio(ours[1], reference[1], clock),
        "target": target,
        "meets_target": None,
    }
    if target is not None:
        record["meets_target"] = bool(record["ratio"] <= target)
    return {**record, **context}


# --- output ----------------------------------------------------------------------------------
def atomic_write(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats shown with 3 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.3g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine_line(machine: Mapping[str, Any]) -> str:
    """One line describing the machine of a run."""
    libs = ", ".join(f"{k} {machine[k]}" for k in ("tensorflow", "jax", "keras") if machine.get(k))
    return (
        f"{machine['cpu']}, {machine['cores']} cores, load average {machine['load_average']}, "
        f"{machine['compute_threads'] or 'default'} compute thread(s); "
        f"backend {machine['backend']} ({libs}); Python {machine['python']}; {machine['os']}"
    )


def write_results(
    out_dir: Path | str,
    name: str,
    payload: dict[str, Any],
    table: str,
    notes: str = "",
) -> tuple[Path, Path]:
    """Writes ``<out_dir>/<name>.json`` (payload) and ``<name>.md`` (command, machine, table)."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    atomic_write(json_path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
    md = [f"## {name}\n", f"Command: `{payload['command']}`  \n"]
    md.append(f"Machine: {machine_line(payload['machine'])}\n\n")
    md.append(table)
    if notes:
        md.append("\n" + notes.strip() + "\n")
    atomic_write(md_path, "".join(md))
    return json_path, md_path


def seconds(value: float) -> str:
    """``value`` seconds as a short human figure (ms below 1 s)."""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
