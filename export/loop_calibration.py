"""int8 calibration of TFLite models with ``WHILE`` loops, without TF's crashing calibrator.

TF's post-training calibrator (``tensorflow.lite.python.optimize.calibrator``) runs the float
model in a logging interpreter and records the min / max of every tensor. On a model with a
builtin ``WHILE`` loop (a recurrent layer that is not unrolled) it segfaults in TF 2.21 — the
"full-integer quantization of a while-loop LSTM crashes" problem — which is why int8 exports
used to be unrolled at a fixed length. The quantizer that follows the calibrator
(``mlir_quantize``) handles ``WHILE`` bodies fine; only the statistics are missing.

:class:`LoopCalibrator` records them itself, with the plain LiteRT interpreter:

- the main subgraph runs once per representative example with all intermediate tensors kept
  (``experimental_preserve_all_tensors``); every float tensor's min / max is recorded;
- for each ``WHILE`` op, its inputs (the loop's initial values) are read from that run and the
  loop is replayed in Python, one iteration at a time: the ``cond`` and ``body`` subgraphs are
  run as models of their own (the same flatbuffer with that subgraph moved to the front), the
  body's outputs fed back as its next inputs, and every float tensor of the body recorded on
  every iteration; ``WHILE`` ops nested in a body are replayed the same way.

The statistics are written into the model as TF's calibrator writes them (each tensor's
``quantization.min`` / ``max``), so the converter's own quantizer then runs unchanged.
:func:`loop_calibration` swaps the calibrator in for one conversion; models without a
``WHILE`` op still go to TF's calibrator.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from export.ops import list_ops, op_records, pack_model

_SUBGRAPH_OPTIONS = {
    "WHILE": ("condSubgraphIndex", "bodySubgraphIndex"),
    "IF": ("thenSubgraphIndex", "elseSubgraphIndex"),
    "CALL_ONCE": ("initSubgraphIndex",),
}
MAX_ITERATIONS = 100_000  # a replayed loop that runs longer than this is a bug, not a sequence


def has_while(content: bytes) -> bool:
    """Whether the TFLite model ``content`` has a ``WHILE`` op in any subgraph."""
    return "WHILE" in list_ops(content)


class LoopCalibrator:
    """Drop-in for TF's ``Calibrator`` (``calibrate(dataset_gen) -> bytes``) that replays
    ``WHILE`` loops in Python instead of logging them in C++.

    Args:
        model_content: the float TFLite model the converter wants calibrated.
    """

    def __init__(self, model_content: bytes, *_: Any, **__: Any) -> None:
        self.content = bytes(model_content)
        self.model = schema.ModelT.InitFromPackedBuf(bytearray(self.content), 0)
        self.op_names = {(r.subgraph, r.index): r.name for r in op_records(self.content)}
        self.stats: dict[tuple[int, int], list[float]] = {}
        self._interpreters: dict[int, Any] = {}
        self._shapes: dict[int, list[tuple[int, ...]]] = {}  # input shapes each was allocated for
        self._float = {
            (g, t)
            for g, subgraph in enumerate(self.model.subgraphs)
            for t, tensor in enumerate(subgraph.tensors or [])
            if tensor.type == schema.TensorType.FLOAT32 and not self._is_constant(tensor)
        }

    def _is_constant(self, tensor: Any) -> bool:
        data = self.model.buffers[tensor.buffer].data
        return data is not None and len(data) > 0

    # -- running one subgraph as a model of its own ------------------------------------------
    def _subgraph_model(self, index: int) -> bytes:
        """The model with subgraph ``index`` moved to the front (subgraph references remapped)."""
        if index == 0:
            return self.content
        model = schema.ModelT.InitFromPackedBuf(bytearray(self.content), 0)
        order = [index] + [g for g in range(len(model.subgraphs)) if g != index]
        new_index = {old: new for new, old in enumerate(order)}
        for g, subgraph in enumerate(model.subgraphs):
            for k, op in enumerate(subgraph.operators or []):
                fields = _SUBGRAPH_OPTIONS.get(self.op_names[(g, k)], ())
                for field in fields:
                    setattr(op.builtinOptions, field, new_index[getattr(op.builtinOptions, field)])
        model.subgraphs = [model.subgraphs[g] for g in order]
        model.signatureDefs = None
        return pack_model(model)

    def _interpreter(self, index: int) -> Any:
        if index not in self._interpreters:
            from ai_edge_litert.interpreter import Interpreter

            with warnings.catch_warnings():  # "intended for debugging": calibration is that use
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
                self._interpreters[index] = Interpreter(
                    model_content=self._subgraph_model(index),
                    experimental_preserve_all_tensors=True,
                )
        return self._interpreters[index]

    def _run(self, index: int, inputs: list[np.ndarray]) -> Any:
        """Run subgraph ``index`` on ``inputs`` (its own input order); record its tensors."""
        interpreter = self._interpreter(index)
        details = interpreter.get_input_details()
        shapes = [np.shape(x) for x in inputs]
        if self._shapes.get(index) != shapes:
            for detail, shape in zip(details, shapes):
                interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
            interpreter.allocate_tensors()
            self._shapes[index] = shapes
        for detail, value in zip(details, inputs):
            interpreter.set_tensor(detail["index"], np.asarray(value, dtype=detail["dtype"]))
        interpreter.invoke()
        self._record(index, interpreter)
        return interpreter

    def _record(self, index: int, interpreter: Any) -> None:
        subgraph = self.model.subgraphs[index]
        for t in range(len(subgraph.tensors)):
            if (index, t) not in self._float:
                continue
            try:
                value = interpreter.get_tensor(t)
            except ValueError:  # never allocated (an optional or unused tensor)
                continue
            if value.size == 0:
                continue
            low, high = float(np.min(value)), float(np.max(value))
            if not (np.isfinite(low) and np.isfinite(high)):
                continue
            seen = self.stats.get((index, t))
            if seen is None:
                self.stats[(index, t)] = [low, high]
            else:
                seen[0], seen[1] = min(seen[0], low), max(seen[1], high)
        for k, op in enumerate(subgraph.operators or []):
            if self.op_names[(index, k)] == "WHILE":
                values = [interpreter.get_tensor(i) for i in op.inputs]
                self._replay(op.builtinOptions, values)

    def _replay(self, options: Any, values: list[np.ndarray]) -> None:
        """Run a ``WHILE`` loop from ``values`` one iteration at a time."""
        cond, body = options.condSubgraphIndex, options.bodySubgraphIndex
        for _ in range(MAX_ITERATIONS):
            keep_going = self._run(cond, values)
            flag = keep_going.get_tensor(keep_going.get_output_details()[0]["index"])
            if not bool(np.asarray(flag).reshape(-1)[0]):
                return
            interpreter = self._run(body, values)
            values = [
                np.array(interpreter.get_tensor(d["index"]))
                for d in interpreter.get_output_details()
            ]
        raise RuntimeError(f"WHILE loop did not end within {MAX_ITERATIONS} iterations")

    # -- the Calibrator interface ---------------------------------------------------------------
    def calibrate(self, dataset_gen: Callable[[], Iterable[Any]]) -> bytes:
        """Run every example of ``dataset_gen`` and return the model with min / max stats.

        Args:
            dataset_gen: the converter's representative dataset: yields dicts ``{signature
                input name: array}`` (or lists in the main subgraph's input order).

        Returns:
            The float model with ``quantization.min`` / ``max`` set on every float tensor.
        """
        by_name = {
            (m.name.decode() if isinstance(m.name, bytes) else m.name): m.tensorIndex
            for signature in (self.model.signatureDefs or [])[:1]
            for m in signature.inputs
        }
        inputs = list(self.model.subgraphs[0].inputs)
        position = {index: k for k, index in enumerate(inputs)}
        count = 0
        for sample in _samples(dataset_gen):
            if isinstance(sample, dict):
                ordered: list[Any] = [None] * len(inputs)
                for name, value in sample.items():
                    ordered[position[by_name[name]]] = value
            else:
                ordered = list(sample)
            self._run(0, [np.asarray(v) for v in ordered])
            count += 1
        if not count:
            raise ValueError("the representative dataset is empty")
        return self._with_stats()

    def _with_stats(self) -> bytes:
        model = schema.ModelT.InitFromPackedBuf(bytearray(self.content), 0)
        for (g, t), (low, high) in self.stats.items():
            params = schema.QuantizationParametersT()
            params.min, params.max = [low], [high]
            model.subgraphs[g].tensors[t].quantization = params
        return pack_model(model)


def _samples(dataset_gen: Callable[[], Iterable[Any]]) -> Iterator[Any]:
    for sample in dataset_gen():
        if isinstance(sample, tuple):  # (signature key, {name: array})
            sample = sample[1]
        yield sample


@contextlib.contextmanager
def loop_calibration() -> Iterator[None]:
    """Within this context the TFLite converter calibrates models that have a ``WHILE`` op
    with :class:`LoopCalibrator`; other models keep TF's calibrator."""
    from tensorflow.lite.python.optimize import calibrator as tf_calibrator

    original = tf_calibrator.Calibrator

    def choose(model_content: bytes, *args: Any, **kwargs: Any) -> Any:
        if has_while(model_content):
            return LoopCalibrator(model_content)
        return original(model_content, *args, **kwargs)

    tf_calibrator.Calibrator = choose
    try:
        yield
    finally:
        tf_calibrator.Calibrator = original
