"""GenotypeCell: parity with keras LSTM/GRU and NumPy equations, training, saving, wrappers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import seqlayers  # noqa: F401  (registers the layers)
from seqlayers.genotype import CellGenotype, GenotypeNode, NodeInput, param_count, random_genotype
from seqlayers.genotype_cell import GenotypeCell, GenotypeRNN, set_weights_from_keras
from seqlayers.genotype_presets import PRESETS, gru, lstm

B, T = 2, 4


def _randomize(layer: keras.layers.Layer, seed: int = 0, scale: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(0.0, scale, w.shape).astype("float32"))


def _sequence(dim: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, dim)).astype("float32")


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# ----------------------------------------------------------------------------- keras parity
@pytest.mark.parametrize(
    "preset, keras_cell",
    [
        ("lstm", lambda u: keras.layers.LSTMCell(u)),
        ("gru", lambda u: keras.layers.GRUCell(u, reset_after=False)),
    ],
)
def test_preset_equals_keras_cell(preset, keras_cell):
    d, u = 3, 5
    x = _sequence(d)
    reference = keras.layers.RNN(keras_cell(u), return_sequences=True, return_state=True)
    ref_out = reference(x)
    _randomize(reference.cell)
    ref_out = [np.asarray(o) for o in reference(x)]

    ours = keras.layers.RNN(GenotypeCell(u, preset), return_sequences=True, return_state=True)
    ours(x)
    set_weights_from_keras(ours.cell, reference.cell)
    out = [np.asarray(o) for o in ours(x)]
    assert len(out) == len(ref_out) == (3 if preset == "lstm" else 2)
    for got, want in zip(out, ref_out):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(ref_out[0]).max() > 0.1  # not a trivially small output


def test_set_weights_from_keras_refuses_mismatches():
    x = _sequence(3)
    gru_after = keras.layers.RNN(keras.layers.GRUCell(4))  # reset_after=True by default
    gru_after(x)
    lstm_cell = keras.layers.RNN(keras.layers.LSTMCell(4))
    lstm_cell(x)
    ours = keras.layers.RNN(GenotypeCell(4, "gru"))
    ours(x)
    with pytest.raises(ValueError, match="reset_after=False"):
        set_weights_from_keras(ours.cell, gru_after.cell)
    with pytest.raises(ValueError, match="genotype must be the 'lstm' preset"):
        set_weights_from_keras(ours.cell, lstm_cell.cell)


# ----------------------------------------------------------------------------- NumPy equations
def _step_reference(name, w, x, h):
    """One step of each preset, written from the equations (not from the genotype)."""
    if name == "vanilla":
        return np.tanh(h @ w["W_h_h_next"] + x @ w["W_x_h_next"] + w["b_h_next"])
    if name == "mut1":
        z = _sigmoid(x @ w["W_x_z"] + w["b_z"])
        r = _sigmoid(x @ w["W_x_r"] + h @ w["W_h_r"] + w["b_r"])
        hc = np.tanh((r * h) @ w["W_rh_hc"] + np.tanh(x) + w["b_hc"])
    elif name == "mut2":
        z = _sigmoid(x @ w["W_x_z"] + h @ w["W_h_z"] + w["b_z"])
        r = _sigmoid(x + h @ w["W_h_r"] + w["b_r"])
        hc = np.tanh((r * h) @ w["W_rh_hc"] + x @ w["W_x_hc"] + w["b_hc"])
    elif name == "mut3":
        z = _sigmoid(x @ w["W_x_z"] + np.tanh(h) @ w["W_th_z"] + w["b_z"])
        r = _sigmoid(x @ w["W_x_r"] + h @ w["W_h_r"] + w["b_r"])
        hc = np.tanh((r * h) @ w["W_rh_hc"] + x @ w["W_x_hc"] + w["b_hc"])
    else:
        raise AssertionError(name)
    return hc * z + h * (1.0 - z)


@pytest.mark.parametrize("name", ["vanilla", "mut1", "mut2", "mut3"])
def test_preset_equals_numpy_equations(name):
    u = 4
    x = _sequence(u, seed=2)
    layer = keras.layers.RNN(GenotypeCell(u, name), return_sequences=True)
    layer(x)
    _randomize(layer.cell, seed=3, scale=0.7)
    got = np.asarray(layer(x))
    w = {v.name: np.asarray(v, dtype="float64") for v in layer.cell.weights}
    h = np.zeros((B, u))
    for t in range(T):
        h = _step_reference(name, w, x[:, t].astype("float64"), h)
        np.testing.assert_allclose(got[:, t], h, atol=1e-5, rtol=0)
    assert np.abs(h).max() > 0.1


def test_blend_and_mul_of_three_with_c_state():
    """A custom graph with c: n = relu(x Wx + c), m = blend(n Wn, h, sigmoid(h Wh + b)) ..."""
    g = CellGenotype(
        (
            GenotypeNode("n", (NodeInput("x", True), "c"), activation="relu"),
            GenotypeNode("g", (NodeInput("h", True),), activation="sigmoid", bias=True),
            GenotypeNode("m", (NodeInput("n", True), "h", "g"), combine="blend"),
            GenotypeNode("k", ("m", "n", "g"), combine="mul", activation="tanh"),
        ),
        h_out="k",
        c_out="m",
    )
    d, u = 3, 4
    x = _sequence(d, seed=4)
    layer = keras.layers.RNN(GenotypeCell(u, g), return_sequences=True, return_state=True)
    layer(x)
    _randomize(layer.cell, seed=5)
    seq, h_last, c_last = (np.asarray(o) for o in layer(x))
    w = {v.name: np.asarray(v, dtype="float64") for v in layer.cell.weights}
    h = c = np.zeros((B, u))
    for t in range(T):
        n = np.maximum(x[:, t] @ w["W_x_n"] + c, 0.0)
        gate = _sigmoid(h @ w["W_h_g"] + w["b_g"])
        m = gate * (n @ w["W_n_m"]) + (1.0 - gate) * h
        h, c = np.tanh(m * n * gate), m
        np.testing.assert_allclose(seq[:, t], h, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h_last, h, atol=1e-5, rtol=0)
    np.testing.assert_allclose(c_last, c, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- params, config
@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_param_count_equals_count_params(seed):
    genotypes = PRESETS.values() if seed is None else [random_genotype(seed, use_c=seed == 1)]
    for g in genotypes:
        d = 4 if g.bare_x_nodes else 3
        cell = GenotypeCell(4, g)
        cell.build((None, d))
        assert cell.count_params() == param_count(g, d, 4)
        assert [w.name for w in cell.weights] == [s.name for s in g.weight_specs(d, 4)]


def test_constructor_accepts_presets_dicts_and_checks_arguments():
    assert GenotypeCell(3, "GRU").genotype == gru()
    assert GenotypeCell(3, lstm().to_dict()).genotype == lstm()
    assert GenotypeCell(3, lstm()).state_size == [3, 3]
    assert GenotypeCell(3, "gru").state_size == [3]
    with pytest.raises(ValueError, match="unknown genotype preset 'lstn'"):
        GenotypeCell(3, "lstn")
    with pytest.raises(ValueError, match="units must be a positive integer"):
        GenotypeCell(0, "gru")
    with pytest.raises(ValueError, match="h_out: missing output"):
        GenotypeCell(3, {**gru().to_dict(), "h_out": None})
    with pytest.raises(ValueError, match="node 'tx': uses x without a linear map"):
        keras.layers.RNN(GenotypeCell(4, "mut1"))(_sequence(3))


def test_get_config_round_trip():
    cell = GenotypeCell(5, random_genotype(7, use_c=True), kernel_regularizer="l2")
    config = cell.get_config()
    assert config["genotype"] == cell.genotype.to_dict()
    clone = GenotypeCell.from_config(config)
    assert clone.genotype == cell.genotype and clone.units == 5
    assert isinstance(clone.kernel_regularizer, keras.regularizers.L2)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize(
    "genotype", ["gru", random_genotype(11, num_nodes=4, use_c=True)], ids=["gru", "random"]
)
def test_gradients_flow_and_loss_drops(genotype):
    x = _sequence(3, seed=6)
    y = np.sin(x.sum(axis=(1, 2)))[:, None].astype("float32")
    model = keras.Sequential(
        [keras.Input((T, 3)), keras.layers.RNN(GenotypeCell(6, genotype)), keras.layers.Dense(1)]
    )
    optimizer = keras.optimizers.Adam(0.05)
    losses = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        if not losses:
            for v, grad in zip(model.trainable_variables, grads):
                assert grad is not None, v.path
                assert np.isfinite(grad).all() and np.abs(grad).max() > 0, v.path
        optimizer.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- wrappers, saving
def test_bidirectional_return_sequences_save_and_load(tmp_path):
    g = random_genotype(3, num_nodes=3, use_c=True)
    inputs = keras.Input((T, 3))
    seq = keras.layers.Bidirectional(keras.layers.RNN(GenotypeCell(4, g), return_sequences=True))(
        inputs
    )
    out = keras.layers.RNN(GenotypeCell(2, "lstm"))(seq)
    model = keras.Model(inputs, [seq, out])
    x = _sequence(3, seed=8)

    bi = model.layers[1]
    bi.backward_layer.cell.set_weights(bi.forward_layer.cell.get_weights())
    seq_out, last = (np.asarray(o) for o in model(x))
    assert seq_out.shape == (B, T, 8) and last.shape == (B, 2)
    # with equal weights, the backward half is the forward half run on the reversed sequence
    forward_on_reversed = np.asarray(bi.forward_layer(x[:, ::-1]))
    np.testing.assert_allclose(seq_out[:, :, 4:], forward_on_reversed[:, ::-1], atol=1e-6)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[1].forward_layer.cell.genotype == g
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_masked_steps_keep_the_state():
    x = _sequence(3, seed=9)
    x[:, 2:] = 0.0
    layer = keras.layers.RNN(GenotypeCell(4, "mut3"), return_sequences=True)
    masked = np.asarray(layer(x, mask=np.array([[True, True, False, False]] * B)))
    np.testing.assert_allclose(masked[:, 2], masked[:, 1], atol=0)
    np.testing.assert_allclose(masked[:, :2], np.asarray(layer(x[:, :2])), atol=1e-6)


# ----------------------------------------------------------------------------- fast layer
@pytest.mark.parametrize("name", ["lstm", "mut1", "random"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_genotype_rnn_equals_rnn_of_cell(name, go_backwards):
    g = random_genotype(5, use_c=True, allow_bare_x=True) if name == "random" else name
    u = 4
    x = _sequence(u, seed=10)
    mask = np.array([[True, True, True, False], [True, False, True, True]])
    kwargs = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    slow = keras.layers.RNN(GenotypeCell(u, g), **kwargs)
    fast = GenotypeRNN(u, g, **kwargs)
    slow(x)
    fast(x)
    _randomize(slow.cell, seed=11)
    assert [w.name for w in fast.weights] == [w.name for w in slow.cell.weights]
    fast.set_weights(slow.get_weights())
    for m in (None, mask):
        want = [np.asarray(o) for o in slow(x, mask=m)]
        got = [np.asarray(o) for o in fast(x, mask=m)]
        assert len(got) == len(want) == 1 + len(slow.cell.state_size)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_genotype_rnn_bidirectional_save_and_load(tmp_path):
    g = random_genotype(9, use_c=True)
    inputs = keras.Input((T, 3))
    y = keras.layers.Bidirectional(GenotypeRNN(4, g, return_sequences=True))(inputs)
    y = GenotypeRNN(3, "gru")(y)
    model = keras.Model(inputs, y)
    x = _sequence(3, seed=12)
    path = tmp_path / "fast.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[1].forward_layer.genotype == g
    assert loaded.layers[1].backward_layer.go_backwards
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert model.count_params() == 2 * param_count(g, 3, 4) + param_count(gru(), 8, 3)
