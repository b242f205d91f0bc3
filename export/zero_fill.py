"""Replace large all-zero constants of a TFLite model with a ``FILL`` op.

Lowering the ``TensorList`` ops of a recurrent loop over static shapes (a fixed-length export
that keeps its ``WHILE`` loops) makes the converter write the loop's initial output buffers
— ``(steps, 1, units)`` of zeros, one per layer — into the file as constants. They are
nothing but zeros: a 64-unit translation model carries 48 KiB of them, 8 % of its float32
file and a fifth of its int8 one. :func:`fill_zero_constants` drops their data and adds one
builtin ``FILL`` op per tensor that writes the zeros at run time (the tensor then lives in the
interpreter's arena instead of the file). Outputs are bit-for-bit the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from export.ops import pack_model

MIN_BYTES = 1024  # smaller zero constants are not worth an op
# FILL's plain (unquantized) types: tensor type -> numpy dtype of the fill value
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32}


def _zero_constant(model: Any, tensor: Any, min_bytes: int) -> bool:
    """Whether ``tensor`` is a static-shape, unquantized float32 / int32 constant of at least
    ``min_bytes`` bytes, all zero."""
    if tensor.type not in _DTYPES or tensor.isVariable or _has_quantization(tensor):
        return False
    shape = list(tensor.shape if tensor.shape is not None else [])
    signature = tensor.shapeSignature
    if not shape or min(shape) < 0 or (signature is not None and min(signature) < 0):
        return False
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    if data is None or len(data) < min_bytes:
        return False
    return not np.any(np.asarray(data, dtype=np.uint8))


def _has_quantization(tensor: Any) -> bool:
    q = tensor.quantization
    return q is not None and q.scale is not None and len(q.scale) > 0


def _fill_opcode(model: Any) -> int:
    code = schema.BuiltinOperator.FILL
    for index, opcode in enumerate(model.operatorCodes):
        if max(opcode.builtinCode, opcode.deprecatedBuiltinCode) == code:
            return index
    opcode = schema.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, 127)
    opcode.version = 1
    model.operatorCodes.append(opcode)
    return len(model.operatorCodes) - 1


def _constant(model: Any, array: np.ndarray, tensor_type: int) -> Any:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(array.tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = np.asarray(array.shape, dtype=np.int32)
    tensor.type = tensor_type
    tensor.buffer = len(model.buffers) - 1
    return tensor


def fill_zero_constants(content: bytes, min_bytes: int = MIN_BYTES) -> bytes:
    """``content`` with every all-zero float32 / int32 constant of ``min_bytes`` or more made
    by a ``FILL`` op at run time (unchanged when it has none).

    Args:
        content: a TFLite flatbuffer.
        min_bytes: smallest constant (in bytes) worth replacing.

    Returns:
        The new flatbuffer (or ``content`` itself when nothing was replaced).
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    fill = None
    for subgraph in model.subgraphs or []:
        new_ops = []
        for index, tensor in enumerate(list(subgraph.tensors or [])):
            if not _zero_constant(model, tensor, min_bytes):
                continue
            if fill is None:
                fill = _fill_opcode(model)
            dims = _constant(model, np.asarray(tensor.shape, np.int32), schema.TensorType.INT32)
            value = _constant(model, np.zeros((), _DTYPES[tensor.type]), tensor.type)
            subgraph.tensors.extend([dims, value])
            model.buffers[tensor.buffer].data = None
            tensor.buffer = 0  # buffer 0 is the flatbuffer's empty sentinel
            op = schema.OperatorT()
            op.opcodeIndex = fill
            op.inputs = np.asarray([len(subgraph.tensors) - 2, len(subgraph.tensors) - 1], np.int32)
            op.outputs = np.asarray([index], np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.FillOptions
            op.builtinOptions = schema.FillOptionsT()
            new_ops.append(op)
        if new_ops:
            subgraph.operators = new_ops + list(subgraph.operators or [])
    return content if fill is None else pack_model(model)
