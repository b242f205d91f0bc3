"""Convert Keras recurrent models to TFLite files that run on the builtin op set only.

The obvious conversions of a Keras 3 recurrent model fail on a phone: with a free batch
dimension the ``TensorList`` ops of Keras' ``while`` loop have no static element shape, so the
converter either stops ("Lowering tensor list ops is failed") or, with ``SELECT_TF_OPS``, emits
``FlexTensorListReserve`` & co. that the plain LiteRT runtime cannot run; full-int8 quantization
of the ``while`` loop crashes the converter (TF's calibrator segfaults on ``WHILE`` in TF 2.21).

The export modes avoid all of that:

``seq_len=None`` (dynamic length, input ``(1, None)``)
    The model is traced with batch size fixed at 1. Every ``TensorList`` element shape is then
    static, so the converter lowers them to plain tensors carried through a builtin ``WHILE``
    loop — Keras' own recurrent code (masks, ``go_backwards``, ``Bidirectional``) runs unchanged.
    Every quantization, ``int8`` included: the loop is calibrated by
    :mod:`export.loop_calibration` instead of TF's calibrator.

``seq_len=N`` (fixed length, input ``(1, N)``)
    ``unroll=True`` (default): every recurrent layer is rebuilt with ``unroll=True`` (clone
    through its config, weights copied) and traced at length ``N``: a straight-line graph of
    builtin ops, no loop; one copy of each op per step, so the file grows with ``N``.
    ``unroll=False``: the loops stay ``WHILE`` loops over static shapes (the form used for
    models :func:`fixed_length_reason` names). Shorter sequences are post-padded with id 0;
    with ``Embedding(mask_zero=True)`` the padded steps keep the state, so the result equals
    Keras.

In every mode ``stateful`` layers are exported stateless (the file starts from zero states)
and cuDNN kernels are disabled, so what is traced is the portable kernel.

Quantization (``quantization=``):

- ``"none"``: float32 weights and activations.
- ``"float16"``: float16 weights, dequantized to float32 at load; about half the size.
- ``"dynamic"``: dynamic-range — int8 weights, float activations quantized on the fly.
- ``"int8"``: full integer with a representative dataset of real training inputs (required).
  Integer-id inputs stay ``int32``; float inputs/outputs stay float32 unless ``int8_io=True``
  (then their scale / zero point are in the manifest). A layer whose class sets
  ``int8_float_ops = True`` keeps its ops in float32 (builtin float kernels between
  ``DEQUANTIZE`` / ``QUANTIZE``; :func:`float_layer_names`): for arithmetic on absolute values
  whose range the training data cannot calibrate, such as the level of a trending series that
  a forecaster subtracts from its window and adds back to its outputs. In a ``WHILE`` loop the
  values carried from one iteration to the next (states, the growing output) cross the loop
  boundary as float32: the body quantizes them on entry and dequantizes what it hands on, and
  its arithmetic (``FULLY_CONNECTED``, gates, ``MUL`` / ``ADD``) is int8.

Example:

>>> result = convert_to_tflite(model, seq_len=None)            # doctest: +SKIP
>>> result = convert_to_tflite(model, seq_len=None, quantization="int8",
...                            representative_inputs=x_train[:200])   # doctest: +SKIP
>>> Path("model.tflite").write_bytes(result.content)          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export.loop_calibration import loop_calibration
from export.ops import assert_builtin_only
from export.zero_fill import fill_zero_constants

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
BUFFER_ALIGNMENT = 16  # bytes; where TFLite weight buffers start
SIGNATURE_KEY = "serving_default"


class UnsupportedExportError(ValueError):
    """The requested export (model, length mode, quantization) cannot be produced."""


@dataclasses.dataclass(frozen=True)
class TensorSpecInfo:
    """Name, shape (``-1`` for free dims), dtype and int8 quantization of one model input/output."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        info = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantization is not None:
            info["quantization"] = {
                "scale": self.quantization[0],
                "zero_point": self.quantization[1],
            }
        return info


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    """A converted model.

    Args:
        content: the ``.tflite`` flatbuffer.
        seq_len: fixed sequence length, or ``None`` for dynamic length.
        quantization: one of :data:`QUANTIZATIONS`.
        inputs: signature inputs (batch dimension is 1).
        outputs: signature outputs.
        ops: sorted op names (all builtin).
        unrolled: the recurrent loops were unrolled (fixed length only).
        signature_key: the TFLite signature to run.
        time_axes: for each input name, the axes whose length is the sequence length.
        float_layers: for ``int8``, the layers whose ops stayed float32
            (:func:`float_layer_names`).
    """

    content: bytes
    seq_len: int | None
    quantization: str
    inputs: tuple[TensorSpecInfo, ...]
    outputs: tuple[TensorSpecInfo, ...]
    ops: tuple[str, ...]
    unrolled: bool = False
    signature_key: str = SIGNATURE_KEY
    time_axes: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    float_layers: tuple[str, ...] = ()


def _set_in_configs(config: Any, changes: Mapping[str, Any]) -> Any:
    """Copy of a serialized Keras config with ``changes`` applied to every dict having the key."""
    if isinstance(config, dict):
        out = {k: _set_in_configs(v, changes) for k, v in config.items()}
        for key, value in changes.items():
            if key in out and not isinstance(out[key], (dict, list, tuple)):
                out[key] = value
        return out
    if isinstance(config, (list, tuple)):
        return type(config)(_set_in_configs(v, changes) for v in config)
    return config


def _fix_input_lengths(config: Any, seq_len: int) -> Any:
    """Copy of a serialized config whose ``InputLayer`` free non-batch dims are ``seq_len``."""
    if isinstance(config, (list, tuple)):
        return type(config)(_fix_input_lengths(v, seq_len) for v in config)
    if not isinstance(config, dict):
        return config
    out = {k: _fix_input_lengths(v, seq_len) for k, v in config.items()}
    inner = out.get("config")
    if out.get("class_name") == "InputLayer" and isinstance(inner, dict):
        shape = inner.get("batch_shape")
        if isinstance(shape, (list, tuple)):
            inner["batch_shape"] = type(shape)(
                [shape[0]] + [seq_len if d is None else d for d in shape[1:]]
            )
    return out


def iter_layers(layer: keras.layers.Layer) -> Iterable[keras.layers.Layer]:
    """``layer`` and every layer nested in it (models, wrappers, RNN cells), each once."""
    seen: set[int] = set()
    stack = [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("layers", "forward_layer", "backward_layer", "layer", "cell", "cells"):
            child = getattr(current, attr, None)
            children = child if isinstance(child, (list, tuple)) else [child]
            stack.extend(c for c in children if isinstance(c, keras.layers.Layer))


def fixed_length_reason(model: keras.Model) -> str | None:
    """Why ``model`` can only be exported at a fixed length, or ``None`` when it need not be.

    ``seqlayers.AttentionDecoder`` loops with ``keras.ops.scan``, whose carry lives in
    ``TensorList`` ops; at dynamic length the converter "lowers" them into a model that fails
    at run time (a negative ``FILL`` size), so such a model is exported at a fixed length only
    (its loops kept over static shapes, or unrolled). (A phone app decodes with the one-step
    models instead, which have no loop at all.)
    """
    from seqlayers import AttentionDecoder

    for layer in iter_layers(model):
        if isinstance(layer, AttentionDecoder) and not layer.unroll:
            return (
                f"layer {layer.name!r} (AttentionDecoder) loops with keras.ops.scan, whose "
                "TensorList ops TFLite cannot run at dynamic length"
            )
    return None


def portable_copy(model: keras.Model, *, seq_len: int | None = None) -> keras.Model:
    """Rebuild ``model`` for export: recurrent layers stateless, unrolled for a fixed length.

    The model is cloned through its serialized config (so custom layers must be registered,
    e.g. by ``import seqlayers``) and the weights are copied; the original is untouched.

    Args:
        model: a functional or sequential Keras model (subclassed models need ``get_config``).
        seq_len: ``None`` keeps the loops; an int sets ``unroll=True`` on every recurrent
            layer and fixes the free input lengths to ``seq_len`` (fixed-length export).

    Returns:
        The rebuilt model (the same object when nothing had to change).

    Raises:
        UnsupportedExportError: when the model cannot be rebuilt from its config.
    """
    changes: dict[str, Any] = {"stateful": False}
    if seq_len is not None:
        changes["unroll"] = True
    try:
        config = keras.saving.serialize_keras_object(model)
    except Exception as err:
        stateful = any(getattr(layer, "stateful", False) for layer in iter_layers(model))
        if seq_len is None and not stateful:
            # Nothing to change (e.g. a one-step model built from shared, unregistered layers).
            _disable_cudnn(model)
            return model
        raise UnsupportedExportError(
            f"cannot serialize model {model.name!r} to rebuild it for export: {err}"
        ) from err
    patched = _set_in_configs(config, changes)
    if seq_len is not None:
        patched = _fix_input_lengths(patched, seq_len)
    if patched != config:
        try:
            clone = keras.saving.deserialize_keras_object(copy.deepcopy(patched))
            clone.set_weights(model.get_weights())
        except Exception as err:
            raise UnsupportedExportError(
                f"cannot rebuild model {model.name!r} with {changes} for export "
                f"(is every custom layer registered and does its get_config round-trip?): {err}"
            ) from err
    else:
        clone = model
    _disable_cudnn(clone)
    if seq_len is not None:
        _fix_unrolled_backward_masking(clone)
    return clone


def _fix_unrolled_backward_masking(model: keras.Model) -> None:
    """Work around Keras' unrolled ``go_backwards`` masking (Keras 3.15, TensorFlow backend).

    Unrolled with a mask, an RNN running backwards zeroes its (time-reversed) outputs with the
    *unreversed* mask when ``zero_output_for_mask`` is set (``Bidirectional`` sets it on both
    directions when it returns sequences), so real steps are zeroed and padded ones are not.
    With the flag off, padded steps repeat the previous output instead; for right-padded inputs
    (the exporter post-pads) a backward RNN meets the padding first, so that "previous output"
    is the zero it starts with: exactly what Keras' loop returns.
    """
    for layer in iter_layers(model):
        if (
            getattr(layer, "go_backwards", False)
            and getattr(layer, "unroll", False)
            and getattr(layer, "zero_output_for_mask", False)
        ):
            layer.zero_output_for_mask = False


def _disable_cudnn(model: keras.Model) -> None:
    for layer in iter_layers(model):
        if getattr(layer, "use_cudnn", None) not in (None, False):
            layer.use_cudnn = False


def _clean_name(name: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return name if re.match(r"[A-Za-z_]", name) else f"input_{name}"


def input_names(model: keras.Model) -> list[str]:
    """Signature names of the model's inputs (the Keras input names, made identifier-safe)."""
    return [_clean_name(t.name) for t in model.inputs]


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` made identifier-safe and unique (a repeat gets ``_1``, ``_2``, ...)."""
    seen: set[str] = set()
    out = []
    for name in (_clean_name(n) for n in names):
        candidate, k = name, 1
        while candidate in seen:
            candidate, k = f"{name}_{k}", k + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def output_names(model: keras.Model) -> list[str]:
    """Signature names of the model's outputs (the Keras output names, made identifier-safe
    and unique: a layer returning several outputs, e.g. ``return_state=True``, names them all)."""
    names = getattr(model, "output_names", None) or [
        f"output_{i}" for i in range(len(model.outputs))
    ]
    return unique_names(names)


def export_input_specs(
    model: keras.Model, seq_len: int | None, batch_size: int | None = 1
) -> tuple[list[tf.TensorSpec], dict[str, tuple[int, ...]]]:
    """Input signature for export: batch ``batch_size``, free non-batch dims set to ``seq_len``.

    Returns:
        The ``tf.TensorSpec`` list (in model input order) and, per input name, the time axes
        (the non-batch axes that were free in the Keras model).
    """
    specs, time_axes = [], {}
    for tensor, name in zip(model.inputs, input_names(model)):
        shape = list(tensor.shape)
        free = tuple(i for i in range(1, len(shape)) if shape[i] is None)
        for i in free:
            shape[i] = seq_len
        shape[0] = batch_size
        specs.append(tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=name))
        time_axes[name] = free
    return specs, time_axes


def serving_fn(
    model: keras.Model, names: Sequence[str] | None = None
) -> Callable[..., dict[str, tf.Tensor]]:
    """``(inputs...) -> {output_name: tensor}``: the model in inference mode, outputs named
    ``names`` (default :func:`output_names`)."""
    names = list(names) if names is not None else output_names(model)
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        raise ValueError(
            f"need {len(model.outputs)} distinct output names for model {model.name!r}. "
            f"Received: {list(names)}"
        )
    single = len(model.inputs) == 1

    def serve(*args):
        outputs = model(args[0] if single else list(args), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {name: out for name, out in zip(names, outputs)}

    return serve


def write_saved_model(
    model: keras.Model,
    directory: str | os.PathLike,
    specs: Sequence[tf.TensorSpec],
    extra_endpoints: Mapping[str, tuple[Callable, Sequence[tf.TensorSpec]]] | None = None,
    track: Sequence[Any] = (),
    output_names: Sequence[str] | None = None,
) -> None:
    """Write ``model`` as a SavedModel with signature ``serving_default`` (and extra ones).

    Uses ``keras.export.ExportArchive``: the variables are tracked, the graphs are traced, and
    the result loads with ``tf.saved_model.load`` without any Keras / rnnsuite code.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in track:
        archive.track(resource)
    archive.add_endpoint(
        SIGNATURE_KEY, serving_fn(model, output_names), input_signature=list(specs)
    )
    for name, (fn, fn_specs) in (extra_endpoints or {}).items():
        archive.add_endpoint(name, fn, input_signature=list(fn_specs))
    archive.write_out(str(directory), verbose=False)


def fit_length(array: np.ndarray, axes: Sequence[int], length: int | None) -> np.ndarray:
    """Post-pad with zeros or truncate ``array`` along ``axes`` to ``length`` (no-op for None)."""
    if length is None:
        return array
    for axis in axes:
        size = array.shape[axis]
        if size > length:
            array = np.take(array, np.arange(length), axis=axis)
        elif size < length:
            pad = [(0, 0)] * array.ndim
            pad[axis] = (0, length - size)
            array = np.pad(array, pad)
    return array


def as_examples(inputs: Any, names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Split model inputs into batch-1 examples ``{input_name: array of shape (1, ...)}``.

    Accepts an array ``(N, ...)``, a list of per-example arrays (varying lengths allowed), a
    dict ``{name: array (N, ...)}``, or a list of such dicts / lists (multi-input models).
    """
    if isinstance(inputs, Mapping):
        columns = [np.asarray(inputs[n]) for n in names]
        return [{n: c[i : i + 1] for n, c in zip(names, columns)} for i in range(len(columns[0]))]
    if isinstance(inputs, (tf.Tensor, np.ndarray)):
        array = np.asarray(inputs)
        if len(names) != 1:
            raise ValueError(f"model has inputs {list(names)}; pass a dict of arrays")
        return [{names[0]: array[i : i + 1]} for i in range(len(array))]
    examples = []
    for item in inputs:
        if isinstance(item, Mapping):
            examples.append({n: np.asarray(item[n])[None] for n in names})
        elif isinstance(item, (list, tuple)) and len(names) > 1:
            examples.append({n: np.asarray(v)[None] for n, v in zip(names, item)})
        else:
            examples.append({names[0]: np.asarray(item)[None]})
    return examples


def _representative(
    examples: list[dict[str, np.ndarray]],
    specs: Sequence[tf.TensorSpec],
    time_axes: Mapping[str, tuple[int, ...]],
    seq_len: int | None,
) -> Callable[[], Iterable[dict[str, np.ndarray]]]:
    def generate():
        for example in examples:
            yield {
                spec.name: fit_length(example[spec.name], time_axes[spec.name], seq_len).astype(
                    spec.dtype.as_numpy_dtype
                )
                for spec in specs
            }

    return generate


def signature_io(content: bytes, signature_key: str = SIGNATURE_KEY):
    """Describe the inputs and outputs of a TFLite signature (names, shapes, dtypes, int8 params)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    runner = interpreter.get_signature_runner(signature_key)
    inputs = runner.get_input_details()
    outputs = runner.get_output_details()

    def infos(details):
        result = []
        for name, detail in details.items():
            scale, zero = detail.get("quantization", (0.0, 0))
            quant = (float(scale), int(zero)) if scale else None
            shape = tuple(int(s) for s in detail.get("shape_signature", detail["shape"]))
            result.append(TensorSpecInfo(name, shape, np.dtype(detail["dtype"]).name, quant))
        return tuple(result)

    return infos(inputs), infos(outputs)


def _convert(
    saved_model_dir: str,
    quantization: str,
    specs: Sequence[tf.TensorSpec],
    time_axes: Mapping[str, tuple[int, ...]],
    seq_len: int | None,
    representative_inputs: Any,
    int8_io: bool,
    max_representative: int,
    float_layers: Sequence[str] = (),
    float_outputs: bool = False,
    per_channel_dense: bool = False,
) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        examples = as_examples(representative_inputs, [s.name for s in specs])
        if not examples:
            raise UnsupportedExportError("representative_inputs is empty")
        converter.representative_dataset = _representative(
            examples[:max_representative], specs, time_axes, seq_len
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        disable = not per_channel_dense
        converter._experimental_disable_per_channel_quantization_for_dense_layers = disable
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            # int8 calibration runs TF's deprecated tf.lite.Interpreter internally, and warns
            # that integer-id inputs have no float statistics; neither concerns the caller.
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with loop_calibration():
                if quantization == "int8" and float_layers:
                    content = _int8_with_float_layers(converter, float_layers, float_outputs)
                else:
                    content = converter.convert()
    except Exception as err:
        lines = [line for line in str(err).splitlines() if "error:" in line]
        raise UnsupportedExportError(
            f"TFLite conversion to builtin ops failed ({quantization}, "
            f"seq_len={seq_len}): {(lines or [str(err)[:300]])[0].strip()}"
        ) from err
    return content


def float_layer_names(model: keras.Model) -> tuple[str, ...]:
    """Names of the layers of ``model`` (nested ones too) whose class sets
    ``int8_float_ops = True``: an ``int8`` export keeps their ops in float32."""
    return tuple(
        layer.name
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if getattr(type(layer), "int8_float_ops", False)
    )


def _tensor_names(content: bytes) -> tuple[list[str], list[str]]:
    """``(every tensor name, the main subgraph's output tensor names)`` of a flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in graph.tensors]
    return names, [names[i] for i in graph.outputs]


def _int8_with_float_layers(
    converter: Any, float_layers: Sequence[str], deny_outputs: bool
) -> bytes:
    """Full-integer conversion that leaves the ops of ``float_layers`` in float32.

    The converter's calibrated (not yet quantized) model names each op's output tensor after
    its TF scope, ``<model>/<layer>[_N]/<op>`` (fused ops join several names with ``;``); the
    ops of the float layers, and the model's outputs when ``deny_outputs`` (a float layer ends
    the model; the converter renames its last op after the signature), are handed to TF's
    selective quantization (``mlir_quantize`` with ``denylisted_nodes``, as
    ``QuantizationDebugger`` does it). The other ops are int8; the float ops
    are builtin float kernels, so the file still runs on the builtin op set.
    """
    scopes = re.compile("/(" + "|".join(re.escape(name) for name in float_layers) + r")(_\d+)?/")
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    converter._experimental_calibrate_only = False
    names, outputs = _tensor_names(calibrated)
    denied = []
    for name in names:
        parts = name.split(";")  # fused ops join names; multi-output ops end in ";<k>"
        if any(scopes.search(part) for part in parts):
            denied.extend(x for x in (name, *parts) if x not in denied and not x.isdigit())
    if deny_outputs:
        denied.extend(n for n in outputs if n not in denied)
    from tensorflow.lite.python import convert as tf_convert

    # What tf.lite.experimental.QuantizationDebugger(denylisted_nodes=...) runs, minus its
    # second calibration, and with the converter's per-channel options (it drops the dense one).
    return tf_convert.mlir_quantize(
        calibrated,
        disable_per_channel=converter._experimental_disable_per_channel,
        denylisted_nodes=denied,
        disable_per_channel_for_dense_layers=(
            converter._experimental_disable_per_channel_quantization_for_dense_layers
        ),
    )


def strip_tensor_names(content: bytes) -> bytes:
    """The TFLite model ``content`` without its internal tensor names, its records shared.

    The converter names every tensor after its TF op scope (``model/lstm/while/...``), ~100
    bytes each; an unrolled fixed-length graph has thousands of tensors, so the names can
    outweigh int8 weights (a 48-step BiLSTM sentiment model: 1.46 MB -> 0.97 MB in int8). The
    signature names, which are what a caller feeds and reads, are kept; only debugging
    tools that show tensor names lose them.

    The same re-packing also writes each distinct record once (see :func:`_sharing_builder_class`):
    a flatbuffer may reference one vector or table from many places, and the thousands of
    tensors of an unrolled graph repeat a few shapes and quantization parameters; tensors
    without constant data all point to the empty buffer 0 instead of an empty buffer each.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.name = None
    _share_empty_buffers(model)
    builder = _sharing_builder(len(content))
    shared: dict[tuple, Any] = {}
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            if tensor.quantization is not None:
                tensor.quantization = _SharedTable(tensor.quantization, shared)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _sharing_builder_class():
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        """A builder that writes each distinct numpy vector once and aligns weight buffers
        (byte vectors) on 16 bytes, as the converter writes them, so that kernels can read
        them in place."""

        def __init__(self, size: int) -> None:
            super().__init__(size)
            self._vectors: dict[tuple, int] = {}

        def StartVector(self, elemSize: int, numElems: int, alignment: int) -> int:
            if elemSize == 1 and numElems >= BUFFER_ALIGNMENT:
                alignment = max(alignment, BUFFER_ALIGNMENT)
            return super().StartVector(elemSize, numElems, alignment)

        def CreateNumpyVector(self, x: np.ndarray) -> int:
            key = (x.dtype.str, x.shape, x.tobytes())
            if key not in self._vectors:
                self._vectors[key] = super().CreateNumpyVector(x)
            return self._vectors[key]

    return SharingBuilder


def _sharing_builder(size: int) -> Any:
    return _sharing_builder_class()(size)


class _SharedTable:
    """Packs a ``QuantizationParametersT`` once per distinct value (the offset is reused)."""

    def __init__(self, table: Any, shared: dict[tuple, Any]) -> None:
        self.table = table
        self.shared = shared
        self.key = tuple(
            (name, None if value is None else np.asarray(value).tobytes())
            if isinstance(value, (np.ndarray, list, type(None)))
            else (name, value)
            for name, value in sorted(vars(table).items())
        )

    def Pack(self, builder: Any) -> int:  # flatbuffers' object API name
        """The offset of this table in ``builder``: packed on first use, then reused."""
        if self.key not in self.shared:
            self.shared[self.key] = self.table.Pack(builder)
        return self.shared[self.key]


def _share_empty_buffers(model: Any) -> None:
    """Point every tensor without constant data at buffer 0 and drop the other empty buffers."""
    buffers = model.buffers or []
    if not buffers or not _is_empty(buffers[0]):
        return
    keep = [0] + [i for i, b in enumerate(buffers) if i and not _is_empty(b)]
    # buffers named by metadata keep their index whatever their content
    named = {m.buffer for m in model.metadata or []} | set(model.metadataBuffer or [])
    keep = sorted(set(keep) | named)
    new_index = {old: new for new, old in enumerate(keep)}
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.buffer = new_index.get(tensor.buffer, 0)
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[i] for i in model.metadataBuffer]
    model.buffers = [buffers[i] for i in keep]


def _is_empty(buffer: Any) -> bool:
    return (buffer.data is None or len(buffer.data) == 0) and not getattr(buffer, "size", 0)


def convert_to_tflite(
    model: keras.Model,
    *,
    seq_len: int | None = None,
    quantization: str = "none",
    representative_inputs: Any = None,
    int8_io: bool = False,
    max_representative: int = 200,
    output_names: Sequence[str] | None = None,
    strip_names: bool = True,
    unroll: bool = True,
    per_channel_dense: bool = False,
) -> TFLiteExport:
    """Convert a Keras model with recurrent layers to a builtin-only TFLite model.

    Args:
        model: functional/sequential Keras model (keras LSTM / GRU / SimpleRNN / RNN(cell),
            seqlayers cells, ``Bidirectional``, masking from ``Embedding(mask_zero=True)``).
        seq_len: ``None`` for a dynamic-length ``(1, None)`` input (builtin ``WHILE``), or a
            positive int for a fixed-length ``(1, seq_len)`` input.
        quantization: ``"none"``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
        representative_inputs: real training inputs for ``int8`` calibration, in any form
            :func:`as_examples` accepts; padded / truncated to ``seq_len``.
        int8_io: for ``int8``, make float inputs and outputs int8 too (integer ids stay int32).
        max_representative: at most this many examples are used for calibration.
        output_names: signature names of the outputs, in model output order (default
            :func:`output_names`).
        strip_names: drop the internal tensor names (see :func:`strip_tensor_names`); the
            signature's input / output names stay.
        unroll: with a fixed ``seq_len``, unroll the recurrent loops into a straight-line
            graph (``True``) or keep them as builtin ``WHILE`` loops over static shapes
            (``False``: a smaller file; what ``python -m export`` uses for the models
            :func:`fixed_length_reason` names). Ignored for dynamic length.
        per_channel_dense: for ``int8``, one scale per output channel of each
            ``FULLY_CONNECTED`` weight instead of one per tensor. Per tensor (default) keeps
            the file smaller (no per-channel scale and zero-point vectors) and is the form
            integer accelerators without per-channel dense support take; on the suite's
            models it stays within 0.2 points (2 % for error metrics) of per channel
            (``benchmarks/RESULTS.md``).

    Returns:
        A :class:`TFLiteExport` whose ops were checked to be builtin only.

    Raises:
        UnsupportedExportError: unknown quantization, ``int8`` with dynamic length, ``int8``
            without representative inputs, dynamic length for a model that needs a fixed one
            (:func:`fixed_length_reason`), or a model the converter cannot turn into builtin
            ops.
    """
    if quantization not in QUANTIZATIONS:
        raise UnsupportedExportError(
            f"quantization must be one of {QUANTIZATIONS}. Received: quantization={quantization!r}"
        )
    if seq_len is not None and (not isinstance(seq_len, (int, np.integer)) or seq_len < 1):
        raise UnsupportedExportError(
            f"seq_len must be None (dynamic) or a positive int. Received: seq_len={seq_len!r}"
        )
    reason = fixed_length_reason(model) if seq_len is None else None
    if reason:
        raise UnsupportedExportError(f"{reason}; export it with a fixed seq_len=N")
    if quantization == "int8" and representative_inputs is None:
        raise UnsupportedExportError(
            "int8 quantization needs representative_inputs drawn from real training inputs"
        )
    if int8_io and quantization != "int8":
        raise UnsupportedExportError("int8_io=True only applies to quantization='int8'")
    float_layers = float_layer_names(model) if quantization == "int8" else ()
    if int8_io and float_layers:
        raise UnsupportedExportError(
            f"int8_io=True: layer {float_layers[0]!r} keeps float32 ops in an int8 export "
            "(absolute values training data cannot calibrate), so its inputs/outputs stay float"
        )
    float_outputs = bool(float_layers) and any(
        t._keras_history[0].name in float_layers for t in model.outputs
    )

    with tf.device("/cpu:0"):
        portable = portable_copy(model, seq_len=seq_len if unroll else None)
        specs, time_axes = export_input_specs(model, seq_len)
        with tempfile.TemporaryDirectory(prefix="rnnsuite-export-") as saved_model_dir:
            # Through a SavedModel (Keras' own LiteRT path): the converter freezes the weights
            # into constants and keeps the named signature. (from_concrete_functions with the
            # model as trackable keeps VAR_HANDLE / READ_VARIABLE ops; without it, no signature.)
            try:
                write_saved_model(portable, saved_model_dir, specs, output_names=output_names)
            except Exception as err:
                raise UnsupportedExportError(
                    f"tracing the model at input shapes {[s.shape.as_list() for s in specs]} "
                    f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                ) from err
            content = _convert(
                saved_model_dir,
                quantization,
                specs,
                time_axes,
                seq_len,
                representative_inputs,
                int8_io,
                max_representative,
                float_layers,
                float_outputs,
                per_channel_dense,
            )

    ops = assert_builtin_only(content, keras_model=model)  # names the layer of a bad op
    content = fill_zero_constants(content)
    if strip_names:
        content = strip_tensor_names(content)
    inputs, outputs = signature_io(content)
    return TFLiteExport(
        content=content,
        seq_len=None if seq_len is None else int(seq_len),
        unrolled=seq_len is not None and unroll,
        quantization=quantization,
        inputs=inputs,
        outputs=outputs,
        ops=tuple(ops),
        time_axes=time_axes,
        float_layers=tuple(float_layers),
    )
