"""Export a Keras model as a TensorFlow SavedModel with named serving signatures.

Signatures:

``serving_default``
    The model on integer ids (or whatever its inputs are): inputs named after the Keras inputs,
    batch and sequence length free, outputs named after the Keras outputs.
``serve_text`` (optional)
    Raw strings ``(batch,)`` → the same outputs, when a :class:`TextSignature` is given. The
    tokenisation is a function of TF string ops (and lookup tables) baked into the graph, so a
    fresh process runs it with ``tf.saved_model.load`` alone — no rnnsuite, no Keras code.

Example:

>>> export_saved_model(model, "DIR/export/saved_model")                # doctest: +SKIP
>>> loaded = tf.saved_model.load("DIR/export/saved_model")            # fresh process
>>> loaded.signatures["serving_default"](token_ids=tf.constant([[5, 9, 2]]))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from export.tflite import (
    SIGNATURE_KEY,
    export_input_specs,
    portable_copy,
    serving_fn,
    write_saved_model,
)

TEXT_SIGNATURE_KEY = "serve_text"


@dataclasses.dataclass
class TextSignature:
    """How raw strings become model inputs, with TF ops only.

    Args:
        text_to_ids: ``tf.Tensor[string] (batch,) -> tf.Tensor[int] (batch, time)``, written
            with TF string / lookup ops (dense, padded with the padding id).
        resources: trackable TF resources the function uses (lookup tables), so that they are
            saved with the model.
        input_name: the signature's input name.
    """

    text_to_ids: Callable[[tf.Tensor], tf.Tensor]
    resources: Sequence[Any] = ()
    input_name: str = "text"


def export_saved_model(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    text_signature: TextSignature | None = None,
) -> dict[str, dict[str, Any]]:
    """Write ``model`` as a SavedModel at ``directory`` (which must not exist yet).

    Args:
        model: the Keras model (stateful recurrent layers are exported stateless).
        directory: the SavedModel folder to create.
        text_signature: adds the ``serve_text`` signature on raw strings.

    Returns:
        ``{signature_key: {"inputs": [...], "outputs": [...]}}`` with names, shapes
        (``-1`` = free) and dtypes, read back from the written SavedModel.
    """
    directory = Path(directory)
    portable = portable_copy(model, seq_len=None)
    specs, _ = export_input_specs(portable, seq_len=None, batch_size=None)
    extra = {}
    track: list[Any] = []
    if text_signature is not None:
        if len(portable.inputs) != 1:
            raise ValueError("a text signature needs a model with exactly one (ids) input")
        serve = serving_fn(portable)
        ids_dtype = tf.as_dtype(portable.inputs[0].dtype)

        def serve_text(text):
            ids = tf.cast(text_signature.text_to_ids(text), ids_dtype)
            return serve(ids)

        extra[TEXT_SIGNATURE_KEY] = (
            serve_text,
            [tf.TensorSpec((None,), tf.string, name=text_signature.input_name)],
        )
        track.extend(text_signature.resources)
    write_saved_model(portable, directory, specs, extra_endpoints=extra, track=track)
    return describe_signatures(directory)


def _spec_info(name: str, spec: tf.TensorSpec) -> dict[str, Any]:
    shape = [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return {"name": name, "shape": shape, "dtype": spec.dtype.name}


def describe_signatures(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Inputs and outputs of every signature of a SavedModel (loads it with TF only)."""
    loaded = tf.saved_model.load(str(directory))
    result = {}
    for key, fn in loaded.signatures.items():
        _, kw_specs = fn.structured_input_signature
        result[key] = {
            "inputs": [_spec_info(n, s) for n, s in sorted(kw_specs.items())],
            "outputs": [_spec_info(n, s) for n, s in sorted(fn.structured_outputs.items())],
        }
    return dict(sorted(result.items()))


__all__ = [
    "SIGNATURE_KEY",
    "TEXT_SIGNATURE_KEY",
    "TextSignature",
    "describe_signatures",
    "export_saved_model",
]
