"""TFLite export of recurrent classifiers: builtin ops only, parity with Keras, quantization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from export.ops import list_ops
from export.parity import parity_report, run_tflite
from export.tflite import UnsupportedExportError, convert_to_tflite, portable_copy

VOCAB, T = 30, 8


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Post-padded id sequences of length 3..T; the label is the first token's class."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, T)).astype("int32")
    for row, length in zip(x, rng.integers(3, T + 1, n)):
        row[length:] = 0
    return x, (x[:, 0] % 3).astype("int32")


RECURRENT = {
    "lstm": lambda: keras.layers.LSTM(12),
    "gru": lambda: keras.layers.GRU(12),
    "simple_rnn": lambda: keras.layers.SimpleRNN(12),
    "bilstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(8)),
}


def _classifier(kind: str) -> keras.Model:
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
    h = RECURRENT[kind]()(h)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(h), name=f"{kind}_classifier")


@pytest.fixture(scope="module")
def trained():
    """One tiny trained classifier per recurrent kind (trained: well-separated logits)."""
    x, y = _data(384, seed=0)
    models = {}
    for kind in RECURRENT:
        keras.utils.set_random_seed(7)
        model = _classifier(kind)
        model.compile(
            keras.optimizers.Adam(0.02),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, epochs=8, batch_size=64, verbose=0)
        models[kind] = model
    return models


@pytest.fixture(scope="module")
def held_out():
    return _data(64, seed=1)[0]


def _assert_builtin(content: bytes) -> list[str]:
    ops = list_ops(content)
    assert ops, "no ops listed"
    assert all(not op.startswith("Flex") and op != "CUSTOM" for op in ops), ops
    return ops


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_float_dynamic_length_matches_keras(trained, held_out, kind):
    model = trained[kind]
    result = convert_to_tflite(model, seq_len=None)
    ops = _assert_builtin(result.content)
    assert "WHILE" in ops  # the recurrence stays a loop
    assert result.inputs[0].shape == (1, -1) and result.inputs[0].dtype == "int32"
    # Padded inputs (mask_zero): padding keeps the state.
    report = parity_report(model, result.content, held_out)
    assert report["max_abs_diff"] <= 1e-4
    assert report["argmax_agreement"] == 1.0
    # Unpadded inputs of several lengths, each run at its own length.
    ragged = [row[: max(1, int(np.count_nonzero(row)))] for row in held_out[:12]]
    assert {len(r) for r in ragged} >= {3, T}
    _, got = run_tflite(result.content, ragged)
    for row, out in zip(ragged, got):
        want = keras.ops.convert_to_numpy(model(row[None]))
        np.testing.assert_allclose(out["logits"], want, atol=1e-4)


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_float_fixed_length_unrolled_matches_keras(trained, held_out, kind):
    model = trained[kind]
    result = convert_to_tflite(model, seq_len=T)
    ops = _assert_builtin(result.content)
    assert "WHILE" not in ops  # unrolled
    assert result.inputs[0].shape == (1, T)
    assert parity_report(model, result.content, held_out)["max_abs_diff"] <= 1e-4
    # A short unpadded sequence is post-padded to T: same result as Keras on the short one.
    short = held_out[0][:3]
    _, got = run_tflite(result.content, [short])
    want = keras.ops.convert_to_numpy(model(short[None]))
    np.testing.assert_allclose(got[0]["logits"], want, atol=1e-4)
    # The original model is untouched.
    assert not any(getattr(layer, "unroll", False) for layer in model.layers)


@pytest.mark.parametrize("kind", ["lstm", "bilstm"])
def test_float16_parity(trained, held_out, kind):
    result = convert_to_tflite(trained[kind], seq_len=None, quantization="float16")
    _assert_builtin(result.content)
    assert parity_report(trained[kind], result.content, held_out)["max_abs_diff"] <= 1e-2


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dynamic_range_agreement(trained, held_out, kind):
    result = convert_to_tflite(trained[kind], seq_len=None, quantization="dynamic")
    _assert_builtin(result.content)
    assert parity_report(trained[kind], result.content, held_out)["argmax_agreement"] >= 0.9


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_int8_agreement(trained, held_out, kind):
    x_train, _ = _data(384, seed=0)
    result = convert_to_tflite(
        trained[kind], seq_len=T, quantization="int8", representative_inputs=x_train[:64]
    )
    ops = _assert_builtin(result.content)
    assert "QUANTIZE" in ops or "DEQUANTIZE" in ops
    assert result.outputs[0].dtype == "float32"  # float output by default
    report = parity_report(trained[kind], result.content, held_out)
    assert report["argmax_agreement"] >= 0.9


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_int8_dynamic_length_keeps_the_loop(trained, held_out, kind):
    """int8 with a WHILE loop (calibrated by export.loop_calibration, not TF's calibrator,
    which segfaults on WHILE): builtin, any length, agrees with Keras."""
    x_train, _ = _data(384, seed=0)
    result = convert_to_tflite(
        trained[kind], seq_len=None, quantization="int8", representative_inputs=x_train[:64]
    )
    ops = _assert_builtin(result.content)
    assert {"WHILE", "QUANTIZE", "DEQUANTIZE", "FULLY_CONNECTED"} <= set(ops)
    assert result.inputs[0].shape == (1, -1) and not result.unrolled
    assert parity_report(trained[kind], result.content, held_out)["argmax_agreement"] >= 0.9
    ragged = [row[: max(1, int(np.count_nonzero(row)))] for row in held_out[:16]]
    _, got = run_tflite(result.content, ragged)
    want = [keras.ops.convert_to_numpy(trained[kind](row[None])) for row in ragged]
    agree = np.mean([np.argmax(o["logits"]) == np.argmax(w) for o, w in zip(got, want)])
    assert agree >= 0.9


def test_fixed_length_with_loops_kept(trained, held_out):
    model, x_train = trained["lstm"], _data(384, seed=0)[0]
    looped = convert_to_tflite(model, seq_len=T, unroll=False)
    assert "WHILE" in _assert_builtin(looped.content) and not looped.unrolled
    assert looped.inputs[0].shape == (1, T)
    assert parity_report(model, looped.content, held_out)["max_abs_diff"] <= 1e-4
    int8 = convert_to_tflite(
        model, seq_len=T, unroll=False, quantization="int8", representative_inputs=x_train[:64]
    )
    assert "WHILE" in _assert_builtin(int8.content)
    assert parity_report(model, int8.content, held_out)["argmax_agreement"] >= 0.9


def test_int8_io_outputs_int8_with_scale(trained, held_out):
    x_train, _ = _data(384, seed=0)
    result = convert_to_tflite(
        trained["lstm"], seq_len=T, quantization="int8",
        representative_inputs=x_train[:32], int8_io=True,
    )  # fmt: skip
    out = result.outputs[0]
    assert out.dtype == "int8" and out.quantization is not None and out.quantization[0] > 0
    assert result.inputs[0].dtype == "int32"  # ids stay integers
    # run_tflite dequantizes int8 outputs, so agreement is measured on real logits.
    assert parity_report(trained["lstm"], result.content, held_out)["argmax_agreement"] >= 0.9


def test_int8_is_at_most_30_percent_of_float32():
    keras.utils.set_random_seed(3)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(16000, 64, mask_zero=True)(ids)  # ~1M weights dominate
    h = keras.layers.LSTM(64)(h)
    model = keras.Model(ids, keras.layers.Dense(2)(h))
    x = np.random.default_rng(0).integers(1, 16000, (16, 6)).astype("int32")
    f32 = convert_to_tflite(model, seq_len=6)
    i8 = convert_to_tflite(model, seq_len=6, quantization="int8", representative_inputs=x)
    assert len(f32.content) > 4 * 16000 * 64
    assert len(i8.content) <= 0.30 * len(f32.content), (len(i8.content), len(f32.content))


def test_int8_loop_does_not_grow_with_length():
    """An unrolled int8 graph holds one copy of every op per step; the WHILE loop one in all:
    at 48 steps a 100k-weight LSTM is under 30 % of float32 only with the loop."""
    keras.utils.set_random_seed(4)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(500, 32, mask_zero=True)(ids)
    h = keras.layers.LSTM(128)(h)
    model = keras.Model(ids, keras.layers.Dense(2)(h))
    x = np.random.default_rng(0).integers(1, 500, (16, 48)).astype("int32")
    f32 = len(convert_to_tflite(model, seq_len=None).content)
    loop = len(convert_to_tflite(model, quantization="int8", representative_inputs=x).content)
    unrolled = convert_to_tflite(model, seq_len=48, quantization="int8", representative_inputs=x)
    assert loop <= 0.30 * f32 < len(unrolled.content), (loop, f32, len(unrolled.content))


def test_refused_combinations(trained):
    model = trained["lstm"]
    with pytest.raises(UnsupportedExportError, match="representative_inputs"):
        convert_to_tflite(model, seq_len=T, quantization="int8")
    with pytest.raises(UnsupportedExportError, match="quantization must be one of"):
        convert_to_tflite(model, quantization="int4")
    with pytest.raises(UnsupportedExportError, match="seq_len"):
        convert_to_tflite(model, seq_len=0)


def test_stateful_layer_exports_stateless():
    keras.utils.set_random_seed(5)
    ids = keras.Input(batch_shape=(1, None), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(VOCAB, 4)(ids)
    h = keras.layers.GRU(5, stateful=True)(h)
    model = keras.Model(ids, h)
    x = _data(4, seed=2)[0]
    model(x[:1])  # moves the stored state away from zero
    result = convert_to_tflite(model, seq_len=None)
    assert "VAR_HANDLE" not in result.ops and "ASSIGN_VARIABLE" not in result.ops
    clone = portable_copy(model)
    assert not any(getattr(layer, "stateful", False) for layer in clone.layers)
    _, got = run_tflite(result.content, x[:2])
    for row, out in zip(x[:2], got):
        want = keras.ops.convert_to_numpy(clone(row[None]))
        np.testing.assert_allclose(out[next(iter(out))], want, atol=1e-5)
