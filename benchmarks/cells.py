"""Training-step time of our recurrent layers against keras' built-in ones of the same width.

One training step = forward over a ``(batch, steps, units)`` sequence, loss ``mean(h_T ** 2)``
and the gradients of every weight, compiled (``tf.function(jit_compile=True)`` on TensorFlow,
``jax.jit`` on JAX). Each step function runs alternately with the others of the same width
(see ``benchmarks.common``). Ours: ``VanillaRNN``, ``MUT1``-``MUT3``, ``GenotypeRNN`` with the
``gru`` and ``lstm`` presets; references: ``keras.layers.SimpleRNN``, ``GRU``, ``LSTM``. The
input width equals ``units`` (MUT1 and MUT2 add ``x_t`` itself to a ``units``-wide term).

Targets (issue 10): the hand-written cells ≤ 1.25 × keras ``GRU``; ``GenotypeRNN(lstm)`` ≤ 1.5 ×
keras ``LSTM``.

    python -m benchmarks cells                    # units 128 and 512, batch 64, 100 steps
    python -m benchmarks cells --quick            # units 64, batch 16, 20 steps
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import common

# name -> (constructor path, gate widths (input side, recurrent side) in multiples of units)
LAYERS: dict[str, tuple[str, tuple[int, int]]] = {
    "vanilla": ("seqlayers.VanillaRNN", (1, 1)),
    "mut1": ("seqlayers.MUT1", (2, 2)),
    "mut2": ("seqlayers.MUT2", (2, 3)),
    "mut3": ("seqlayers.MUT3", (3, 3)),
    "genotype_gru": ("seqlayers.GenotypeRNN:gru", (3, 3)),
    "genotype_lstm": ("seqlayers.GenotypeRNN:lstm", (4, 4)),
    "keras_simple_rnn": ("keras.layers.SimpleRNN", (1, 1)),
    "keras_gru": ("keras.layers.GRU", (3, 3)),
    "keras_lstm": ("keras.layers.LSTM", (4, 4)),
}
OURS = ("vanilla", "mut1", "mut2", "mut3", "genotype_gru", "genotype_lstm")
KERAS = ("keras_simple_rnn", "keras_gru", "keras_lstm")
HAND_WRITTEN = ("vanilla", "mut1", "mut2", "mut3")
# --ablation: the hand-written cells trained through keras' loop and autodiff instead of their
# fused backward pass (seqlayers.projected.fused_recurrence), to show what it buys.
AUTODIFF = "@autodiff"
for _name in HAND_WRITTEN:
    LAYERS[_name + AUTODIFF] = (LAYERS[_name][0] + AUTODIFF, LAYERS[_name][1])
ABLATION_PAIRS = tuple((n, n + AUTODIFF, None) for n in HAND_WRITTEN)
# (ours, reference, target ratio or None)
PAIRS: tuple[tuple[str, str, float | None], ...] = (
    ("vanilla", "keras_simple_rnn", None),
    ("vanilla", "keras_gru", 1.25),
    ("mut1", "keras_gru", 1.25),
    ("mut2", "keras_gru", 1.25),
    ("mut3", "keras_gru", 1.25),
    ("genotype_gru", "keras_gru", None),
    ("genotype_lstm", "keras_lstm", 1.5),
)


@dataclasses.dataclass
class Settings:
    """What one run of the cells benchmark measures."""

    units: tuple[int, ...] = (128, 512)
    batch: int = 64
    steps: int = 100
    repeats: int = 7
    warmup: int = 1
    cells: tuple[str, ...] = OURS
    threads: int = 1
    jit: bool = True
    clock: str = "cpu"
    ablation: bool = False

    @classmethod
    def quick(cls) -> Settings:
        return cls(units=(64,), batch=16, steps=20, repeats=3)


def make_layer(name: str, units: int) -> Any:
    """A fresh layer ``name`` (a key of ``LAYERS``) of ``units`` units, returning ``h_T``."""
    import keras

    import seqlayers

    if name not in LAYERS:
        raise ValueError(f"unknown cell {name!r}; choose from {', '.join(LAYERS)}")
    if name.endswith(AUTODIFF):
        layer = make_layer(name.removesuffix(AUTODIFF), units)
        layer.uses_fused_backward = lambda mask, training: False  # keras' loop + autodiff
        return layer
    path = LAYERS[name][0]
    if path.startswith("keras.layers."):
        return getattr(keras.layers, path.rsplit(".", 1)[1])(units)
    if ":" in path:
        return seqlayers.GenotypeRNN(units, path.split(":", 1)[1])
    return getattr(seqlayers, path.rsplit(".", 1)[1])(units)


def train_flops(name: str, units: int, input_dim: int, batch: int, steps: int) -> int:
    """Matmul FLOPs one training step needs (forward + the gradients it must compute).

    Per step the input products are ``(B, D) @ (D, gx * U)`` and the recurrent ones
    ``(B, U) @ (U, gh * U)``; each costs ``2 m k n`` forward and ``2 m k n`` for its weight
    gradient, and the recurrent ones another ``2 m k n`` for the gradient of the state (the
    input ``x`` is data, so its gradient is not needed).
    """
    gx, gh = LAYERS[name][1]
    per_step = 2 * batch * units * (2 * input_dim * gx + 3 * units * gh)
    return per_step * steps


def make_train_step(layer: Any, x: Any, jit: bool = True) -> Callable[[], Any]:
    """A no-argument function running one compiled training step of ``layer`` on ``x``.

    It returns once the gradients are computed (results materialised).
    """
    import keras

    layer(x[:1])  # build
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # one tf.function per layer: no retracing warnings
        variables = [v.value for v in layer.trainable_variables]

        @tf.function(jit_compile=jit, reduce_retracing=True)
        def step(x):
            with tf.GradientTape() as tape:
                y = layer(x, training=True)
                loss = tf.reduce_mean(tf.square(y))
            return tape.gradient(loss, variables)

        def run() -> Any:
            grads = step(x)
            return [g.numpy() for g in grads[:1]]  # forces completion

        return run
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss_fn(trainable, x):
            y, _ = layer.stateless_call(trainable, non_trainable, x, training=True)
            return jnp.mean(jnp.square(y))

        grad_fn = jax.grad(loss_fn)
        if jit:
            grad_fn = jax.jit(grad_fn)

        def run() -> Any:
            return jax.block_until_ready(grad_fn(trainable, x))

        return run
    raise NotImplementedError(f"the cells benchmark supports tensorflow and jax, not {backend}")


def input_sequence(batch: int, steps: int, width: int, seed: int = 0) -> Any:
    """A fixed standard-normal ``(batch, steps, width)`` float32 input on the current backend."""
    import numpy as np
    from keras import ops

    rng = np.random.default_rng(seed)
    return ops.convert_to_tensor(rng.standard_normal((batch, steps, width), dtype="float32"))


def build_steps(
    names: Sequence[str], units: int, batch: int, steps: int, jit: bool = True
) -> dict[str, Callable[[], Any]]:
    """``{name: train step}`` for each layer name, all on the same input."""
    import keras

    keras.utils.set_random_seed(0)
    x = input_sequence(batch, steps, units)
    return {name: make_train_step(make_layer(name, units), x, jit=jit) for name in names}


def pairs(ablation: bool = False) -> tuple[tuple[str, str, float | None], ...]:
    """The comparisons of a run: ``PAIRS``, plus ``ABLATION_PAIRS`` with ``ablation``."""
    return PAIRS + (ABLATION_PAIRS if ablation else ())


def needed_layers(cells: Sequence[str], ablation: bool = False) -> list[str]:
    """``cells`` plus the references their comparisons need, in ``LAYERS`` order."""
    wanted = set(cells)
    for ours, ref, _ in pairs(ablation):
        if ours in wanted:
            wanted.add(ref)
    return [n for n in LAYERS if n in wanted]


def measure(settings: Settings) -> dict[int, dict[str, dict[str, list[float]]]]:
    """``{units: {layer: {"cpu": [...], "wall": [...]}}}``, alternating within each width."""
    names = needed_layers(settings.cells, settings.ablation)
    out = {}
    for units in settings.units:
        fns = build_steps(names, units, settings.batch, settings.steps, jit=settings.jit)
        out[units] = common.alternate(fns, settings.repeats, warmup=settings.warmup)
    return out


def context(settings: Settings, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``machine``, ``command`` and ``settings`` keys every record carries."""
    return {
        "machine": common.machine_info(settings.threads),
        "command": common.command_line(),
        "settings": {**dataclasses.asdict(settings), **(extra or {})},
    }


def records(settings: Settings, samples: dict, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One comparison record per (pair, units) whose two layers were measured."""
    out = []
    for units, by_layer in samples.items():
        for ours, ref, target in pairs(settings.ablation):
            if ours not in by_layer or ref not in by_layer:
                continue
            record = common.comparison(
                "cells",
                f"{ours} vs {ref}, units {units}",
                (ours, by_layer[ours]),
                (ref, by_layer[ref]),
                settings.clock,
                ctx,
                target=target,
            )
            record["units"] = units
            out.append(record)
    return out


def table(recs: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the cells records."""
    rows = []
    for r in recs:
        rows.append(
            (
                r["units"],
                r["ours"]["label"],
                common.seconds(r["ours"]["median"]),
                r["reference"]["label"],
                common.seconds(r["reference"]["median"]),
                f"{r['ratio']:.2f} ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f})",
                "" if r["target"] is None else f"≤ {r['target']}",
                r["meets_target"],
            )
        )
    headers = ("units", "ours", "step", "reference", "step", "ratio (IQR)", "target", "met")
    return common.markdown_table(headers, rows)


def run(settings: Settings, out_dir: Any = None, name: str = "cells") -> dict[str, Any]:
    """Measures, writes ``<out_dir>/<name>.{json,md}`` when ``out_dir`` is given, returns the
    payload ``{"benchmark", "command", "machine", "settings", "records"}``."""
    ctx = context(settings)
    samples = measure(settings)
    recs = records(settings, samples, ctx)
    payload = {"benchmark": "cells", **ctx, "records": recs}
    if out_dir is not None:
        notes = (
            f"Step = forward + backward of batch {settings.batch} x {settings.steps} steps, "
            f"{'XLA-compiled' if settings.jit else 'graph mode'}; median {settings.clock} time "
            f"of {settings.repeats} alternating runs; ratio = ours / reference (IQR of the "
            "per-round ratios)."
        )
        common.write_results(out_dir, name, payload, table(recs), notes)
    return payload


# --- command line ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the cells, roofline and backends benchmarks (defaults: ``None`` =
    the benchmark's own default, full or ``--quick``)."""
    parser.add_argument("--units", type=lambda s: tuple(int(v) for v in s.split(",")),
                        help="comma-separated widths (default 128,512; quick 64)")  # fmt: skip
    parser.add_argument("--batch", type=int, help="batch size (default 64; quick 16)")
    parser.add_argument("--steps", type=int, help="sequence length (default 100; quick 20)")
    parser.add_argument("--repeats", type=int, help="timed alternating rounds (default 7)")
    parser.add_argument("--warmup", type=int, help="untimed rounds after compiling (default 1)")
    parser.add_argument("--cells", type=lambda s: tuple(s.split(",")),
                        help=f"comma-separated layers of ours (default all: {','.join(OURS)})")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="compute threads (0: the backend's default)")  # fmt: skip
    parser.add_argument("--no-jit", dest="jit", action="store_false",
                        help="graph mode instead of XLA")  # fmt: skip
    parser.add_argument("--ablation", action="store_true", default=None,
                        help="cells: also time the hand-written cells through keras' loop "
                        "and autodiff (no fused backward)")  # fmt: skip
    parser.add_argument("--clock", choices=common.CLOCKS, default="cpu",
                        help="clock of the ratios: process CPU time or wall time")  # fmt: skip


def settings_from_args(args: argparse.Namespace, quick: bool, base: Any = Settings) -> Any:
    """A ``Settings`` (or subclass ``base``) from parsed options over the full/quick defaults."""
    settings = base.quick() if quick else base()
    for field in dataclasses.fields(settings):
        value = getattr(args, field.name, None)
        if value is not None:
            if field.name == "cells":
                unknown = [c for c in value if c not in LAYERS]
                if unknown:
                    raise SystemExit(
                        f"error: unknown --cells {unknown}; choose from {list(LAYERS)}"
                    )
            setattr(settings, field.name, value)
    return settings


def run_from_args(args: argparse.Namespace, out_dir: Any) -> int:
    """Runs with parsed options (``--quick`` and the ``add_arguments`` ones), prints the table."""
    settings = settings_from_args(args, args.quick)
    common.configure_threads(settings.threads)
    payload = run(settings, out_dir)
    print(table(payload["records"]), end="", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks cells", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(common.DEFAULT_OUT), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, args.out)
