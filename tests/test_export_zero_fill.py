"""export.zero_fill: all-zero loop buffers become FILL ops; outputs stay bit-for-bit equal."""

from __future__ import annotations

import keras
import numpy as np

from export import tflite
from export.ops import list_ops
from export.parity import run_tflite
from export.zero_fill import fill_zero_constants

T, UNITS = 40, 32


def _sequence_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    x = keras.Input((None, 4), name="x")
    h = keras.layers.LSTM(UNITS, return_sequences=True)(x)
    return keras.Model(x, keras.layers.Dense(3, name="y")(h))


def _zero_bytes(content: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    return sum(
        len(b.data)
        for b in model.buffers
        if b.data is not None and len(b.data) >= 1024 and not np.any(np.asarray(b.data))
    )


def test_fixed_length_loop_buffers_are_filled_at_run_time(monkeypatch):
    model = _sequence_model()
    exported = tflite.convert_to_tflite(model, seq_len=T, unroll=False).content
    # what the converter wrote, before the exporter's filling: the loop's (T, 1, UNITS)
    # output buffer as constant zeros
    monkeypatch.setattr(tflite, "fill_zero_constants", lambda content: content)
    raw = tflite.convert_to_tflite(model, seq_len=T, unroll=False, strip_names=False).content
    assert _zero_bytes(raw) >= T * UNITS * 4 and "FILL" not in list_ops(raw)
    filled = fill_zero_constants(raw)
    assert "FILL" in list_ops(filled) and _zero_bytes(filled) == 0
    assert len(filled) <= len(raw) - T * UNITS * 4 + 512
    assert "FILL" in list_ops(exported) and _zero_bytes(exported) == 0
    x = np.random.default_rng(0).normal(size=(3, T, 4)).astype("float32")
    _, before = run_tflite(raw, x)
    _, after = run_tflite(filled, x)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b["y"], a["y"])


def test_model_without_zero_constants_is_returned_unchanged():
    model = _sequence_model()
    content = tflite.convert_to_tflite(model, seq_len=None).content  # dynamic: FILL already
    assert fill_zero_constants(content) is content
