"""Achieved FLOP/s of the recurrent training step as a fraction of a large dense matmul's.

The practical limit of a CPU for this work is the FLOP/s of one large, compiled dense matmul
(``(n, n) @ (n, n)``, ``n = 1024`` by default), measured in the same run, alternating with the
recurrent steps. A recurrent training step's FLOPs are its matmul FLOPs
(``benchmarks.cells.train_flops``: forward, weight gradients and state gradients; element-wise
work is not counted), so ``fraction = (FLOPs / step time) / dense FLOP/s``. Keras' built-in
layers are measured too, for context.

Targets (issue 10): our cells ≥ 0.55 at units 512 and ≥ 0.40 at units 128.

    python -m benchmarks roofline
    python -m benchmarks roofline --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import cells, common

TARGETS = {512: 0.55, 128: 0.40}


@dataclasses.dataclass
class Settings(cells.Settings):
    """The cells settings plus the size of the dense reference matmul."""

    cells: tuple[str, ...] = cells.OURS + cells.KERAS
    dense_size: int = 1024

    @classmethod
    def quick(cls) -> Settings:
        return cls(units=(64,), batch=16, steps=20, repeats=3, dense_size=256)


def dense_matmul(n: int, jit: bool = True) -> Callable[[], Any]:
    """A no-argument function computing one compiled ``(n, n) @ (n, n)`` float32 product."""
    import keras
    import numpy as np
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.standard_normal((n, n), dtype="float32"))
    b = ops.convert_to_tensor(rng.standard_normal((n, n), dtype="float32"))
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=jit)
        return lambda: fn(a, b).numpy()[0, 0]
    if backend == "jax":
        import jax

        fn = jax.jit(lambda a, b: a @ b) if jit else (lambda a, b: a @ b)
        return lambda: jax.block_until_ready(fn(a, b))
    raise NotImplementedError(f"the roofline benchmark supports tensorflow and jax, not {backend}")


def records(settings: Settings, samples: dict, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per (layer, units): achieved FLOP/s (ours) over the dense FLOP/s (reference)."""
    out = []
    dense_flops = 2 * settings.dense_size**3
    for units, by_layer in samples.items():
        dense = by_layer["dense_matmul"][settings.clock]
        dense_rate = dense_flops / statistics.median(dense)
        for name, timing in by_layer.items():
            if name == "dense_matmul":
                continue
            flops = cells.train_flops(name, units, units, settings.batch, settings.steps)
            times = timing[settings.clock]
            rate = flops / statistics.median(times)
            per_round = common.summary(
                [(flops / t) / (dense_flops / d) for t, d in zip(times, dense) if t > 0]
            )
            target = TARGETS.get(units) if name in cells.OURS else None
            ratio = rate / dense_rate
            out.append(
                {
                    "benchmark": "roofline",
                    "name": f"{name} training step vs dense matmul, units {units}",
                    "unit": "FLOP/s",
                    "units": units,
                    "ours": {
                        "label": name,
                        "flops": flops,
                        "flops_per_s": rate,
                        "step": common.figure(timing, settings.clock),
                    },
                    "reference": {
                        "label": f"dense matmul {settings.dense_size}^3",
                        "flops": dense_flops,
                        "flops_per_s": dense_rate,
                        "step": common.figure(by_layer["dense_matmul"], settings.clock),
                    },
                    "ratio": ratio,
                    "ratio_q1": per_round["q1"],
                    "ratio_q3": per_round["q3"],
                    "target": target,
                    "meets_target": None if target is None else bool(ratio >= target),
                    **ctx,
                }
            )
    return out


def table(recs: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            r["units"],
            r["ours"]["label"],
            f"{r['ours']['flops'] / 1e9:.2f}",
            common.seconds(r["ours"]["step"]["median"]),
            f"{r['ours']['flops_per_s'] / 1e9:.1f}",
            f"{r['reference']['flops_per_s'] / 1e9:.1f}",
            f"{r['ratio']:.2f} ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f})",
            "" if r["target"] is None else f"≥ {r['target']}",
            r["meets_target"],
        )
        for r in recs
    ]
    headers = ("units", "layer", "GFLOP/step", "step", "GFLOP/s", "dense GFLOP/s",
               "fraction (IQR)", "target", "met")  # fmt: skip
    return common.markdown_table(headers, rows)


def run(settings: Settings, out_dir: Any = None, name: str = "roofline") -> dict[str, Any]:
    """Measures, writes ``<out_dir>/<name>.{json,md}`` when given, returns the payload."""
    ctx = cells.context(settings)
    names = cells.needed_layers(settings.cells)
    samples = {}
    dense = dense_matmul(settings.dense_size, jit=settings.jit)
    for units in settings.units:
        fns = cells.build_steps(names, units, settings.batch, settings.steps, jit=settings.jit)
        fns["dense_matmul"] = dense
        samples[units] = common.alternate(fns, settings.repeats, warmup=settings.warmup)
    recs = records(settings, samples, ctx)
    payload = {"benchmark": "roofline", **ctx, "records": recs}
    if out_dir is not None:
        notes = (
            f"FLOPs: matmul FLOPs of forward + weight gradients + state gradients, batch "
            f"{settings.batch} x {settings.steps} steps, input width = units. Dense reference: "
            f"{settings.dense_size}^3 float32 matmul, compiled, alternating with the steps; "
            f"{settings.clock} time, {settings.threads or 'default'} compute thread(s)."
        )
        common.write_results(out_dir, name, payload, table(recs), notes)
    return payload


def add_roofline_arguments(parser: Any) -> None:
    parser.add_argument("--dense-size", type=int, help="n of the dense n^3 matmul (default 1024)")


def run_from_args(args: argparse.Namespace, out_dir: Any) -> int:
    settings = cells.settings_from_args(args, args.quick, base=Settings)
    common.configure_threads(settings.threads)
    payload = run(settings, out_dir)
    print(table(payload["records"]), end="", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks roofline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(common.DEFAULT_OUT), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    cells.add_arguments(parser)
    add_roofline_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, args.out)
