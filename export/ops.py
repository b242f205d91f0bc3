"""List the ops of a TFLite model and check that it runs on the builtin op set only.

A phone runs a ``.tflite`` file with the plain LiteRT runtime: builtin kernels, no Flex
(``SELECT_TF_OPS``) delegate, no custom ops. This module reads a model's op list and proves it
loads in ``ai_edge_litert.interpreter.Interpreter`` with the builtin op resolver.

Why the flatbuffer is read directly: the interpreter's public API lists no ops at all, and its
private ``_get_ops_details()`` covers only the primary subgraph (the bodies of ``WHILE`` loops
live in other subgraphs), shows delegate nodes instead of the ops they replaced (XNNPACK), and
is unavailable for a model whose Flex ops stop the interpreter from allocating. The schema used
to read the file ships with ``ai_edge_litert`` itself (``schema_py_generated``).

Example:

>>> names = list_ops("model.tflite")          # doctest: +SKIP
>>> assert_builtin_only("model.tflite", keras_model=model)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ai_edge_litert import schema_py_generated as _schema

ModelSource = str | os.PathLike | bytes | bytearray

_BUILTIN_NAMES = {
    code: name for name, code in vars(_schema.BuiltinOperator).items() if not name.startswith("_")
}
_CUSTOM_CODE = _schema.BuiltinOperator.CUSTOM
_FILE_IDENTIFIER = b"TFL3"


class InvalidTFLiteModelError(ValueError):
    """The bytes given are not a complete, valid TFLite flatbuffer (truncated or another format)."""


class NonBuiltinOpsError(ValueError):
    """A TFLite model uses ops outside the builtin set (Flex / ``SELECT_TF_OPS`` or custom ops)."""

    def __init__(self, message: str, offending: list[OpRecord]) -> None:
        super().__init__(message)
        self.offending = offending


class ModelAllocationError(ValueError):
    """A TFLite model of builtin ops that the LiteRT interpreter (with its default XNNPACK
    delegate) still cannot prepare, e.g. int8 requantization scales XNNPACK rejects."""


@dataclasses.dataclass(frozen=True)
class OpRecord:
    """One operator of a TFLite model.

    Args:
        name: builtin op name (``"FULLY_CONNECTED"``) or custom code (``"FlexTensorListReserve"``).
        builtin: whether the op is a builtin op.
        subgraph: index of the subgraph holding the op (0 is the main graph).
        index: position of the op inside its subgraph.
        tensor_names: names of the op's output tensors (they carry the TF/Keras name scope).
    """

    name: str
    builtin: bool
    subgraph: int
    index: int
    tensor_names: tuple[str, ...]


def read_model_bytes(model: ModelSource) -> bytes:
    """Return the bytes of a TFLite model given as a path or as bytes.

    Raises:
        InvalidTFLiteModelError: when the file is missing, empty, truncated or not a TFLite file.
    """
    if isinstance(model, (bytes, bytearray)):
        data, where = bytes(model), "the given bytes"
    else:
        path = Path(model)
        if not path.is_file():
            raise InvalidTFLiteModelError(f"TFLite model file not found: {path}")
        data, where = path.read_bytes(), str(path)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise InvalidTFLiteModelError(
            f"{where} is not a TFLite model (no 'TFL3' flatbuffer identifier; "
            f"{len(data)} bytes): truncated or not a .tflite file"
        )
    return data


def _interpreter(data: bytes):
    # Imported here: constructing it is what verifies the flatbuffer (bounds, offsets).
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN)


def verify_model(model: ModelSource) -> bytes:
    """Check that ``model`` is a complete TFLite flatbuffer the LiteRT interpreter accepts.

    Returns:
        The model bytes.

    Raises:
        InvalidTFLiteModelError: truncated file, wrong format, or a flatbuffer that fails the
            interpreter's verifier.
    """
    data = read_model_bytes(model)
    try:
        _interpreter(data)
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidTFLiteModelError(
            f"LiteRT rejects the model ({len(data)} bytes; truncated or corrupt?): {first}"
        ) from err
    return data


def op_records(model: ModelSource) -> list[OpRecord]:
    """Every operator of every subgraph of a TFLite model, in file order.

    Args:
        model: path to a ``.tflite`` file or its bytes.

    Returns:
        One :class:`OpRecord` per operator.

    Raises:
        InvalidTFLiteModelError: when the model is truncated or not a TFLite flatbuffer.
    """
    data = verify_model(model)
    root = _schema.Model.GetRootAs(data, 0)
    records = []
    for sg_index in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(sg_index)
        for op_index in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(op_index)
            code = root.OperatorCodes(op.OpcodeIndex())
            # Codes above 127 live in BuiltinCode only; older files only fill the deprecated one.
            builtin_code = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin_code == _CUSTOM_CODE:
                custom = code.CustomCode()
                name = custom.decode("utf-8", "replace") if custom else "CUSTOM"
                builtin = False
            else:
                name = _BUILTIN_NAMES.get(builtin_code, f"BUILTIN_{builtin_code}")
                builtin = True
            outputs = [op.Outputs(i) for i in range(op.OutputsLength())]
            # Names may have been stripped (export.tflite.strip_tensor_names): then "".
            tensor_names = tuple(
                (subgraph.Tensors(t).Name() or b"").decode("utf-8", "replace")
                for t in outputs
                if t >= 0
            )
            records.append(OpRecord(name, builtin, sg_index, op_index, tensor_names))
    return records


def list_ops(model: ModelSource) -> list[str]:
    """Sorted names of the distinct ops used anywhere in a TFLite model (all subgraphs).

    Args:
        model: path to a ``.tflite`` file or its bytes.

    Returns:
        Builtin op names (``"WHILE"``, ``"FULLY_CONNECTED"``) and custom codes (``"FlexAddV2"``).

    Raises:
        InvalidTFLiteModelError: when the model is truncated or not a TFLite flatbuffer.

    Example:

    >>> list_ops("model.tflite")   # doctest: +SKIP
    ['ADD', 'FULLY_CONNECTED', 'GATHER', 'LOGISTIC', 'TANH', 'WHILE']
    """
    return sorted({record.name for record in op_records(model)})


def _layer_names(keras_model) -> list[str]:
    names = []

    def visit(layer) -> None:
        names.append(layer.name)
        for attr in ("layers", "forward_layer", "backward_layer", "layer", "cell"):
            child = getattr(layer, attr, None)
            children = child if isinstance(child, (list, tuple)) else [child]
            for sub in children:
                if getattr(sub, "name", None) is not None and sub.name not in names:
                    visit(sub)

    visit(keras_model)
    return names


def guess_layer(tensor_names: Iterable[str], layer_names: Iterable[str]) -> str | None:
    """Name of the Keras layer whose name scope appears in ``tensor_names`` (deepest match)."""
    layers = sorted(set(layer_names), key=len, reverse=True)  # longest name wins a tie
    best, best_depth = None, -1
    for tensor in tensor_names:
        for fused in tensor.split(";"):  # fused ops join the names of their parts with ';'
            # Scope components are layer names, with TF's "_<n>" uniquifying suffix.
            for depth, component in enumerate(fused.split("/")):
                for layer in layers:
                    if (
                        re.fullmatch(rf"{re.escape(layer)}(?:_\d+)?", component)
                        and depth > best_depth
                    ):
                        best, best_depth = layer, depth
                        break
    return best


def assert_builtin_only(model: ModelSource, keras_model=None) -> list[str]:
    """Raise unless the TFLite model uses builtin ops only and loads in the builtin interpreter.

    Args:
        model: path to a ``.tflite`` file or its bytes.
        keras_model: the Keras model it came from; when given, the error names the layer that
            produced each offending op (matched on the ops' tensor name scopes).

    Returns:
        The sorted op names (as :func:`list_ops`).

    Raises:
        NonBuiltinOpsError: naming each Flex / custom op (and its layer when known).
        ModelAllocationError: the ops are builtin but the interpreter cannot allocate the model.
        InvalidTFLiteModelError: when the model is truncated or not a TFLite flatbuffer.
    """
    records = op_records(model)
    offending = [r for r in records if not r.builtin]
    if offending:
        layers = _layer_names(keras_model) if keras_model is not None else []
        parts = []
        for name in sorted({r.name for r in offending}):
            hits = [r for r in offending if r.name == name]
            owners = sorted({layer for r in hits if (layer := guess_layer(r.tensor_names, layers))})
            where = f" (layer {', '.join(owners)})" if owners else ""
            parts.append(f"{name}{where}")
        raise NonBuiltinOpsError(
            f"TFLite model needs non-builtin ops, a plain LiteRT runtime cannot run it: "
            f"{'; '.join(parts)}",
            offending,
        )
    interpreter = _interpreter(read_model_bytes(model))
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        first = " ".join(str(err).split())[:300]
        raise ModelAllocationError(
            f"the LiteRT interpreter cannot allocate the model (its ops are builtin): {first}"
        ) from err
    return sorted({r.name for r in records})


def pack_model(model: _schema.ModelT) -> bytes:
    """Serialize a TFLite model edited through the flatbuffer object API (``ModelT``)."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())
