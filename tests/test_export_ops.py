"""Op listing and the builtin-only check; the naive conversions that make our path necessary."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from export.ops import (
    InvalidTFLiteModelError,
    ModelAllocationError,
    NonBuiltinOpsError,
    assert_builtin_only,
    guess_layer,
    list_ops,
    op_records,
)
from export.tflite import convert_to_tflite


@pytest.fixture(scope="module")
def dense_tflite() -> bytes:
    keras.utils.set_random_seed(0)
    x = keras.Input((3,), name="features")
    model = keras.Model(x, keras.layers.Dense(2, name="scores")(x))
    return convert_to_tflite(model).content


@pytest.fixture(scope="module")
def lstm_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(30, 4, mask_zero=True)(ids)
    h = keras.layers.LSTM(5, name="my_lstm")(h)
    return keras.Model(ids, keras.layers.Dense(2, name="logits")(h))


def test_list_ops_of_a_dense_model(dense_tflite, tmp_path):
    assert list_ops(dense_tflite) == ["FULLY_CONNECTED"]
    path = tmp_path / "dense.tflite"
    path.write_bytes(dense_tflite)
    assert list_ops(path) == ["FULLY_CONNECTED"]
    assert assert_builtin_only(str(path)) == ["FULLY_CONNECTED"]
    (record,) = op_records(dense_tflite)
    assert record.builtin and record.subgraph == 0 and record.index == 0


def test_ops_inside_while_bodies_are_listed(lstm_model):
    content = convert_to_tflite(lstm_model, seq_len=None).content
    records = op_records(content)
    assert {r.subgraph for r in records} >= {0, 1, 2}  # main graph, WHILE cond and body
    body_ops = {r.name for r in records if r.subgraph > 0}
    assert {"LOGISTIC", "TANH"} <= body_ops  # the LSTM gates run inside the loop body
    assert "WHILE" in list_ops(content)


@pytest.mark.parametrize("cut", [0, 7, 100, -40])
def test_truncated_or_foreign_file_is_a_clear_error(dense_tflite, tmp_path, cut):
    path = tmp_path / "model.tflite"
    path.write_bytes(dense_tflite[:cut] if cut else b"")
    with pytest.raises(InvalidTFLiteModelError, match=r"truncated|not a TFLite model|corrupt"):
        list_ops(path)


def test_other_files_are_rejected(tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("hello, I am not a flatbuffer at all")
    with pytest.raises(InvalidTFLiteModelError, match="not a TFLite model"):
        assert_builtin_only(text)
    with pytest.raises(InvalidTFLiteModelError, match="not found"):
        list_ops(tmp_path / "missing.tflite")


def test_guess_layer_picks_the_layer_in_the_name_scope():
    names = ["lstm", "my_lstm", "dense"]
    assert guess_layer(["functional_1/my_lstm_1/while/TensorListSetItem"], names) == "my_lstm"
    assert guess_layer(["functional_1/dense_1/MatMul"], names) == "dense"
    assert guess_layer(["arith.constant3"], names) is None


def test_naive_conversion_needs_flex_or_fails(lstm_model):
    """Why this package exists: the obvious conversions cannot run on builtin ops."""
    # Keras' own LiteRT export (SELECT_TF_OPS allowed): Flex TensorList ops.
    fn = tf.function(
        lambda ids: lstm_model(ids), input_signature=[tf.TensorSpec((None, None), tf.int32)]
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], lstm_model
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    flex_model = converter.convert()
    assert "FlexTensorListReserve" in list_ops(flex_model)
    with pytest.raises(
        NonBuiltinOpsError, match=r"FlexTensorListReserve \(layer my_lstm\)"
    ) as info:
        assert_builtin_only(flex_model, keras_model=lstm_model)
    assert {r.name for r in info.value.offending} >= {"FlexTensorListReserve"}
    with pytest.raises(RuntimeError):  # a plain LiteRT runtime cannot run it
        Interpreter(model_content=flex_model).allocate_tensors()

    # Builtins only, free batch dimension: the converter gives up.
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], lstm_model
    )
    with pytest.raises(Exception, match="element_shape to be static|tensor list"):
        converter.convert()

    # Ours: builtin only.
    ops = assert_builtin_only(convert_to_tflite(lstm_model).content, keras_model=lstm_model)
    assert not any(op.startswith("Flex") for op in ops)


def test_an_unallocatable_builtin_model_is_its_own_error(dense_tflite, monkeypatch):
    import export.ops as ops_module

    class Refusing:
        def allocate_tensors(self):
            raise RuntimeError("failed to create XNNPACK runtime\nNode number 3 failed to prepare")

    monkeypatch.setattr(ops_module, "_interpreter", lambda data: Refusing())
    with pytest.raises(
        ModelAllocationError, match=r"its ops are builtin\): failed to create XNNPACK"
    ):
        assert_builtin_only(dense_tflite)
