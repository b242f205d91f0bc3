"""How the training-step time of each cell grows with sequence length and with units.

Theory: a step is ``T`` sequential updates, each a few ``(B, U) @ (U, k U)`` products, so the
time is linear in the length ``T`` and quadratic in ``units`` (input width = units) once the
products dominate the fixed per-step cost. Measured: the compiled training step
(``benchmarks.cells``) over lengths 50 → 800 at 128 units and over units 64 → 1024 at length
100, batch 64, the layers alternating at each point. Each curve is summarised by its log-log
slope (1 = linear, 2 = quadratic), over all points and over the upper three, and by
``ratio`` = measured growth from the first to the last point / the growth theory predicts.
Writes ``scaling.{json,md,png}``.

    python -m benchmarks scaling
    python -m benchmarks scaling --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import cells, common

EXPECTED_SLOPE = {"length": 1.0, "units": 2.0}


@dataclasses.dataclass
class Settings(cells.Settings):
    """Cells settings (``units`` / ``steps`` are the fixed values of the other axis) plus the
    lengths and widths swept."""

    units: tuple[int, ...] = (128,)
    cells: tuple[str, ...] = cells.OURS + cells.KERAS
    repeats: int = 3
    lengths: tuple[int, ...] = (50, 100, 200, 400, 800)
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            units=(32,), batch=8, steps=10, repeats=2, cells=("vanilla", "mut3", "genotype_lstm"),
            lengths=(10, 20, 40), widths=(16, 32, 64),
        )  # fmt: skip


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else float("nan")


def sweep(settings: Settings, axis: str) -> dict[str, list[dict[str, Any]]]:
    """``{layer: [{"x", "median", "iqr", ...}, ...]}`` along ``axis`` ("length" or "units")."""
    names = [n for n in cells.LAYERS if n in settings.cells]
    points: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    values = settings.lengths if axis == "length" else settings.widths
    for value in values:
        units = settings.units[0] if axis == "length" else value
        steps = value if axis == "length" else settings.steps
        fns = cells.build_steps(names, units, settings.batch, steps, jit=settings.jit)
        samples = common.alternate(fns, settings.repeats, warmup=settings.warmup)
        for name in names:
            points[name].append({"x": value, **common.figure(samples[name], settings.clock)})
    return points


def curve_record(
    axis: str, name: str, points: list[dict[str, Any]], ctx: dict[str, Any]
) -> dict[str, Any]:
    """A record for one layer along one axis: slopes and measured / theoretical growth."""
    xs = [p["x"] for p in points]
    ys = [p["median"] for p in points]
    expected = EXPECTED_SLOPE[axis]
    measured_growth = ys[-1] / ys[0]
    theory_growth = (xs[-1] / xs[0]) ** expected
    upper = loglog_slope(xs[-3:], ys[-3:]) if len(xs) >= 3 else loglog_slope(xs, ys)
    return {
        "benchmark": "scaling",
        "name": f"{name} step time vs {axis}",
        "unit": "growth factor",
        "layer": name,
        "axis": axis,
        "points": points,
        "ours": {"label": f"measured t({xs[-1]}) / t({xs[0]})", "value": measured_growth},
        "reference": {"label": f"theory ({xs[-1]}/{xs[0]})^{expected:g}", "value": theory_growth},
        "ratio": measured_growth / theory_growth,
        "slope": loglog_slope(xs, ys),
        "slope_upper": upper,
        "expected_slope": expected,
        "verdict": verdict(axis, upper),
        **ctx,
    }


def verdict(axis: str, slope: float) -> str:
    """Plain words for a log-log slope along ``axis``."""
    expected = EXPECTED_SLOPE[axis]
    shape = "linear" if expected == 1 else "quadratic"
    if abs(slope - expected) <= 0.2 * expected:
        return f"{shape} (slope {slope:.2f})"
    if slope < expected:
        return f"sub-{shape} (slope {slope:.2f}): fixed per-step cost still large"
    return f"super-{shape} (slope {slope:.2f}): cache or memory effects"


def plot(recs: Sequence[dict[str, Any]], path: Path) -> None:
    """Log-log step time vs length and vs units, one line per layer, theory slopes dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, axis in zip(axes, ("length", "units")):
        curves = [r for r in recs if r["axis"] == axis]
        for r in curves:
            xs = [p["x"] for p in r["points"]]
            ys = [p["median"] * 1000 for p in r["points"]]
            style = "--" if r["layer"].startswith("keras") else "-"
            ax.plot(xs, ys, style, marker="o", label=f"{r['layer']} ({r['slope_upper']:.2f})")
        if curves:
            xs = [p["x"] for p in curves[0]["points"]]
            top = max(p["median"] * 1000 for r in curves for p in r["points"])
            k = EXPECTED_SLOPE[axis]
            ax.plot(xs, [top * (x / xs[-1]) ** k for x in xs], ":", color="gray",
                    label=f"theory, slope {k:g}")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length" if axis == "length" else "units (= input width)")
        ax.set_ylabel("training step, ms")
        ax.set_title(f"step time vs {axis} (upper slope in brackets)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def table(recs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in recs:
        pts = ", ".join(f"{p['x']}: {common.seconds(p['median'])}" for p in r["points"])
        rows.append(
            (
                r["layer"],
                r["axis"],
                pts,
                f"{r['slope']:.2f}",
                f"{r['slope_upper']:.2f}",
                f"{r['ours']['value']:.3g} / {r['reference']['value']:.3g} = {r['ratio']:.2f}",
                r["verdict"],
            )
        )
    headers = ("layer", "axis", "step time per point", "slope", "upper slope",
               "growth: measured / theory", "verdict")  # fmt: skip
    return common.markdown_table(headers, rows)


def run(settings: Settings, out_dir: Any = None, name: str = "scaling") -> dict[str, Any]:
    """Sweeps both axes, writes ``<out_dir>/<name>.{json,md,png}`` when given."""
    ctx = cells.context(settings)
    recs = []
    for axis in ("length", "units"):
        for layer, points in sweep(settings, axis).items():
            recs.append(curve_record(axis, layer, points, ctx))
    payload = {"benchmark": "scaling", **ctx, "records": recs}
    if out_dir is not None:
        png = Path(out_dir) / f"{name}.png"
        plot(recs, png)
        notes = (
            f"Lengths swept at {settings.units[0]} units, units swept at length "
            f"{settings.steps} (input width = units); batch {settings.batch}; median "
            f"{settings.clock} time of {settings.repeats} alternating runs per point. Slope: "
            "log-log least squares (upper: last three points). Plot: "
            f"`{png.name}`.\n"
        )
        common.write_results(out_dir, name, payload, table(recs), notes)
    return payload


def add_scaling_arguments(parser: Any) -> None:
    ints = lambda s: tuple(int(v) for v in s.split(","))
    parser.add_argument("--lengths", type=ints, help="scaling: lengths (default 50,...,800)")
    parser.add_argument("--widths", type=ints, help="scaling: units (default 64,...,1024)")


def run_from_args(args: argparse.Namespace, out_dir: Any) -> int:
    settings = cells.settings_from_args(args, args.quick, base=Settings)
    common.configure_threads(settings.threads)
    payload = run(settings, out_dir)
    print(table(payload["records"]), end="", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks scaling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(common.DEFAULT_OUT), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    cells.add_arguments(parser)
    add_scaling_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, args.out)
