"""``python -m export RUN_DIR --format tflite|saved_model ...``: export a trained run.

Loads ``RUN_DIR/config.json`` and ``RUN_DIR/model.keras`` (``safe_mode=True``, after
``import seqlayers``), exports to ``RUN_DIR/export/`` (or ``--out``), measures parity against
the Keras model and batch-1 latency, writes ``manifest.json`` beside the export and prints its
summary. Exit status: 0 done; 2 bad usage / bad input (one line on stderr); 1 unexpected.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apps.common.cli import ArgumentParser, HelpFormatter, import_backend
from apps.common.errors import UsageError
from apps.common.progress import Progress
from apps.common.rundir import load_keras_model

FORMATS = ("tflite", "saved_model")
QUANTIZE_CHOICES = ("none", "float16", "dynamic", "int8")


def _seq_len(text: str) -> int | str:
    if text in ("dynamic", "auto"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, 'dynamic' or 'auto', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m export",
        description="Export a trained run's model.keras to TFLite (builtin ops only) or a "
        "SavedModel, with manifest.json (shapes, signatures, tables, parity, latency, sha256).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="run dir holding config.json and model.keras"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="export format")
    parser.add_argument(
        "--quantize", default="none", choices=QUANTIZE_CHOICES,
        help="TFLite quantization: none (float32), float16 weights, dynamic (int8 weights, float "
        "activations) or int8 (full integer, calibrated on real training inputs)",
    )  # fmt: skip
    parser.add_argument(
        "--seq-len", type=_seq_len, default="auto",
        help="TFLite input length: N (fixed, inputs post-padded with 0; see --unroll), "
        "'dynamic' ((1, None) input, builtin WHILE loop) or 'auto' (dynamic, except for models "
        "that only export at a fixed length: the app's max length)",
    )  # fmt: skip
    parser.add_argument(
        "--unroll", action=argparse.BooleanOptionalAction, default=None,
        help="tflite, fixed length: unroll the recurrent loops into a straight-line graph "
        "(--unroll; larger, grows with the length) or keep them as WHILE loops over static "
        "shapes (--no-unroll). Default: unrolled for an explicit --seq-len N, loops for the "
        "app's length that --seq-len auto picks",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None,
        help="output .tflite file or SavedModel folder (default: RUN_DIR/export/<name>)",
    )  # fmt: skip
    parser.add_argument(
        "--per-channel-dense", action="store_true",
        help="int8: one scale per output channel of each dense (FULLY_CONNECTED) weight; "
        "default one per tensor (smaller file; within 0.2 points on the suite's models)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1234, help="seed for sampled parity inputs")
    parser.add_argument(
        "--parity-examples", type=int, default=64, help="examples used to measure parity"
    )
    parser.add_argument("--latency-runs", type=int, default=20, help="timed batch-1 runs (tflite)")
    parser.add_argument(
        "--keep-tensor-names", action="store_true",
        help="tflite: keep the internal tensor names (debugging; they can be a third of an "
        "unrolled int8 file)",
    )  # fmt: skip
    parser.add_argument(
        "--no-step-models", action="store_true",
        help="tflite: skip the app's one-step generator models (written by default, each as its "
        "own .tflite beside the model, for none / float16 / dynamic quantization)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


# --------------------------------------------------------------------------- run dir
def read_run_config(run_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """``(app, config)`` from ``run_dir/config.json`` (UsageError when missing / unreadable)."""
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR: no such run dir: {run_dir}")
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"RUN_DIR: {run_dir} is not a run dir (no config.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"RUN_DIR: {path} is not readable JSON ({err})") from None
    if not isinstance(meta, dict):
        raise UsageError(f"RUN_DIR: {path} is not a JSON object")
    app = meta.get("app") if isinstance(meta.get("app"), str) else None
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return app, config


def load_run_model(run_dir: Path, modules: Sequence[str] = ()):
    """``run_dir/model.keras`` loaded with ``safe_mode=True`` after ``import seqlayers`` (and
    the app ``modules`` that register its own layers)."""
    path = run_dir / "model.keras"
    if not path.is_file():
        raise UsageError(f"RUN_DIR: {run_dir} has no model.keras (train first)")
    import seqlayers  # noqa: F401 - registers the custom layers

    for module in modules:
        importlib.import_module(module)
    return load_keras_model(path, flag="RUN_DIR")


def synthetic_inputs(model, seq_len: int, count: int, seed: int) -> dict[str, Any]:
    """Random model inputs (ids below the smallest Embedding's vocabulary; floats ~ N(0, 1))."""
    import keras
    import numpy as np

    from export.tflite import input_names, iter_layers

    rng = np.random.default_rng(seed)
    vocab = [
        layer.input_dim for layer in iter_layers(model) if isinstance(layer, keras.layers.Embedding)
    ]
    high = max(2, min(vocab)) if vocab else 2
    inputs = {}
    for tensor, name in zip(model.inputs, input_names(model)):
        shape = [count] + [seq_len if d is None else d for d in tensor.shape[1:]]
        if "int" in str(tensor.dtype):
            inputs[name] = rng.integers(1, high, size=shape).astype(str(tensor.dtype))
        else:
            inputs[name] = rng.standard_normal(shape).astype(str(tensor.dtype))
    return inputs


def _take(inputs: Any, count: int) -> Any:
    if isinstance(inputs, dict):
        return {k: v[:count] for k, v in inputs.items()}
    return inputs[:count]


def _copy_tables(tables: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    from apps.common.rundir import atomic_output
    from export.manifest import sha256_of

    listed = []
    for table in tables:
        source = Path(table["path"])
        if not source.is_file():
            raise UsageError(f"RUN_DIR: {source} is missing (needed to feed the exported model)")
        target = folder / source.name
        if source.resolve() != target.resolve():
            with atomic_output(target) as tmp:
                shutil.copyfile(source, tmp)
        listed.append(
            {"file": target.name, "sha256": sha256_of(target), "role": table.get("role", "")}
        )
    return listed


# ---------------------------------------------------------------------------- export
def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Export as the parsed ``args`` ask; returns the manifest entries written (the model's
    first, then its step models')."""
    run_dir = Path(args.run_dir)
    app, config = read_run_config(run_dir)
    if not (run_dir / "model.keras").is_file():
        raise UsageError(f"RUN_DIR: {run_dir} has no model.keras (train first)")
    if args.format == "saved_model" and args.quantize != "none":
        raise UsageError(
            f"--quantize {args.quantize} applies to --format tflite only (a SavedModel keeps float32)"
        )
    if args.format == "saved_model" and args.seq_len not in ("auto", "dynamic"):
        raise UsageError(
            "--seq-len N applies to --format tflite only (a SavedModel takes any length)"
        )
    if args.format == "saved_model" and args.unroll is not None:
        raise UsageError("--unroll / --no-unroll apply to --format tflite only")
    if args.per_channel_dense and args.quantize != "int8":
        raise UsageError("--per-channel-dense applies to --quantize int8 only")
    if args.parity_examples < 1 or args.latency_runs < 1:
        raise UsageError("--parity-examples and --latency-runs must be >= 1")

    import_backend()
    from export.app_hooks import get_app_hook

    hook = get_app_hook(app)
    # Usage checks that need no model first, so bad usage fails fast and quietly.
    # 'dynamic' and 'auto' start as None; 'auto' becomes a length only for models that need one
    seq_len = args.seq_len if args.format == "tflite" and isinstance(args.seq_len, int) else None
    if args.format == "tflite" and args.quantize == "int8" and hook.representative_inputs is None:
        raise UsageError(
            f"--quantize int8 needs real training inputs; app {app or '(none)'} registers no "
            "representative_inputs hook in export.app_hooks"
        )
    with Progress("loading model", quiet=args.quiet):
        model = load_run_model(run_dir, hook.modules)
    unroll = args.unroll if args.unroll is not None else seq_len is not None
    if args.format == "tflite" and seq_len is None:
        seq_len = _fixed_length_for(model, args, config, hook)

    from apps.common.rundir import atomic_output
    from export import manifest as mf

    source = {
        "run_dir": str(run_dir.resolve()),
        "app": app,
        "model": "model.keras",
        "model_sha256": mf.sha256_of(run_dir / "model.keras"),
    }
    steps: list[dict[str, Any]] = []
    if args.format == "tflite":
        entry, folder, steps = _export_tflite(
            args, run_dir, config, hook, model, source, seq_len, unroll
        )
    else:
        entry, folder = _export_saved_model(
            args, run_dir, config, hook, model, source, atomic_output
        )
    mf.add_to_manifest(folder, entry)
    return [entry, *steps]


def _fixed_length_for(model, args, config, hook) -> int | None:
    """``None`` (dynamic) unless the model can only be exported at a fixed length: then the
    app's default length under ``--seq-len auto``, and a usage error under ``dynamic``."""
    from export.tflite import fixed_length_reason

    reason = fixed_length_reason(model)
    if reason is None:
        return None
    length = hook.default_seq_len(config) if hook.default_seq_len else None
    if args.seq_len == "dynamic" or not length:
        also = " (or auto: the app's length)" if length else ""
        raise UsageError(f"--seq-len: {reason}; pass --seq-len N{also}")
    if not args.quiet:
        print(f"note: {reason}: exporting at the app's fixed length {length} (--seq-len N "
              "to choose)", file=sys.stderr)  # fmt: skip
    return int(length)


def _real_inputs(hook, run_dir, config, kind: str, *model):
    fn = getattr(hook, kind)
    if fn is None:
        return None
    try:
        return fn(run_dir, config, *model)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(
            f"cannot read the run's {kind.replace('_', ' ')}: {_one_line(err)}"
        ) from None


WRONG_APP = "does config.json name the app that trained this model.keras?"


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    lines = [line for line in str(text).splitlines() if line.strip()]
    return " ".join((lines[0] if lines else type(err).__name__).split())[:300]


@contextlib.contextmanager
def _inputs_must_fit(what: str, app: str | None):
    """Inputs from the app hook that do not fit the model (another app's run) -> UsageError."""
    try:
        yield
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as err:
        raise UsageError(
            f"{what}: the inputs of app {app or '(none)'} do not fit this model ({WRONG_APP}): "
            f"{type(err).__name__}: {_one_line(err)}"
        ) from None


def _parity_inputs(args, hook, run_dir, config, model, seq_len, representative):
    """Real held-out inputs (else the training ones, else synthetic), at most N examples."""
    inputs = _real_inputs(hook, run_dir, config, "parity_inputs")
    origin = "real held-out inputs"
    if inputs is None:
        inputs = representative
        if inputs is None:
            inputs = _real_inputs(hook, run_dir, config, "representative_inputs")
        origin = "real training inputs"
    if inputs is None:
        origin = "synthetic inputs (the app registers no input hook)"
        inputs = synthetic_inputs(model, seq_len or 16, args.parity_examples, args.seed)
    return _take(inputs, args.parity_examples), origin


def _export_tflite(args, run_dir, config, hook, model, source, seq_len, unroll):
    from apps.common.rundir import atomic_write_bytes
    from export import manifest as mf
    from export.ops import ModelAllocationError, NonBuiltinOpsError
    from export.parity import parity_report, tflite_latency_ms
    from export.tflite import UnsupportedExportError, as_examples, convert_to_tflite, input_names

    representative = None
    if args.quantize == "int8":
        representative = _real_inputs(hook, run_dir, config, "representative_inputs")
    name = "model" + ("" if args.quantize == "none" else f"_{args.quantize}")
    name += "" if seq_len is None else f"_T{seq_len}"
    out = args.out or run_dir / "export" / f"{name}.tflite"
    if out.suffix != ".tflite":
        raise UsageError(f"--out: a TFLite export must end in .tflite, got {out}")
    with (
        Progress(f"converting to TFLite ({args.quantize})", quiet=args.quiet),
        _native_stdout_to_stderr(),
    ):
        try:
            result = convert_to_tflite(
                model, seq_len=seq_len, quantization=args.quantize,
                representative_inputs=representative, strip_names=not args.keep_tensor_names,
                unroll=unroll, per_channel_dense=args.per_channel_dense,
            )  # fmt: skip
        except (UnsupportedExportError, NonBuiltinOpsError, ModelAllocationError) as err:
            raise UsageError(f"unsupported export: {err}") from None

    parity_inputs, origin = _parity_inputs(
        args, hook, run_dir, config, model, seq_len, representative
    )
    with (
        Progress("measuring parity", quiet=args.quiet),
        _inputs_must_fit("parity", source["app"]),
    ):
        parity = parity_report(model, result.content, parity_inputs)
        example = as_examples(parity_inputs, input_names(model))[0]
    parity["inputs"] = origin
    latency = tflite_latency_ms(result.content, example, runs=args.latency_runs)
    pending = []
    if hook.step_models is not None and not args.no_step_models:
        pending = _export_step_models(
            args, run_dir, config, hook, model, source, out, parity_inputs
        )
    # Every check passed: only now write the files (a failed export leaves nothing behind).
    atomic_write_bytes(out, result.content)
    tables = _copy_tables(hook.tables(run_dir, config) if hook.tables else [], out.parent)
    steps = []
    for target, content, fields in pending:
        atomic_write_bytes(target, content)
        steps.append(mf.export_entry(target, tables=tables, **fields))
        mf.add_to_manifest(out.parent, steps[-1])
    signatures = {
        result.signature_key: {
            "inputs": [i.as_dict() for i in result.inputs],
            "outputs": [o.as_dict() for o in result.outputs],
        }
    }
    notes = []
    if hook.step_models is not None and args.quantize == "int8" and not args.no_step_models:
        notes.append("step models are not exported with int8 (no calibration set of step "
                     "inputs): export them with --quantize none, float16 or dynamic")  # fmt: skip
    if result.float_layers:
        notes.append(f"int8 with float32 ops for layers {', '.join(result.float_layers)} "
                     "(their classes set int8_float_ops: values calibration cannot bound)")  # fmt: skip
    if seq_len is not None:
        notes.append(f"inputs are exactly {seq_len} steps: post-pad with 0 / truncate; "
                     + ("recurrent loops unrolled" if result.unrolled else "loops kept (WHILE)"))  # fmt: skip
    else:
        notes.append("resize the input to (1, length) before each run (the signature runner does)")
    entry = mf.export_entry(
        out, format="tflite", signatures=signatures, quantization=args.quantize,
        seq_len=seq_len, batch_size=1, parity=parity,
        latency_ms={"median": latency, "runs": args.latency_runs, "threads": 1,
                    "machine": _machine()},
        tables=tables, ops=list(result.ops), source=source, notes=notes,
        extra={**({"step_models": [step["file"] for step in steps]} if steps else {}),
               **({"float_layers": list(result.float_layers)} if result.float_layers else {})}
        or None,
    )  # fmt: skip
    return entry, out.parent, steps


STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _step_inputs_by_model(inputs, layouts) -> dict[str, Any]:
    """The hook's step parity inputs per step model name (see export.app_hooks)."""
    if inputs is None:
        return {}
    names = [layout.name for layout in layouts]
    if isinstance(inputs, dict) and inputs and set(inputs) <= set(names):
        return dict(inputs)
    loops = [layout.name for layout in layouts if layout.role == "loop"]
    if len(loops) != 1:
        raise TypeError(
            f"step_parity_inputs must be a dict by step model name when {len(loops)} models "
            f"loop ({loops}); got {type(inputs).__name__}"
        )
    return {loops[0]: inputs}


def _projected_inputs(main_inputs, model, step_model, count: int):
    """The main model's parity inputs restricted to a run-once model's input names, if all
    of them are inputs of the main model too (e.g. an encoder's ``source_ids``)."""
    from export.tflite import as_examples, input_names

    wanted, available = input_names(step_model), input_names(model)
    if main_inputs is None or not set(wanted) <= set(available):
        return None
    examples = as_examples(_take(main_inputs, count), available)
    return [{n: example[n] for n in wanted} for example in examples]


def _export_step_models(args, run_dir, config, hook, model, source, out, main_inputs):
    """Convert each of the app's step models and measure its parity and latency.

    Returns:
        ``[(target path, .tflite bytes, manifest entry fields)]``, written by the caller.
    """
    from export.ops import ModelAllocationError, NonBuiltinOpsError
    from export.parity import tflite_latency_ms
    from export.steps import (
        RUN_ONCE,
        as_step_model,
        export_step_model,
        link_layouts,
        step_examples,
        step_parity_report,
    )
    from export.tflite import UnsupportedExportError

    app = source["app"]
    if args.quantize == "int8":
        return []  # no calibration set of step inputs (noted in the model's manifest entry)
    try:
        built = hook.step_models(run_dir, config, model)
    except (ValueError, KeyError, AttributeError, IndexError) as err:
        raise UsageError(
            f"app {app}: cannot build its step models from this model.keras ({WRONG_APP}): "
            f"{type(err).__name__}: {_one_line(err)}"
        ) from None
    suffix = "" if args.quantize == "none" else f"_{args.quantize}"
    steps = {}
    for name, value in dict(built).items():
        if not STEP_NAME.fullmatch(str(name)) or f"{name}{suffix}.tflite" == out.name:
            raise ValueError(f"app {app}: bad step model name {name!r}")
        steps[name] = as_step_model(value)
    exported = {}
    for name, step in steps.items():
        with (
            Progress(f"converting step model {name} to TFLite ({args.quantize})", quiet=args.quiet),
            _native_stdout_to_stderr(),
        ):
            try:
                exported[name] = export_step_model(
                    step, name, quantization=args.quantize, strip_names=not args.keep_tensor_names
                )
            except (UnsupportedExportError, NonBuiltinOpsError, ModelAllocationError) as err:
                raise UsageError(f"unsupported export of step model {name}: {err}") from None
    files = {name: f"{name}{suffix}.tflite" for name in exported}
    layouts = {layout.name: layout for layout in link_layouts(
        [e.layout for e in exported.values()], files)}  # fmt: skip
    given = _step_inputs_by_model(
        _real_inputs(hook, run_dir, config, "step_parity_inputs", model), list(layouts.values())
    )
    pending = []
    for name, result in exported.items():
        step_model = result.step.model
        inputs, origin = given.get(name), "real inputs (app step_parity_inputs)"
        if inputs is None and layouts[name].role == RUN_ONCE:
            inputs = _projected_inputs(main_inputs, model, step_model, args.parity_examples)
            origin = "the real parity inputs of the model, restricted to this model's inputs"
        if inputs is None:
            inputs = synthetic_inputs(step_model, 8, args.parity_examples, args.seed)
            origin = "synthetic inputs (the app gives no step_parity_inputs)"
        result = dataclasses.replace(result, layout=layouts[name])
        with (
            Progress(f"measuring parity of step model {name}", quiet=args.quiet),
            _inputs_must_fit(f"parity of step model {name}", app),
        ):
            examples = step_examples(_take(inputs, args.parity_examples), step_model)
            parity = step_parity_report(result, examples)
        parity["inputs"] = origin
        latency = tflite_latency_ms(result.result.content, examples[0], runs=args.latency_runs)
        fields = {
            "format": "tflite",
            "signatures": {result.result.signature_key: {
                "inputs": [i.as_dict() for i in result.result.inputs],
                "outputs": [o.as_dict() for o in result.result.outputs],
            }},
            "quantization": args.quantize, "seq_len": 1, "batch_size": 1, "parity": parity,
            "latency_ms": {"median": latency, "runs": args.latency_runs, "threads": 1,
                           "machine": _machine()},
            "ops": list(result.result.ops), "source": source,
            "notes": list(result.step.notes), "extra": {"step": result.layout.as_dict()},
        }  # fmt: skip
        pending.append((out.parent / files[name], result.result.content, fields))
    return pending


def _export_saved_model(args, run_dir, config, hook, model, source, atomic_output):
    from export import manifest as mf
    from export.parity import saved_model_latency_ms, saved_model_parity_report
    from export.savedmodel import export_saved_model
    from export.tflite import as_examples, input_names

    out = args.out or run_dir / "export" / "saved_model"
    text_signature = None
    if hook.text_signature is not None:
        try:
            text_signature = hook.text_signature(run_dir, config)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot build the text signature: {err}") from None
    parity_inputs, origin = _parity_inputs(args, hook, run_dir, config, model, None, None)
    with atomic_output(out) as tmp:  # kept only when parity could be measured
        with Progress("writing SavedModel", quiet=args.quiet):
            signatures = export_saved_model(model, tmp, text_signature=text_signature)
        with (
            Progress("measuring parity", quiet=args.quiet),
            _inputs_must_fit("parity", source["app"]),
        ):
            parity = saved_model_parity_report(model, tmp, parity_inputs)
            example = as_examples(parity_inputs, input_names(model))[0]
    parity["inputs"] = origin
    latency = saved_model_latency_ms(out, example, runs=args.latency_runs)
    tables = _copy_tables(hook.tables(run_dir, config) if hook.tables else [], out.parent)
    entry = mf.export_entry(
        out, format="saved_model", signatures=signatures, quantization="none",
        seq_len=None, batch_size=None, parity=parity, tables=tables, source=source,
        latency_ms={"median": latency, "runs": args.latency_runs, "threads": "tf default",
                    "machine": _machine()},
        notes=["load with tf.saved_model.load(path).signatures[...]; no rnnsuite code needed"],
    )  # fmt: skip
    return entry, out.parent


@contextlib.contextmanager
def _native_stdout_to_stderr():
    """Send native (C++) writes to stdout to stderr: int8 calibration prints a status line
    there, and stdout carries only the summary."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _machine() -> str:
    import platform

    return f"{platform.machine()} {platform.processor() or platform.system()}".strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        entries = run(args)
    except UsageError as err:
        sys.stdout.flush()
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except SystemExit as err:  # --help
        return err.code if isinstance(err.code, int) else 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    from export.manifest import summary_lines

    print("\n".join(line for entry in entries for line in summary_lines(entry)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
