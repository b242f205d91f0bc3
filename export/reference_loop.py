"""Generate with exported one-step TFLite models, as a phone app would: NumPy + LiteRT only.

This module imports no TensorFlow and no Keras: only NumPy, ``ai_edge_litert``,
:mod:`export.ops` (its file checks) and :mod:`apps.common.decoding` (NumPy-only). It reads
``manifest.json`` to learn how each step model loops (which input is the token, which output
feeds which state, what stays constant, which encoder output fills which input — see
:class:`export.steps.StepLayout`), and runs the very decoders the apps use (``greedy`` /
``sample`` / ``beam_search``) over the ``.tflite`` file. It is the reference a phone
implementation can be checked against, token for token.

Example:

>>> loop = StepLoop.from_export("RUN/export", "step")                  # doctest: +SKIP
>>> loop.greedy(start_id=5, max_len=200)                              # doctest: +SKIP
[17, 3, 3, 9, ...]
>>> encoder = TFLiteFunction.from_export("RUN/export", "encoder")     # doctest: +SKIP
>>> decoder = StepLoop.from_export("RUN/export", "decoder_step")      # doctest: +SKIP
>>> states = decoder.initial_states(encoder(source_ids=np.array([[4, 8, 15, 0]])))
>>> decoder.greedy(start_id=2, max_len=50, states=states, end_id=3)   # doctest: +SKIP

Command line (prints the generated ids as one JSON list)::

    python -m export.reference_loop RUN/export --start 5 --max-len 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import decoding
from export.ops import InvalidTFLiteModelError, read_model_bytes

MANIFEST_NAME = "manifest.json"
SIGNATURE_KEY = "serving_default"


def _load_interpreter(model: str | os.PathLike | bytes, num_threads: int) -> Any:
    """A LiteRT interpreter of ``model``; a truncated or foreign file is an
    :class:`~export.ops.InvalidTFLiteModelError` (a ``ValueError``) naming the file."""
    from ai_edge_litert.interpreter import Interpreter

    data = read_model_bytes(model)  # missing, empty, or no 'TFL3' identifier
    try:
        return Interpreter(model_content=data, num_threads=num_threads)
    except (ValueError, RuntimeError) as err:  # the flatbuffer verifier's verdict
        where = "the given bytes" if isinstance(model, (bytes, bytearray)) else str(model)
        first = " ".join(str(err).split())[:160] or type(err).__name__
        raise InvalidTFLiteModelError(
            f"{where} is truncated or not a valid .tflite file ({len(data)} bytes; {first})"
        ) from None


def find_export(folder: str | os.PathLike, name: str, quantization: str = "none") -> dict[str, Any]:
    """The manifest entry of step model ``name`` (or of the file ``name``) in an export folder.

    Raises:
        FileNotFoundError: no ``manifest.json`` in ``folder``.
        KeyError: no such step model (the message lists the ones present).
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {folder} (export the run first)")
    exports = json.loads(path.read_text(encoding="utf-8")).get("exports", {})
    if name in exports:
        return exports[name]
    matches = [
        e
        for e in exports.values()
        if isinstance(e.get("step"), Mapping) and e["step"].get("name") == name
    ]
    chosen = [e for e in matches if e.get("quantization") == quantization] or matches
    if not chosen:
        known = sorted({e["step"]["name"] for e in exports.values() if e.get("step")})
        raise KeyError(f"no step model {name!r} in {path}; it has {known or 'none'}")
    return chosen[0]


class TFLiteFunction:
    """One TFLite signature as a function of NumPy arrays (batch 1; inputs resized to fit).

    Args:
        model: path or bytes of the ``.tflite`` file.
        num_threads: interpreter threads (1, as a phone app typically uses).
        signature_key: the signature to run.

    Call arguments:
        **inputs: one array per input name, batch axis included; cast to the input dtypes.

    Returns:
        ``{output name: array}``.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes,
        *,
        num_threads: int = 1,
        signature_key: str = SIGNATURE_KEY,
    ) -> None:
        self._interpreter = _load_interpreter(model, num_threads)
        self._runner = self._interpreter.get_signature_runner(signature_key)
        details = self._runner.get_input_details()
        self.input_dtypes = {n: np.dtype(d["dtype"]) for n, d in details.items()}
        self.input_shapes = {
            n: tuple(int(s) for s in d.get("shape_signature", d["shape"]))
            for n, d in details.items()
        }

    @classmethod
    def from_export(
        cls, folder: str | os.PathLike, name: str, *, quantization: str = "none", **kwargs: Any
    ) -> TFLiteFunction:
        """The exported model ``name`` (a step model name or a file name) of an export folder."""
        entry = find_export(folder, name, quantization)
        return cls(Path(folder) / entry["file"], **kwargs)

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        missing = sorted(set(self.input_dtypes) - set(inputs))
        if missing:
            raise ValueError(
                f"missing inputs {missing}; the model takes {sorted(self.input_dtypes)}"
            )
        feed = {n: np.asarray(inputs[n]).astype(self.input_dtypes[n]) for n in self.input_dtypes}
        return {k: np.asarray(v) for k, v in self._runner(**feed).items()}


class StepLoop:
    """A one-step TFLite model as the step function of :mod:`apps.common.decoding`.

    The decoders' *states* are the model's states followed by its constants (encoder values,
    attention keys, masks), batch-first; constants come back unchanged. The exported model runs
    at batch 1, so a batch (or beam) of ``B`` rows is ``B`` invocations per step. The first
    input must be a token id (``(1,)`` or ``(1, 1)``); a frame-input model (music piano roll)
    is run with :class:`TFLiteFunction` directly.

    Args:
        model: path or bytes of the step ``.tflite`` file.
        layout: its manifest ``"step"`` section (:meth:`export.steps.StepLayout.as_dict`).
        num_threads: interpreter threads.

    Attributes:
        last_extras: the extra outputs (e.g. attention weights) of the last step, per output
            name, stacked over the batch rows.
    """

    def __init__(
        self, model: str | os.PathLike | bytes, layout: Mapping[str, Any], *, num_threads: int = 1
    ) -> None:
        if layout.get("role") != "loop":
            raise ValueError(
                f"{layout.get('name')!r} is not a loop model (role {layout.get('role')!r}); "
                "run it once with TFLiteFunction"
            )
        self.layout = dict(layout)
        self.function = TFLiteFunction(model, num_threads=num_threads)
        self.token_input = layout["token_input"]
        self.logits_output = layout["logits_output"]
        self.states = [dict(s) for s in layout["states"]]
        self.constants = [dict(c) for c in layout["constants"]]
        self.extra_outputs = list(layout["extra_outputs"])
        self.last_extras: dict[str, np.ndarray] = {}

    @classmethod
    def from_export(
        cls, folder: str | os.PathLike, name: str = "step", *, quantization: str = "none",
        num_threads: int = 1,
    ) -> StepLoop:  # fmt: skip
        """Step model ``name`` of an export folder, with its layout from ``manifest.json``."""
        entry = find_export(folder, name, quantization)
        if not isinstance(entry.get("step"), Mapping):
            raise KeyError(f"{entry.get('file')} is not a step model (no 'step' in its manifest)")
        return cls(Path(folder) / entry["file"], entry["step"], num_threads=num_threads)

    def initial_states(
        self, sources: Mapping[str, np.ndarray] | None = None, batch_size: int = 1
    ) -> list[np.ndarray]:
        """Decoder states to start from: each state / constant from ``sources`` (e.g. the
        encoder's outputs, by input name) when present, else zeros (constants must be given)."""
        sources = dict(sources or {})
        out = []
        for spec in self.states:
            if spec["input"] in sources:
                out.append(np.asarray(sources[spec["input"]], dtype=spec["dtype"]))
            else:
                shape = [batch_size] + [int(d) for d in spec["shape"][1:]]
                out.append(np.zeros(shape, dtype=spec["dtype"]))
        for spec in self.constants:
            if spec["input"] not in sources:
                raise ValueError(
                    f"constant input {spec['input']!r} needs a value (from {spec['from']})"
                )
            out.append(np.asarray(sources[spec["input"]], dtype=spec["dtype"]))
        return out

    def step_fn(
        self, tokens: np.ndarray, states: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(tokens (B,), [*states, *constants]) -> (logits (B, V), [*new states,
        *constants])``: the :data:`apps.common.decoding.StepFn` contract."""
        tokens = np.asarray(tokens).reshape(-1)
        n = len(self.states)
        if len(states) != n + len(self.constants):
            raise ValueError(
                f"expected {n} states and {len(self.constants)} constants, got {len(states)} arrays"
            )
        token_shape = self.function.input_shapes[self.token_input]
        logits, new_states = [], [[] for _ in range(n)]
        extras: dict[str, list[np.ndarray]] = {name: [] for name in self.extra_outputs}
        for row, token in enumerate(tokens):
            feed = {self.token_input: np.reshape(token, token_shape)}
            for spec, value in zip(self.states + self.constants, states):
                feed[spec["input"]] = np.asarray(value)[row : row + 1]
            out = self.function(**feed)
            logits.append(out[self.logits_output].reshape(1, -1))
            for k, spec in enumerate(self.states):
                new_states[k].append(out[spec["output"]])
            for name in self.extra_outputs:
                extras[name].append(out[name])
        self.last_extras = {k: np.concatenate(v) for k, v in extras.items() if v}
        carried = [np.concatenate(s) for s in new_states]
        return np.concatenate(logits), carried + [np.asarray(c) for c in states[n:]]

    def _start(self, states: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        return list(states) if states is not None else self.initial_states()

    def greedy(
        self, start_id: int, max_len: int, *, states: Sequence[np.ndarray] | None = None,
        end_id: int | None = None,
    ) -> list[int]:  # fmt: skip
        """Greedy ids after ``start_id`` (one row; ``states`` default to :meth:`initial_states`)."""
        return decoding.greedy(self.step_fn, self._start(states), np.array([start_id]),
                               end_id, max_len)[0]  # fmt: skip

    def sample(
        self, start_id: int, max_len: int, *, states: Sequence[np.ndarray] | None = None,
        temperature: float = 1.0, top_k: int | None = None, end_id: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> list[int]:  # fmt: skip
        """Sampled ids after ``start_id`` (see :func:`apps.common.decoding.sample`)."""
        return decoding.sample(self.step_fn, self._start(states), np.array([start_id]), max_len,
                               temperature=temperature, top_k=top_k, end_id=end_id,
                               rng=rng)[0]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m export.reference_loop EXPORT_DIR --start ID --max-len N``: print the ids."""
    parser = argparse.ArgumentParser(
        prog="python -m export.reference_loop",
        description="Generate token ids with an exported one-step TFLite model (NumPy + LiteRT).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR", help="folder with manifest.json")
    parser.add_argument("--name", default="step", help="step model name in the manifest")
    parser.add_argument("--start", type=int, required=True, help="first input token id")
    parser.add_argument("--max-len", type=int, default=100, help="tokens to generate")
    parser.add_argument("--end", type=int, default=None, help="stop at this id")
    parser.add_argument("--temperature", type=float, default=None, help="sample (default greedy)")
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k best")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args(argv)
    try:
        loop = StepLoop.from_export(args.export_dir, args.name)
        if loop.constants:
            raise ValueError(
                f"{args.name!r} needs constants {[c['input'] for c in loop.constants]} "
                "(an encoder's outputs): use StepLoop from Python"
            )
        if args.temperature is None and args.top_k is None:
            ids = loop.greedy(args.start, args.max_len, end_id=args.end)
        else:
            ids = loop.sample(args.start, args.max_len, temperature=args.temperature or 1.0,
                              top_k=args.top_k, end_id=args.end, rng=args.seed)  # fmt: skip
    except (OSError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    print(json.dumps(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
