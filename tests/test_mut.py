"""MUT1/2/3 cells and layers against NumPy references of the equations of Jozefowicz et al. (2015)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlayers import MUT1, MUT2, MUT3, MUT1Cell, MUT2Cell, MUT3Cell

B, T, U = 3, 5, 4
ATOL = 1e-5


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def mut1_step(w):
    def step(x, h):
        z = sigmoid(x @ w["W_xz"] + w["b_z"])
        r = sigmoid(x @ w["W_xr"] + h @ w["W_hr"] + w["b_r"])
        return np.tanh((r * h) @ w["W_hh"] + np.tanh(x) + w["b_h"]) * z + h * (1 - z)

    return step


def mut2_step(w):
    def step(x, h):
        z = sigmoid(x @ w["W_xz"] + h @ w["W_hz"] + w["b_z"])
        r = sigmoid(x + h @ w["W_hr"] + w["b_r"])
        return np.tanh((r * h) @ w["W_hh"] + x @ w["W_xh"] + w["b_h"]) * z + h * (1 - z)

    return step


def mut3_step(w):
    def step(x, h):
        z = sigmoid(x @ w["W_xz"] + np.tanh(h) @ w["W_hz"] + w["b_z"])
        r = sigmoid(x @ w["W_xr"] + h @ w["W_hr"] + w["b_r"])
        return np.tanh((r * h) @ w["W_hh"] + x @ w["W_xh"] + w["b_h"]) * z + h * (1 - z)

    return step


def shapes(width, input_kernels, recurrent_kernels):
    """{weight name: shape} of a MUT cell with input width ``width``."""
    return {
        **{name: (width, U) for name in input_kernels.split()},
        **{name: (U, U) for name in recurrent_kernels.split()},
        **{name: (U,) for name in ("b_z", "b_r", "b_h")},
    }


# name: (cell class, layer class, NumPy step, input width, {weight: shape})
CASES = {
    "mut1": (MUT1Cell, MUT1, mut1_step, U, shapes(U, "W_xz W_xr", "W_hr W_hh")),
    "mut2": (MUT2Cell, MUT2, mut2_step, U, shapes(U, "W_xz W_xh", "W_hz W_hr W_hh")),
    "mut3": (MUT3Cell, MUT3, mut3_step, 3, shapes(3, "W_xz W_xr W_xh", "W_hz W_hr W_hh")),
}


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


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.trainable_weights:
        v.assign(rng.normal(0.0, 0.7, v.shape).astype("float32"))
    return {v.name: np.asarray(v) for v in layer.trainable_weights}


def inputs(width, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, width)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 2:] = False  # padded tail
    mask[2, 4:] = False
    return x, mask


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("kind", ["cell", "layer"])
@pytest.mark.parametrize("masked,go_backwards", [(False, False), (True, False), (True, True)])
def test_matches_numpy_reference(name, kind, masked, go_backwards):
    cell_cls, layer_cls, step, width, _ = CASES[name]
    args = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    layer = keras.layers.RNN(cell_cls(U), **args) if kind == "cell" else layer_cls(U, **args)
    layer.build((B, T, width))
    w = randomize(layer)
    x, mask = inputs(width)
    mask = mask if masked else None
    h0 = np.random.default_rng(2).normal(size=(B, U)).astype("float32")
    seq, state = layer(x, initial_state=[h0], mask=mask)
    ref_seq, ref_state = run_reference(step(w), x, h0, mask, go_backwards)
    np.testing.assert_allclose(np.asarray(seq), ref_seq, atol=ATOL)
    np.testing.assert_allclose(np.asarray(state), ref_state, atol=ATOL)
    if masked:  # padded tail of row 1 repeats its last real output; state is carried
        np.testing.assert_allclose(np.asarray(seq)[1, 2:], ref_seq[1, 2:], atol=ATOL)


@pytest.mark.parametrize("name", list(CASES))
def test_weights_named_after_symbols(name):
    cell_cls, _, _, width, shapes = CASES[name]
    cell = cell_cls(U)
    cell.build((None, width))
    assert {v.name: tuple(v.shape) for v in cell.trainable_weights} == shapes


@pytest.mark.parametrize("name", list(CASES))
def test_without_bias_matches_reference_with_zero_biases(name):
    cell_cls, _, step, width, shapes = CASES[name]
    layer = keras.layers.RNN(cell_cls(U, use_bias=False), return_sequences=True)
    layer.build((B, T, width))
    w = randomize(layer)
    assert sorted(w) == sorted(k for k in shapes if not k.startswith("b_"))
    w.update({b: np.zeros(U, "float32") for b in ("b_z", "b_r", "b_h")})
    x, mask = inputs(width)
    ref_seq, _ = run_reference(step(w), x, np.zeros((B, U), "float32"), mask)
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), ref_seq, atol=ATOL)


@pytest.mark.parametrize("name", ["mut1", "mut2"])
def test_bare_input_term_needs_width_equal_to_units(name):
    cell_cls, layer_cls, *_ = CASES[name]
    with pytest.raises(ValueError, match="Embedding or Dense projection of width 4"):
        keras.layers.RNN(cell_cls(U))(np.zeros((B, T, U + 1), "float32"))
    with pytest.raises(ValueError, match="input width must equal units=4"):
        layer_cls(U)(np.zeros((B, T, 2), "float32"))


def test_mut3_accepts_any_input_width():
    assert tuple(MUT3(U)(np.zeros((B, T, 7), "float32")).shape) == (B, U)


@pytest.mark.parametrize("units", [0, -1, None])
def test_invalid_units_raise(units):
    for cls in (MUT1Cell, MUT2Cell, MUT3Cell, MUT1, MUT2, MUT3):
        with pytest.raises(ValueError, match="units"):
            cls(units)
