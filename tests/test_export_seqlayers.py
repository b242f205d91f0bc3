"""TFLite export of classifiers built on seqlayers cells: builtin ops, parity, int8."""

from __future__ import annotations

import keras
import numpy as np
import pytest

seqlayers = pytest.importorskip("seqlayers")

from export.ops import list_ops
from export.parity import parity_report
from export.tflite import convert_to_tflite

VOCAB, T, UNITS = 30, 8, 8

LAYERS = {
    "vanilla": lambda: seqlayers.VanillaRNN(UNITS),
    "mut1": lambda: seqlayers.MUT1(UNITS),
    "mut2": lambda: seqlayers.MUT2(UNITS),
    "mut3": lambda: seqlayers.MUT3(UNITS),
    "genotype_rnn": lambda: seqlayers.GenotypeRNN(UNITS, "lstm"),
    "genotype_cell": lambda: keras.layers.RNN(seqlayers.GenotypeCell(UNITS, "mut2")),
    "bi_vanilla": lambda: keras.layers.Bidirectional(seqlayers.VanillaRNN(UNITS // 2)),
}


def _data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, T)).astype("int32")
    for row, length in zip(x, rng.integers(3, T + 1, n)):
        row[length:] = 0
    return x


def _model(kind: str, mask: bool) -> keras.Model:
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(VOCAB, UNITS, mask_zero=mask)(ids)
    h = LAYERS[kind]()(h)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(h))


@pytest.fixture(scope="module")
def trained():
    x = _data(256, seed=0)
    y = (x[:, 0] % 3).astype("int32")
    models = {}
    for kind in LAYERS:
        keras.utils.set_random_seed(11)
        model = _model(kind, mask=True)
        model.compile(
            keras.optimizers.Adam(0.02),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, epochs=6, batch_size=64, verbose=0)
        models[kind] = model
    return models


def _builtin(content: bytes) -> list[str]:
    ops = list_ops(content)
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
    return ops


@pytest.mark.parametrize("kind", list(LAYERS))
def test_fixed_length_float_and_int8(trained, kind):
    model, held_out = trained[kind], _data(48, seed=1)
    result = convert_to_tflite(model, seq_len=T)
    assert "WHILE" not in _builtin(result.content)
    assert parity_report(model, result.content, held_out)["max_abs_diff"] <= 1e-4

    int8 = convert_to_tflite(
        model, seq_len=T, quantization="int8", representative_inputs=_data(64, seed=0)
    )
    _builtin(int8.content)
    assert parity_report(model, int8.content, held_out)["argmax_agreement"] >= 0.9


@pytest.mark.parametrize("kind", list(LAYERS))
def test_dynamic_length_float(trained, kind):
    model, held_out = trained[kind], _data(48, seed=1)
    result = convert_to_tflite(model, seq_len=None)
    assert "WHILE" in _builtin(result.content)
    assert parity_report(model, result.content, held_out)["max_abs_diff"] <= 1e-4
    # Weight-only quantizations (float16, dynamic range) do not depend on the cell and are
    # covered on keras layers in test_export_tflite.py; dynamic range would leave these tiny
    # cells (< 1024 weights per tensor) in float anyway.


@pytest.mark.parametrize("kind", list(LAYERS))
def test_dynamic_length_int8(trained, kind):
    """Each cell's WHILE loop quantized to int8 (export.loop_calibration) and still agreeing."""
    model, held_out = trained[kind], _data(48, seed=1)
    int8 = convert_to_tflite(
        model, seq_len=None, quantization="int8", representative_inputs=_data(64, seed=0)
    )
    ops = _builtin(int8.content)
    assert "WHILE" in ops and "QUANTIZE" in ops
    assert parity_report(model, int8.content, held_out)["argmax_agreement"] >= 0.9
