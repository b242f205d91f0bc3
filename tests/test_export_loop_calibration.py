"""export.loop_calibration: int8 statistics of WHILE loops, recorded by replaying the loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from export.loop_calibration import LoopCalibrator, has_while
from export.tflite import as_examples, convert_to_tflite, portable_copy


def _float_while_model(units: int = 4):
    keras.utils.set_random_seed(2)
    x = keras.Input((None, 3), name="x")
    seq = keras.layers.SimpleRNN(units, return_sequences=True, name="rnn")(x)
    model = keras.Model(x, seq)
    return model, convert_to_tflite(model, seq_len=None, strip_names=False).content


def _stats(content: bytes) -> dict[tuple[int, int], tuple[float, float, tuple[int, ...]]]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    out = {}
    for g, subgraph in enumerate(model.subgraphs):
        for t, tensor in enumerate(subgraph.tensors):
            q = tensor.quantization
            if q is not None and q.min is not None and len(q.min):
                out[(g, t)] = (float(q.min[0]), float(q.max[0]), tuple(tensor.shape))
    return out


def test_body_statistics_cover_every_step():
    """The state the loop body hands on has exactly the range of all the states Keras
    computes over every step of every example — not only the last iteration's."""
    model, content = _float_while_model()
    assert has_while(content)
    rng = np.random.default_rng(0)
    examples = [rng.normal(size=(n, 3)).astype("float32") for n in (5, 9, 7)]
    fed = as_examples(examples, ["x"])
    calibrated = LoopCalibrator(content).calibrate(lambda: iter(fed))
    states = np.concatenate([keras.ops.convert_to_numpy(model(e["x"]))[0] for e in fed])
    want = (float(states.min()), float(states.max()))
    body = [v for (g, _), v in _stats(calibrated).items() if g > 0 and v[2] == (1, 4)]
    assert body, "no statistics recorded inside the loop body"
    assert any(abs(lo - want[0]) < 1e-5 and abs(hi - want[1]) < 1e-5 for lo, hi, _ in body)
    # the last step alone has a narrower range: the replay saw every iteration
    last = np.stack([keras.ops.convert_to_numpy(model(e["x"]))[0, -1] for e in fed])
    assert (last.min(), last.max()) != pytest.approx(want)


def test_model_without_loop_is_left_to_tf():
    x = keras.Input((3,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    content = convert_to_tflite(portable_copy(model), seq_len=None).content
    assert not has_while(content)


def test_empty_dataset_is_refused():
    _, content = _float_while_model()
    with pytest.raises(ValueError, match="empty"):
        LoopCalibrator(content).calibrate(lambda: iter([]))
