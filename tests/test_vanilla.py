"""VanillaRNNCell / VanillaRNN against a NumPy reference of h_t = tanh(W_hh h + W_xh x + b_h)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlayers import VanillaRNN, VanillaRNNCell

B, T, D, U = 3, 5, 4, 6
ATOL = 1e-5


def run_reference(step, x, h0, mask=None, go_backwards=False):
    """keras RNN semantics in NumPy: masked steps carry the state and repeat the last output."""
    h, prev_out, outs = h0, np.zeros_like(h0), []
    for t in reversed(range(x.shape[1])) if go_backwards else range(x.shape[1]):
        h_new = step(x[:, t], h)
        keep = np.ones((x.shape[0], 1), bool) if mask is None else mask[:, t : t + 1]
        h = np.where(keep, h_new, h)
        prev_out = np.where(keep, h_new, prev_out)
        outs.append(prev_out)
    return np.stack(outs, axis=1), h


def vanilla_step(w, activation=np.tanh):
    return lambda x, h: activation(h @ w["W_hh"] + x @ w["W_xh"] + w.get("b_h", 0.0))


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.trainable_weights:
        v.assign(rng.normal(0.0, 0.5, v.shape).astype("float32"))
    return {v.name: np.asarray(v) for v in layer.trainable_weights}


def data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 3:] = False  # padded tail
    mask[2, 1:] = False  # one real step only
    return x, mask


def make(kind, **kwargs):
    if kind == "cell":
        cell_kwargs = {k: kwargs.pop(k) for k in ("activation", "use_bias") if k in kwargs}
        return keras.layers.RNN(VanillaRNNCell(U, **cell_kwargs), **kwargs)
    return VanillaRNN(U, **kwargs)


@pytest.mark.parametrize("kind", ["cell", "layer"])
@pytest.mark.parametrize("masked,go_backwards", [(False, False), (True, False), (True, True)])
def test_matches_numpy_reference(kind, masked, go_backwards):
    x, mask = data()
    layer = make(kind, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer.build((B, T, D))
    w = randomize(layer)
    h0 = np.random.default_rng(2).normal(size=(B, U)).astype("float32")
    mask = mask if masked else None
    seq, state = layer(x, initial_state=[h0], mask=mask)
    ref_seq, ref_state = run_reference(vanilla_step(w), x, h0, mask, go_backwards)
    np.testing.assert_allclose(np.asarray(seq), ref_seq, atol=ATOL)
    np.testing.assert_allclose(np.asarray(state), ref_state, atol=ATOL)


@pytest.mark.parametrize("kind", ["cell", "layer"])
def test_linear_activation_without_bias(kind):
    x, mask = data()
    layer = make(kind, activation=None, use_bias=False, return_sequences=True)
    layer.build((B, T, D))
    w = randomize(layer)
    assert sorted(w) == ["W_hh", "W_xh"]
    ref_seq, _ = run_reference(vanilla_step(w, activation=lambda a: a), x, np.zeros((B, U)), mask)
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), ref_seq, atol=ATOL)


def test_weights_named_after_symbols():
    cell = VanillaRNNCell(U)
    cell.build((None, D))
    assert {v.name: tuple(v.shape) for v in cell.trainable_weights} == {
        "W_xh": (D, U),
        "W_hh": (U, U),
        "b_h": (U,),
    }


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_equals_keras_simple_rnn_cell(activation):
    x, mask = data()
    ours = keras.layers.RNN(VanillaRNNCell(U, activation=activation), return_sequences=True)
    theirs = keras.layers.RNN(
        keras.layers.SimpleRNNCell(U, activation=activation), return_sequences=True
    )
    ours.build((B, T, D))
    theirs.build((B, T, D))
    w = randomize(ours)
    theirs.cell.kernel.assign(w["W_xh"])
    theirs.cell.recurrent_kernel.assign(w["W_hh"])
    theirs.cell.bias.assign(w["b_h"])
    np.testing.assert_allclose(
        np.asarray(ours(x, mask=mask)), np.asarray(theirs(x, mask=mask)), atol=ATOL
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"units": 0},
        {"units": -2},
        {"units": 2.5},
        {"units": 3, "dropout": 1.0},
        {"units": 3, "recurrent_dropout": -0.1},
    ],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        VanillaRNNCell(**kwargs)
    with pytest.raises(ValueError):
        VanillaRNN(**kwargs)


def test_layer_dropout_mask_is_shared_across_steps():
    """Fast layer: one input dropout mask per sequence (variational), none at inference."""
    layer = VanillaRNN(
        D, activation=None, use_bias=False, dropout=0.5, seed=3, return_sequences=True
    )
    layer.build((B, T, D))
    layer.cell.W_xh.assign(np.eye(D, dtype="float32"))
    layer.cell.W_hh.assign(np.zeros((D, D), "float32"))
    x = np.ones((B, T, D), "float32")
    y = np.asarray(layer(x, training=True))  # h_t = x_t * mask
    np.testing.assert_allclose(y, np.repeat(y[:, :1], T, axis=1))  # same mask at every step
    assert set(np.unique(y)) == {0.0, 2.0}  # dropped or scaled by 1 / (1 - 0.5)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), x)
