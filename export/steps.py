"""Export a generator's one-step models (and its encoder) as TFLite files a phone app can loop.

A generator hands the exporter the models of its decoding loop (see
:mod:`export.app_hooks`): a *loop* model ``[token, state_0.., *constants] -> [logits,
new_state_0.., *extras]`` run once per generated token, and optionally *run-once* models
(an encoder: ``source -> [values, keys, mask, initial states]``). Each becomes its own
builtin-only ``.tflite`` (batch 1, inputs named as in Keras, state outputs named
``new_<state input>``), and :class:`StepLayout` records how to loop it: which input is the
token, which outputs feed back into which inputs, what stays constant, and which inputs an
encoder output fills.

Example:

>>> step = StepModel(build_step_model(model))                    # doctest: +SKIP
>>> exported = export_step_model(step)                           # doctest: +SKIP
>>> exported.layout.as_dict()["states"][0]                       # doctest: +SKIP
{'input': 'state_1_0', 'output': 'new_state_1_0', 'shape': [1, 64], 'dtype': 'float32'}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from export.app_hooks import StepModel
from export.parity import parity_report
from export.tflite import TFLiteExport, convert_to_tflite, input_names, output_names, unique_names

LOOP, RUN_ONCE = "loop", "run_once"


def as_step_model(value: Any) -> StepModel:
    """A hook's ``step_models`` value (a ``keras.Model`` or a :class:`StepModel`) as a
    :class:`StepModel`."""
    if isinstance(value, StepModel):
        if not isinstance(value.model, keras.Model):
            raise TypeError(
                f"StepModel.model must be a keras.Model. Received: {type(value.model).__name__}"
            )
        return value
    if isinstance(value, keras.Model):
        return StepModel(value)
    raise TypeError(f"a step model must be a keras.Model or a StepModel. Received: {value!r}")


def _signature(tensor: Any) -> tuple[tuple[Any, ...], str]:
    return tuple(tensor.shape[1:]), str(tensor.dtype)


def infer_num_states(model: keras.Model) -> int:
    """How many leading inputs after the first are states fed back from the outputs.

    The states are inputs ``1..n`` whose (non-batch) shape and dtype equal those of outputs
    ``1..n``; the first input is the token or frame, the first output the logits.
    """
    n = 0
    while (
        n + 1 < len(model.inputs)
        and n + 1 < len(model.outputs)
        and _signature(model.inputs[n + 1]) == _signature(model.outputs[n + 1])
    ):
        n += 1
    return n


@dataclasses.dataclass(frozen=True)
class StepLayout:
    """How a phone app drives one exported step model.

    Args:
        name: the model's name in the hook (``"step"``, ``"encoder"``, ``"decoder_step"``).
        inputs: signature input names, in Keras input order.
        outputs: signature output names, in Keras output order.
        num_states: recurrent states (inputs ``1..n`` <-> outputs ``1..n``); 0: run once.
        input_shapes: per input name, its shape in the file (batch 1, ``-1`` = any length).
        input_dtypes: per input name, its dtype.
        feeds: per input name, where its value comes from (``"<model>.tflite:<output>"``);
            filled by :func:`link_layouts` for inputs that an encoder output provides.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    num_states: int
    input_shapes: Mapping[str, tuple[int, ...]]
    input_dtypes: Mapping[str, str]
    feeds: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def role(self) -> str:
        return LOOP if self.num_states else RUN_ONCE

    @property
    def states(self) -> list[tuple[str, str]]:
        """``(input name, output name)`` per state."""
        n = self.num_states
        return list(zip(self.inputs[1 : 1 + n], self.outputs[1 : 1 + n]))

    @property
    def constants(self) -> tuple[str, ...]:
        """Inputs after the states: fed unchanged at every step."""
        return self.inputs[1 + self.num_states :] if self.num_states else ()

    @property
    def extra_outputs(self) -> tuple[str, ...]:
        """Outputs after the new states (e.g. attention weights): read, never fed back."""
        return self.outputs[1 + self.num_states :] if self.num_states else ()

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``"step"`` section."""
        info: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
        }
        if self.role == LOOP:
            info.update(
                token_input=self.inputs[0],
                logits_output=self.outputs[0],
                states=[
                    {
                        "input": i,
                        "output": o,
                        "shape": list(self.input_shapes[i]),
                        "dtype": self.input_dtypes[i],
                        "initial": self.feeds.get(i, "zeros"),
                    }
                    for i, o in self.states
                ],
                constants=[
                    {
                        "input": c,
                        "shape": list(self.input_shapes[c]),
                        "dtype": self.input_dtypes[c],
                        "from": self.feeds.get(c, "the app (see notes)"),
                    }
                    for c in self.constants
                ],
                extra_outputs=list(self.extra_outputs),
                how="feed token_input and every state (zeros or the 'initial' output first), "
                "run, read logits_output, pick the next token, feed each state's 'output' "
                "back as its 'input'; constants stay the same for the whole sequence",
            )
        return info


@dataclasses.dataclass(frozen=True)
class StepExport:
    """A converted step model: the TFLite export and how to loop it."""

    step: StepModel
    result: TFLiteExport
    layout: StepLayout


def step_output_names(step: StepModel, num_states: int) -> list[str]:
    """Signature output names: the hook's, else Keras' (unique) with states ``new_<input>``."""
    model = step.model
    if step.output_names is not None:
        names = unique_names(step.output_names)
        if len(names) != len(model.outputs) or list(names) != list(step.output_names):
            raise ValueError(
                f"StepModel.output_names must be {len(model.outputs)} distinct identifiers. "
                f"Received: {list(step.output_names)}"
            )
        return names
    names = list(getattr(model, "output_names", None) or output_names(model))
    state_inputs = input_names(model)[1 : 1 + num_states]
    for k, state in enumerate(state_inputs, 1):
        names[k] = f"new_{state}"
    return unique_names(names)


def export_step_model(
    step: StepModel | keras.Model,
    name: str = "step",
    *,
    quantization: str = "none",
    strip_names: bool = True,
) -> StepExport:
    """Convert one step model to a builtin-only TFLite file (batch 1, any constant length).

    Args:
        step: the model (or :class:`StepModel`) from the app hook.
        name: its name in the hook.
        quantization: ``"none"``, ``"float16"`` or ``"dynamic"`` (``"int8"`` would need a
            calibration set of real step inputs and is refused).
        strip_names: drop internal tensor names (:func:`export.tflite.strip_tensor_names`).

    Raises:
        export.tflite.UnsupportedExportError: the converter cannot produce builtin ops.
        ValueError: bad ``num_states`` / ``output_names``, or ``int8``.
    """
    step = as_step_model(step)
    if quantization == "int8":
        raise ValueError("step models export with quantization none, float16 or dynamic")
    model = step.model
    inferred = infer_num_states(model)
    num_states = inferred if step.num_states is None else step.num_states
    if num_states > min(len(model.inputs), len(model.outputs)) - 1:
        raise ValueError(
            f"step model {name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            f"outputs: it cannot carry {num_states} states"
        )
    names_out = step_output_names(step, num_states)
    result = convert_to_tflite(model, seq_len=None, quantization=quantization,
                               output_names=names_out, strip_names=strip_names)  # fmt: skip
    specs = {info.name: info for info in result.inputs}
    names_in = input_names(model)
    layout = StepLayout(
        name=name,
        inputs=tuple(names_in),
        outputs=tuple(names_out),
        num_states=num_states,
        input_shapes={n: tuple(specs[n].shape) for n in names_in},
        input_dtypes={n: specs[n].dtype for n in names_in},
    )
    return StepExport(step=step, result=result, layout=layout)


def link_layouts(layouts: Sequence[StepLayout], files: Mapping[str, str]) -> list[StepLayout]:
    """Fill ``feeds``: a loop model's state / constant input takes the run-once model output
    of the same name (``files`` maps a layout name to its ``.tflite`` file name)."""
    sources = {}
    for layout in layouts:
        if layout.role == RUN_ONCE:
            for out in layout.outputs:
                sources.setdefault(out, f"{files[layout.name]}:{out}")
    linked = []
    for layout in layouts:
        if layout.role == LOOP:
            wanted = [i for i, _ in layout.states] + list(layout.constants)
            feeds = {i: sources[i] for i in wanted if i in sources}
            layout = dataclasses.replace(layout, feeds=feeds)
        linked.append(layout)
    return linked


def step_examples(inputs: Any, model: keras.Model) -> list[dict[str, np.ndarray]]:
    """Per-example ``{input name: array (1, ...)}`` from step inputs.

    Accepts a list of examples, each a list of arrays in model input order or a dict by input
    name, every array with or without its batch axis of 1; or a dict ``{name: (N, ...)}``.
    """
    names = input_names(model)
    ranks = {n: len(t.shape) for n, t in zip(names, model.inputs)}

    def batched(name: str, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.ndim == ranks[name] - 1:
            array = array[None]
        if array.ndim != ranks[name] or array.shape[0] != 1:
            raise ValueError(
                f"step input {name!r}: expected {ranks[name] - 1} dims, or {ranks[name]} with "
                f"a batch of 1; got shape {array.shape}"
            )
        return array

    if isinstance(inputs, Mapping):
        columns = {n: np.asarray(inputs[n]) for n in names}
        count = len(columns[names[0]])
        return [{n: columns[n][i : i + 1] for n in names} for i in range(count)]
    examples = []
    for item in inputs:
        if isinstance(item, Mapping):
            examples.append({n: batched(n, item[n]) for n in names})
        else:
            item = list(item) if isinstance(item, (list, tuple)) else [item]
            if len(item) != len(names):
                raise ValueError(f"a step example has {len(item)} arrays; the model takes {names}")
            examples.append({n: batched(n, v) for n, v in zip(names, item)})
    return examples


def step_parity_report(exported: StepExport, inputs: Any) -> dict[str, float | int]:
    """:func:`export.parity.parity_report` of a step model on ``inputs`` (see
    :func:`step_examples`); ``argmax_agreement`` is over the first output (the logits)."""
    model = exported.step.model
    examples = step_examples(inputs, model)
    if not examples:
        raise ValueError("step parity needs at least one input example")
    # as_examples (inside parity_report) adds the batch axis back to dict examples.
    unbatched = [{n: v[0] for n, v in example.items()} for example in examples]
    return parity_report(model, exported.result.content, unbatched,
                         names_out=exported.layout.outputs)  # fmt: skip


__all__ = [
    "LOOP",
    "RUN_ONCE",
    "StepExport",
    "StepLayout",
    "as_step_model",
    "export_step_model",
    "infer_num_states",
    "link_layouts",
    "step_examples",
    "step_output_names",
    "step_parity_report",
]
