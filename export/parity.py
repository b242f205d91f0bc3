"""Measure how closely an exported TFLite model follows its Keras model, and its latency.

Every example runs through the LiteRT interpreter at batch size 1 (the exported signature),
resized to its own length for a dynamic-length model, padded / truncated to the fixed length
otherwise (the Keras reference sees the very same padded ids).

Example:

>>> parity(model, tflite_bytes, x_test[:64])                    # doctest: +SKIP
3.1e-08
>>> parity_report(model, tflite_bytes, x_test[:64])["argmax_agreement"]   # doctest: +SKIP
1.0
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from export.ops import ModelSource, read_model_bytes
from export.tflite import SIGNATURE_KEY, as_examples, fit_length, input_names, output_names


def _runner(tflite: ModelSource, signature_key: str = SIGNATURE_KEY, num_threads: int | None = 1):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=read_model_bytes(tflite), num_threads=num_threads)
    return interpreter.get_signature_runner(signature_key)


def _fixed_lengths(runner) -> dict[str, list[int]]:
    return {
        name: [int(d) for d in detail["shape_signature"]]
        for name, detail in runner.get_input_details().items()
    }


def _prepare(example: Mapping[str, np.ndarray], shapes: Mapping[str, list[int]], runner):
    """Pad / truncate each input to the model's fixed dims and cast to the signature dtype."""
    details = runner.get_input_details()
    prepared = {}
    for name, value in example.items():
        value = np.asarray(value)
        shape = shapes[name]
        fixed_axes = [
            i for i in range(1, len(shape)) if shape[i] > 0 and value.shape[i] != shape[i]
        ]
        for axis in fixed_axes:
            value = fit_length(value, [axis], shape[axis])
        dtype = details[name]["dtype"]
        scale, zero = details[name].get("quantization", (0.0, 0))
        if (
            np.issubdtype(dtype, np.integer)
            and scale
            and not np.issubdtype(value.dtype, np.integer)
        ):
            value = np.round(value / scale + zero)  # float input to an int8-io model
        prepared[name] = value.astype(dtype)
    return prepared


def _dequantize(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if scale and np.issubdtype(value.dtype, np.integer):
        return (value.astype(np.float32) - zero) * scale
    return value.astype(np.float32)


def run_tflite(
    tflite: ModelSource,
    inputs: Any,
    input_order: Sequence[str] | None = None,
    signature_key: str = SIGNATURE_KEY,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Run every example of ``inputs`` through the TFLite signature at batch size 1.

    Args:
        tflite: path or bytes of the model.
        inputs: anything :func:`export.tflite.as_examples` accepts.
        input_order: signature input names, in the order of a positional / list input.
        signature_key: the signature to run.

    Returns:
        ``(fed, outputs)``: the inputs actually fed (padded / cast) and the float outputs
        (int8 outputs dequantized), one dict per example.
    """
    runner = _runner(tflite, signature_key)
    shapes = _fixed_lengths(runner)
    names = list(input_order) if input_order else sorted(shapes)
    out_details = runner.get_output_details()
    fed, outputs = [], []
    for example in as_examples(inputs, names):
        prepared = _prepare(example, shapes, runner)
        result = runner(**prepared)
        fed.append(prepared)
        outputs.append({k: _dequantize(v, out_details[k]) for k, v in result.items()})
    return fed, outputs


def _batched_outputs(call, names_in, names_out, fed: list[dict[str, np.ndarray]]) -> list[dict]:
    """``call(list of input batches) -> list of outputs`` over ``fed``, equal shapes batched."""
    groups: dict[tuple, list[int]] = {}
    for i, example in enumerate(fed):
        groups.setdefault(tuple(example[n].shape for n in names_in), []).append(i)
    by_index: dict[int, dict[str, np.ndarray]] = {}
    for indices in groups.values():
        batch = [np.concatenate([fed[i][n] for i in indices]) for n in names_in]
        out = [np.asarray(o) for o in call(batch)]
        for row, i in enumerate(indices):
            by_index[i] = {name: o[row : row + 1] for name, o in zip(names_out, out)}
    return [by_index[i] for i in range(len(fed))]


def _keras_outputs(
    keras_model: keras.Model, fed: list[dict[str, np.ndarray]], names_out: Sequence[str]
) -> list[dict]:
    def call(batch):
        out = keras_model(batch[0] if len(batch) == 1 else batch, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [keras.ops.convert_to_numpy(o) for o in out]

    return _batched_outputs(call, input_names(keras_model), names_out, fed)


def _compare(got: list[dict], want: list[dict], first: str) -> dict[str, float | int]:
    diffs, agree = [], []
    for g, w in zip(got, want):
        for name in w:
            diffs.append(np.abs(g[name].reshape(w[name].shape) - w[name]).ravel())
        g_first = g[first].reshape(w[first].shape)
        # one prediction per example (classifier) or per example and step (sequence output)
        agree.extend(np.ravel(np.argmax(g_first, -1) == np.argmax(w[first], -1)).tolist())
    diff = np.concatenate(diffs)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "argmax_agreement": float(np.mean(agree)),
        "examples": len(got),
    }


def parity_report(
    keras_model: keras.Model,
    tflite: ModelSource,
    inputs: Any,
    signature_key: str = SIGNATURE_KEY,
    *,
    names_out: Sequence[str] | None = None,
) -> dict[str, float | int]:
    """Compare TFLite outputs with Keras outputs on the same (padded) inputs.

    Args:
        keras_model: the reference model (the original, not the unrolled copy).
        tflite: path or bytes of the exported model.
        inputs: real inputs, in any form :func:`export.tflite.as_examples` accepts.
        signature_key: the TFLite signature to run.
        names_out: the signature names of the model's outputs, in model output order, when
            the export named them (default :func:`export.tflite.output_names`).

    Returns:
        ``{"max_abs_diff", "mean_abs_diff", "argmax_agreement", "examples"}``; the argmax
        agreement is the fraction of predictions (last-axis argmax of the first output) that
        are the same: one per example for a classifier, one per example and step for a
        sequence output such as a tagger's or a teacher-forced decoder's.
    """
    fed, got = run_tflite(tflite, inputs, input_names(keras_model), signature_key)
    if not fed:
        raise ValueError("parity needs at least one input example")
    names_out = list(names_out) if names_out is not None else output_names(keras_model)
    want = _keras_outputs(keras_model, fed, names_out)
    return _compare(got, want, names_out[0])


def saved_model_parity_report(
    keras_model: keras.Model,
    directory: str | os.PathLike,
    inputs: Any,
    signature_key: str = SIGNATURE_KEY,
) -> dict[str, float | int]:
    """:func:`parity_report` for a SavedModel (loaded with ``tf.saved_model.load``)."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(directory)).signatures[signature_key]
    names_in = input_names(keras_model)
    names_out = output_names(keras_model)
    _, specs = fn.structured_input_signature
    fed = [
        {n: v.astype(specs[n].dtype.as_numpy_dtype) for n, v in example.items()}
        for example in as_examples(inputs, names_in)
    ]
    if not fed:
        raise ValueError("parity needs at least one input example")

    def call(batch):
        out = fn(**{n: tf.constant(b) for n, b in zip(names_in, batch)})
        return [out[n].numpy() for n in names_out]

    got = _batched_outputs(call, names_in, names_out, fed)
    want = _keras_outputs(keras_model, fed, names_out)
    return _compare(got, want, names_out[0])


def parity(keras_model: keras.Model, tflite: ModelSource, inputs: Any) -> float:
    """Largest absolute difference between TFLite and Keras outputs over ``inputs``."""
    return parity_report(keras_model, tflite, inputs)["max_abs_diff"]


def argmax_agreement(keras_model: keras.Model, tflite: ModelSource, inputs: Any) -> float:
    """Fraction of ``inputs`` on which TFLite and Keras predict the same class (argmax)."""
    return parity_report(keras_model, tflite, inputs)["argmax_agreement"]


def tflite_latency_ms(
    tflite: ModelSource,
    example: Mapping[str, np.ndarray] | np.ndarray,
    *,
    runs: int = 20,
    warmup: int = 3,
    num_threads: int = 1,
    signature_key: str = SIGNATURE_KEY,
) -> float:
    """Median wall time (ms) of one batch-1 invocation on this machine's CPU.

    Args:
        tflite: path or bytes of the model.
        example: one example (``{input_name: (1, ...) array}`` or a ``(1, ...)`` array).
        runs: timed invocations.
        warmup: untimed invocations first.
        num_threads: interpreter threads (1 is what a phone app typically uses).
        signature_key: the signature to run.
    """
    runner = _runner(tflite, signature_key, num_threads=num_threads)
    shapes = _fixed_lengths(runner)
    if not isinstance(example, Mapping):
        example = {next(iter(shapes)): np.asarray(example)}
    prepared = _prepare(example, shapes, runner)
    for _ in range(warmup):
        runner(**prepared)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(**prepared)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def saved_model_latency_ms(
    directory: str | os.PathLike,
    example: Mapping[str, np.ndarray],
    *,
    runs: int = 20,
    warmup: int = 3,
    signature_key: str = SIGNATURE_KEY,
) -> float:
    """Median wall time (ms) of one batch-1 call of a SavedModel signature on this machine."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(directory)).signatures[signature_key]
    _, specs = fn.structured_input_signature
    feed = {
        n: tf.constant(np.asarray(v).astype(specs[n].dtype.as_numpy_dtype))
        for n, v in example.items()
    }
    for _ in range(warmup):
        fn(**feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        {k: v.numpy() for k, v in fn(**feed).items()}
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))
