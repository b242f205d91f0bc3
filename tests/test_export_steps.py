"""One-step generator models: builtin-only TFLite, parity, and the NumPy + LiteRT reference loop.

A tiny character LM per suite cell (``ids -> Embedding -> RNN -> Dense``) and its one-step twin
(``[token (B, 1), states...] -> [logits (B, V), new states...]``, the same layers with
``return_state=True, unroll=True``); greedy generation through the exported step file must
equal Keras token for token: the Keras step model under :func:`apps.common.decoding.greedy`
and re-running the whole prefix through the sequence model. Then the attention decoder step
(``seqlayers.AttentionDecoderCell``) with precomputed keys, and its encoder's wiring.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

seqlayers = pytest.importorskip("seqlayers")

from apps.common import decoding
from export.app_hooks import StepModel
from export.manifest import add_to_manifest, export_entry
from export.ops import list_ops
from export.reference_loop import StepLoop, TFLiteFunction
from export.steps import (
    export_step_model,
    infer_num_states,
    link_layouts,
    step_examples,
    step_parity_report,
)

V, E, U, GENERATED = 11, 8, 8, 30
CELLS = {
    "vanilla": lambda **kw: seqlayers.VanillaRNN(U, **kw),
    "gru": lambda **kw: keras.layers.GRU(U, **kw),
    "lstm": lambda **kw: keras.layers.LSTM(U, **kw),
    "mut1": lambda **kw: seqlayers.MUT1(U, **kw),  # input width == units
    "genotype": lambda **kw: seqlayers.GenotypeRNN(U, "lstm", **kw),
}


def char_lm(kind: str, seed: int = 3) -> keras.Model:
    """``ids (B, T) -> logits (B, T, V)``; large output weights so greedy has no near-ties."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(V, E, name="embedding", embeddings_initializer="random_normal")(ids)
    x = CELLS[kind](return_sequences=True, name="rnn")(x)
    dense = keras.layers.Dense(
        V, name="logits", kernel_initializer=keras.initializers.RandomNormal(stddev=3.0)
    )
    return keras.Model(ids, dense(x), name=f"{kind}_lm")


def step_model(model: keras.Model) -> keras.Model:
    """The one-step twin of :func:`char_lm`'s model, sharing its embedding and output layers."""
    rnn = model.get_layer("rnn")
    config = dict(rnn.get_config(), return_state=True, unroll=True, name="rnn_step")
    one_step = type(rnn).from_config(config)
    sizes = rnn.cell.state_size
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    token = keras.Input((1,), dtype="int32", name="token")
    states = [keras.Input((int(s),), name=f"state_{i}") for i, s in enumerate(sizes)]
    x, *new_states = one_step(model.get_layer("embedding")(token), initial_state=states)
    one_step.set_weights(rnn.get_weights())
    logits = keras.layers.Reshape((V,), name="next_logits")(model.get_layer("logits")(x))
    return keras.Model([token, *states], [logits, *new_states], name="lm_step")


def keras_step_fn(step: keras.Model):
    def step_fn(tokens, states):
        logits, *new = step([np.asarray(tokens, "int32").reshape(-1, 1), *states], training=False)
        return np.asarray(logits), [np.asarray(s) for s in new]

    return step_fn


def zero_states(step: keras.Model) -> list[np.ndarray]:
    return [np.zeros((1, int(t.shape[-1])), "float32") for t in step.inputs[1:]]


def refeed_greedy(model: keras.Model, start: int, length: int) -> list[int]:
    """Greedy ids by re-running the whole prefix through the sequence model every step."""
    ids = [start]
    for _ in range(length):
        logits = model(np.array([ids], "int32"), training=False)
        ids.append(int(np.asarray(logits)[0, -1].argmax()))
    return ids[1:]


def real_step_inputs(step: keras.Model, tokens: list[int]) -> list[list[np.ndarray]]:
    """``[token (1, 1), *states]`` along ``tokens`` from zero states (non-zero states too)."""
    fn, states, out = keras_step_fn(step), zero_states(step), []
    for token in tokens:
        out.append([np.array([[token]], "int32"), *states])
        _, states = fn(np.array([token]), states)
    return out


def write_step_export(folder: Path, exported, name: str) -> Path:
    """The file + manifest entry the CLI writes for one step model."""
    path = folder / f"{name}.tflite"
    path.write_bytes(exported.result.content)
    add_to_manifest(folder, export_entry(
        path, format="tflite", signatures={}, quantization="none", seq_len=1, batch_size=1,
        extra={"step": exported.layout.as_dict()},
    ))  # fmt: skip
    return path


@pytest.mark.parametrize("kind", list(CELLS))
def test_step_export_is_builtin_matches_keras_and_loops_like_keras(kind, tmp_path):
    model = char_lm(kind)
    step = step_model(model)
    n_states = 2 if kind in ("lstm", "genotype") else 1
    assert infer_num_states(step) == n_states

    exported = export_step_model(step, "step")
    ops = list_ops(exported.result.content)
    assert "WHILE" not in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    layout = exported.layout.as_dict()
    assert layout["role"] == "loop" and layout["token_input"] == "token"
    assert layout["logits_output"] == "next_logits"
    assert [(s["input"], s["output"], s["shape"]) for s in layout["states"]] == [
        (f"state_{i}", f"new_state_{i}", [1, U]) for i in range(n_states)
    ]
    assert layout["constants"] == [] and layout["extra_outputs"] == []

    report = step_parity_report(exported, real_step_inputs(step, [1, 4, 7, 2, 9, 9, 3]))
    assert report["max_abs_diff"] <= 1e-4 and report["examples"] == 7

    keras_ids = decoding.greedy(keras_step_fn(step), zero_states(step), np.array([1]), None,
                                GENERATED)[0]  # fmt: skip
    assert keras_ids == refeed_greedy(model, 1, GENERATED)
    assert len(set(keras_ids)) >= 3  # a real sequence, not one token repeated

    write_step_export(tmp_path, exported, "step")
    loop = StepLoop.from_export(tmp_path, "step")
    assert loop.greedy(1, GENERATED) == keras_ids
    # Sampling draws from the same distributions: same seed, same ids as over Keras.
    sampled = loop.sample(1, 12, temperature=0.8, top_k=4, rng=5)
    assert sampled == decoding.sample(keras_step_fn(step), zero_states(step), np.array([1]), 12,
                                      temperature=0.8, top_k=4, rng=5)[0]  # fmt: skip


def test_reference_loop_runs_without_tensorflow(tmp_path):
    """The reference loop is what a phone does: NumPy + LiteRT, TensorFlow/Keras unimportable."""
    model = char_lm("lstm")
    step = step_model(model)
    write_step_export(tmp_path, export_step_model(step, "step"), "step")
    script = textwrap.dedent(
        """
        import json, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "seqlayers"):
                    raise ImportError(f"blocked: {name}")
        sys.meta_path.insert(0, Block())
        from export.reference_loop import main
        sys.exit(main([sys.argv[1], "--start", "1", "--max-len", sys.argv[2]]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(GENERATED)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = refeed_greedy(model, 1, GENERATED)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected


# ------------------------------------------------------------------- attention decoder step
S, DV, A, DIN = 5, 6, 7, 4


def attention_models(inner: str):
    """``decoder_step``: ``[token (B,), states.., values, keys, mask] -> [logits, states..,
    weights]`` around ``AttentionDecoderCell.step``; ``encoder``: ``[values, source_mask] ->
    [values, keys, source_mask, state_0..]`` (keys precomputed once)."""
    keras.utils.set_random_seed(8)
    cell = seqlayers.AttentionDecoderCell(
        keras.layers.LSTMCell(U) if inner == "lstm" else keras.layers.GRUCell(U),
        attention_units=A, name="attention",
    )  # fmt: skip
    embedding = keras.layers.Embedding(V, DIN, name="target_embedding")
    readout = keras.layers.Dense(
        V, name="logits", kernel_initializer=keras.initializers.RandomNormal(stddev=3.0)
    )
    n = 2 if inner == "lstm" else 1
    token = keras.Input((), dtype="int32", name="token")
    states = [keras.Input((U,), name=f"state_{i}") for i in range(n)]
    values = keras.Input((None, DV), name="values")
    keys = keras.Input((None, A), name="keys")
    mask = keras.Input((None,), dtype="bool", name="source_mask")
    output, new_states, weights = cell.step(embedding(token), states, values, keys=keys, mask=mask)
    step = keras.Model(
        [token, *states, values, keys, mask], [readout(output), *new_states, weights],
        name="decoder_step",
    )  # fmt: skip

    class PrecomputeKeys(keras.layers.Layer):
        def call(self, x):
            return cell.precompute_keys(x)

    class Bridge(keras.layers.Layer):
        def call(self, x, m):
            m = keras.ops.cast(m, x.dtype)[..., None]
            return keras.ops.tanh(keras.ops.sum(x * m, axis=1) / keras.ops.sum(m, axis=1))

    enc_values = keras.Input((None, DV), name="values")
    enc_mask = keras.Input((None,), dtype="bool", name="source_mask")
    init = [
        keras.layers.Dense(U, name=f"init_{i}")(Bridge()(enc_values, enc_mask)) for i in range(n)
    ]
    encoder = keras.Model(
        [enc_values, enc_mask],
        [enc_values, PrecomputeKeys()(enc_values), enc_mask, *init], name="encoder",
    )  # fmt: skip
    return encoder, step


def encoder_inputs(seed: int):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((1, S, DV)).astype("float32")
    mask = np.array([[True] * (S - 2) + [False] * 2])
    return {"values": values, "source_mask": mask}


@pytest.mark.parametrize("inner", ["gru", "lstm"])
def test_attention_decoder_step_exports_builtin_with_parity_and_loops(inner, tmp_path):
    encoder, step = attention_models(inner)
    n = 2 if inner == "lstm" else 1
    assert infer_num_states(step) == n and infer_num_states(encoder) == 0

    names = ["values", "keys", "source_mask", *[f"state_{i}" for i in range(n)]]
    exported = {
        "encoder": export_step_model(StepModel(encoder, output_names=names), "encoder"),
        "decoder_step": export_step_model(step, "decoder_step"),
    }
    for result in exported.values():
        ops = list_ops(result.result.content)
        assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
    layouts = link_layouts([e.layout for e in exported.values()],
                           {"encoder": "encoder.tflite", "decoder_step": "decoder_step.tflite"})  # fmt: skip
    decoder_layout = layouts[1].as_dict()
    # Outputs keep their Keras names (made unique), the states' are new_<state input>.
    assert decoder_layout["outputs"] == ["logits", *[f"new_state_{i}" for i in range(n)],
                                         "attention"]  # fmt: skip
    assert decoder_layout["extra_outputs"] == ["attention"]
    assert [c["input"] for c in decoder_layout["constants"]] == ["values", "keys", "source_mask"]
    assert [c["from"] for c in decoder_layout["constants"]] == [
        "encoder.tflite:values", "encoder.tflite:keys", "encoder.tflite:source_mask"]  # fmt: skip
    assert [s["initial"] for s in decoder_layout["states"]] == [
        f"encoder.tflite:state_{i}" for i in range(n)]  # fmt: skip
    assert layouts[0].as_dict()["role"] == "run_once"

    # Parity of both models on real states: those reached by decoding two source sentences.
    keras_encoded = [
        [np.asarray(o) for o in encoder(encoder_inputs(seed), training=False)] for seed in (0, 1)
    ]
    step_inputs = []
    for values, keys, mask, *states in keras_encoded:
        token = 1
        for _ in range(4):
            step_inputs.append([np.array([token], "int32"), *states, values, keys, mask])
            logits, *states, _ = [np.asarray(o) for o in step(step_inputs[-1], training=False)]
            token = int(logits.argmax())
    assert step_parity_report(exported["decoder_step"], step_inputs)["max_abs_diff"] <= 1e-4
    encoder_report = step_parity_report(
        exported["encoder"], [encoder_inputs(seed) for seed in (0, 1, 2)]
    )
    assert encoder_report["max_abs_diff"] <= 1e-4

    # The reference loop: encoder file once, then the decoder step file, greedy until END=0.
    for name, result in exported.items():
        result = type(result)(result.step, result.result, layouts[0 if name == "encoder" else 1])
        write_step_export(tmp_path, result, name)
    encoder_file = TFLiteFunction.from_export(tmp_path, "encoder")
    loop = StepLoop.from_export(tmp_path, "decoder_step")
    for seed, encoded in zip((0, 1), keras_encoded):
        start = loop.initial_states(encoder_file(**encoder_inputs(seed)))
        got = loop.greedy(1, 12, states=start, end_id=0)
        keras_fn = keras_step_fn_attention(step, n)
        want = decoding.greedy(keras_fn, encoded[3:] + encoded[:3], np.array([1]), 0, 12)[0]
        assert got == want and len(got) >= 3
        assert loop.last_extras["attention"].shape == (1, S)
        # Masked source positions get no attention.
        np.testing.assert_allclose(loop.last_extras["attention"][0, S - 2 :], 0, atol=1e-7)


def keras_step_fn_attention(step: keras.Model, n: int):
    """Decoding step function over the Keras step model: states are ``[*states, values, keys,
    mask]``, constants returned unchanged."""

    def step_fn(tokens, states):
        outs = step([np.asarray(tokens, "int32"), *states], training=False)
        outs = [np.asarray(o) for o in outs]
        return outs[0], outs[1 : 1 + n] + list(states[n:])

    return step_fn


def test_step_examples_accepts_batched_unbatched_and_columns():
    step = step_model(char_lm("gru"))
    state = np.arange(U, dtype="float32")
    a = step_examples([[np.array([3]), state], [np.array([[4]]), state[None]]], step)
    assert [e["token"].shape for e in a] == [(1, 1), (1, 1)] and a[1]["state_0"].shape == (1, U)
    b = step_examples({"token": np.array([[3], [4]]), "state_0": np.stack([state, state])}, step)
    np.testing.assert_array_equal(b[1]["token"], [[4]])
    with pytest.raises(ValueError, match="step example has 1 arrays"):
        step_examples([[np.array([3])]], step)
    with pytest.raises(ValueError, match="batch of 1"):
        step_examples([[np.array([[3], [4]]), np.stack([state, state])]], step)


def test_step_model_validation():
    step = step_model(char_lm("gru"))
    with pytest.raises(ValueError, match="cannot carry 3 states"):
        export_step_model(StepModel(step, num_states=3))
    with pytest.raises(ValueError, match="num_states"):
        StepModel(step, num_states=-1)
    with pytest.raises(ValueError, match="distinct identifiers"):
        export_step_model(StepModel(step, output_names=["a", "a"]))
    with pytest.raises(TypeError, match="keras.Model or a StepModel"):
        export_step_model("not a model")


def test_stripping_tensor_names_keeps_signature_outputs_and_aligns_weights():
    from ai_edge_litert import schema_py_generated as schema

    from export.ops import op_records
    from export.tflite import convert_to_tflite, strip_tensor_names

    model = char_lm("lstm")
    named = convert_to_tflite(model, seq_len=6, strip_names=False).content
    stripped = strip_tensor_names(named)
    assert len(stripped) < len(named)
    assert all(name == "" for r in op_records(stripped) for name in r.tensor_names)
    assert any(name for r in op_records(named) for name in r.tensor_names)
    assert list_ops(stripped) == list_ops(named)

    ids = np.array([[1, 4, 7, 2, 9, 3]], "int32")
    runs = [TFLiteFunction(content)(ids=ids) for content in (named, stripped)]
    assert list(runs[0]) == list(runs[1])  # same signature names
    np.testing.assert_array_equal(runs[0]["logits"], runs[1]["logits"])

    # Records are shared: one empty buffer (0) for every tensor without constant data.
    root = schema.Model.GetRootAs(stripped, 0)
    empty = [i for i in range(root.BuffersLength()) if root.Buffers(i).DataLength() == 0]
    assert empty == [0]
    assert schema.Model.GetRootAs(named, 0).BuffersLength() > root.BuffersLength()

    data = np.frombuffer(stripped, np.uint8)
    for i in range(root.BuffersLength()):
        if root.Buffers(i).DataLength() >= 16:
            weights = root.Buffers(i).DataAsNumpy()
            offset = weights.__array_interface__["data"][0] - data.__array_interface__["data"][0]
            assert offset % 16 == 0
