"""seqlayers.PositionEmbedding: adds its table, serialises, refuses a dynamic length; in the
captioner it makes grid cells of identical content distinguishable to the attention."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import seqlayers
from apps.captioning.model import _apply_head, _make_head, build_encoder, build_init_model


def test_adds_one_learned_vector_per_position_and_keeps_the_mask():
    layer = seqlayers.PositionEmbedding(name="position")
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    y = np.asarray(layer(x))
    table = np.asarray(layer.positions)
    assert table.shape == (5, 4) and np.abs(table).max() > 0
    np.testing.assert_allclose(y - x, np.broadcast_to(table, (3, 5, 4)), atol=1e-6)
    mask = np.array([[True] * 5, [True, True, False, False, False], [False] * 5])
    assert np.array_equal(np.asarray(layer.compute_mask(x, mask)), mask)


def test_round_trips_through_a_saved_model(tmp_path):
    inputs = keras.Input((6, 3))
    model = keras.Model(inputs, seqlayers.PositionEmbedding(initializer="random_normal")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.ones((2, 6, 3), "float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_a_dynamic_length_is_refused():
    with pytest.raises(ValueError, match="static"):
        seqlayers.PositionEmbedding()(keras.Input((None, 3)))


def _captioner(position: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    encoder = build_encoder("cnn", 32, 1, filters=4)
    layers = _make_head(12, tuple(encoder.output.shape[1:]), "gru", 8, 6, 5, 0.0, 0)
    if not position:  # a run saved before the layer existed
        layers["position"] = None
    image = keras.Input((32, 32, 1), name="image")
    caption = keras.Input((None,), dtype="int32", name="caption")
    logits = _apply_head(layers, encoder(image), caption)
    return keras.Model([image, caption], logits, name="captioner")


def test_captioner_values_tell_identical_grid_cells_apart():
    blank = np.zeros((1, 32, 32, 1), "float32")
    with_positions = np.asarray(build_init_model(_captioner(True))(blank)[0])[0]  # (16, units)
    without = np.asarray(build_init_model(_captioner(False))(blank)[0])[0]
    # A blank image: every cell has the same content. Without positions the attention's values
    # are one vector repeated; with them, all 16 differ.
    assert np.ptp(without, axis=0).max() < 1e-6
    distinct = {tuple(np.round(row, 5)) for row in with_positions}
    assert len(distinct) == 16


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_exports_to_builtin_tflite_with_parity(quantization):
    from export.ops import list_ops
    from export.parity import parity_report
    from export.tflite import convert_to_tflite

    keras.utils.set_random_seed(0)
    features = keras.Input((16, 4), name="features")
    h = seqlayers.PositionEmbedding(name="position")(features)
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(8, activation="relu")(h))
    model = keras.Model(features, keras.layers.Dense(3)(h))
    x = np.random.default_rng(0).normal(size=(32, 16, 4)).astype("float32")
    result = convert_to_tflite(model, seq_len=16, quantization=quantization,
                               representative_inputs=x if quantization == "int8" else None)  # fmt: skip
    ops = list_ops(result.content)
    assert "ADD" in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    report = parity_report(model, result.content, x[:8])
    assert report["max_abs_diff"] <= (1e-4 if quantization == "none" else 0.05)
    assert report["argmax_agreement"] == 1.0
