"""BahdanauAttention: NumPy reference, masks, precomputed keys, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlayers.attention import BahdanauAttention

B, TV, DQ, DV, UNITS = 2, 5, 3, 4, 6


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _built_attention(use_bias: bool = False) -> BahdanauAttention:
    """A built layer with random (non-default) weights."""
    rng = _rng()
    attention = BahdanauAttention(UNITS, use_bias=use_bias)
    attention.build((None, DQ), (None, TV, DV))
    attention.W_a.assign(rng.normal(size=(DQ, UNITS)).astype("float32"))
    attention.U_a.assign(rng.normal(size=(DV, UNITS)).astype("float32"))
    attention.v_a.assign(rng.normal(size=(UNITS,)).astype("float32"))
    if use_bias:
        attention.b_a.assign(rng.normal(size=(UNITS,)).astype("float32"))
    return attention


def _numpy_attention(attention, query, values, mask=None):
    """e_j = v_a . tanh(s W_a + h_j U_a + b_a); alpha = softmax over unmasked; c = sum alpha h."""
    W_a, U_a, v_a = (np.asarray(w) for w in (attention.W_a, attention.U_a, attention.v_a))
    b_a = np.asarray(attention.b_a) if attention.use_bias else 0.0
    single = query.ndim == 2
    q = query[:, None, :] if single else query  # (B, Tq, Dq)
    contexts = np.zeros(q.shape[:2] + (values.shape[-1],))
    weights = np.zeros(q.shape[:2] + (values.shape[1],))
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            scores = np.array(
                [v_a @ np.tanh(q[b, i] @ W_a + values[b, j] @ U_a + b_a) for j in range(TV)]
            )
            valid = np.ones(TV, bool) if mask is None else mask[b]
            if valid.any():
                exp = np.where(valid, np.exp(scores - scores[valid].max()), 0.0)
                weights[b, i] = exp / exp.sum()
            contexts[b, i] = weights[b, i] @ values[b]
    if single:
        return contexts[:, 0], weights[:, 0]
    return contexts, weights


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("query_shape", [(B, DQ), (B, 3, DQ)], ids=["rank2", "rank3"])
def test_matches_numpy_reference(query_shape, use_bias):
    rng = _rng()
    attention = _built_attention(use_bias)
    query = rng.normal(size=query_shape).astype("float32")
    values = rng.normal(size=(B, TV, DV)).astype("float32")
    mask = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], bool)
    for m in (None, mask):
        context, weights = attention(query, values, mask=m)
        expected_context, expected_weights = _numpy_attention(attention, query, values, m)
        assert tuple(context.shape) == query_shape[:-1] + (DV,)
        assert tuple(weights.shape) == query_shape[:-1] + (TV,)
        np.testing.assert_allclose(np.asarray(weights), expected_weights, atol=1e-5)
        np.testing.assert_allclose(np.asarray(context), expected_context, atol=1e-5)


def test_mask_zero_weights_and_ignores_masked_values():
    rng = _rng()
    attention = _built_attention()
    query = rng.normal(size=(B, 4, DQ)).astype("float32")
    values = rng.normal(size=(B, TV, DV)).astype("float32")
    mask = np.array([[1, 0, 1, 0, 0], [0, 1, 1, 1, 1]], bool)
    context, weights = attention(query, values, mask=mask)
    weights = np.asarray(weights)
    assert np.all(weights[~np.broadcast_to(mask[:, None, :], weights.shape)] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert np.all(weights[np.broadcast_to(mask[:, None, :], weights.shape)] > 0.0)

    changed = values.copy()
    changed[~mask] = rng.normal(size=changed[~mask].shape) * 100.0
    context_changed, weights_changed = attention(query, changed, mask=mask)
    np.testing.assert_allclose(np.asarray(context_changed), np.asarray(context), atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights_changed), weights, atol=1e-7)


def test_fully_masked_row_gives_finite_zeros_and_gradients():
    import tensorflow as tf

    rng = _rng()
    attention = _built_attention()
    query = tf.constant(rng.normal(size=(B, DQ)).astype("float32"))
    values = tf.constant(rng.normal(size=(B, TV, DV)).astype("float32"))
    mask = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 0, 1]], bool)
    with tf.GradientTape() as tape:
        tape.watch(query)
        context, weights = attention(query, values, mask=mask)
        loss = keras.ops.sum(context**2)
    grads = tape.gradient(loss, [query, attention.W_a, attention.U_a, attention.v_a])
    np.testing.assert_array_equal(np.asarray(context)[0], np.zeros(DV))
    np.testing.assert_array_equal(np.asarray(weights)[0], np.zeros(TV))
    np.testing.assert_allclose(np.asarray(weights)[1].sum(), 1.0, atol=1e-6)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize("query_shape", [(B, DQ), (B, 3, DQ)], ids=["rank2", "rank3"])
def test_precomputed_keys_match_plain_path(query_shape):
    rng = _rng()
    attention = _built_attention(use_bias=True)
    query = rng.normal(size=query_shape).astype("float32")
    values = rng.normal(size=(B, TV, DV)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    keys = attention.precompute_keys(values)
    assert tuple(keys.shape) == (B, TV, UNITS)
    np.testing.assert_allclose(
        np.asarray(keys),
        values @ np.asarray(attention.U_a) + np.asarray(attention.b_a),
        atol=1e-5,
    )
    plain = attention(query, values, mask=mask)
    cached = attention(query, values, mask=mask, keys=keys)
    for a, b in zip(plain, cached):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_builds_from_call_with_named_weights():
    attention = BahdanauAttention(7)
    context, weights = attention(np.ones((2, 3), "float32"), np.ones((2, 5, 4), "float32"))
    assert tuple(context.shape) == (2, 4) and tuple(weights.shape) == (2, 5)
    shapes = {w.name: tuple(w.shape) for w in attention.weights}
    assert shapes == {"W_a": (3, 7), "U_a": (4, 7), "v_a": (7,)}
    np.testing.assert_allclose(np.asarray(weights), 0.2, atol=1e-6)  # equal values: uniform


def test_invalid_arguments():
    with pytest.raises(ValueError, match="units"):
        BahdanauAttention(0)
    with pytest.raises(ValueError, match="not built"):
        BahdanauAttention(4).precompute_keys(np.ones((1, 2, 3), "float32"))
    attention = _built_attention()
    with pytest.raises(ValueError, match="rank 2 or 3"):
        attention(np.ones((DQ,), "float32"), np.ones((B, TV, DV), "float32"))


def test_get_config_round_trip():
    attention = BahdanauAttention(5, use_bias=True, kernel_initializer="he_normal", name="att")
    config = attention.get_config()
    clone = BahdanauAttention.from_config(config)
    assert clone.get_config() == config
    assert clone.units == 5 and clone.use_bias


def test_functional_model_save_load(tmp_path):
    query = keras.Input((DQ,), name="query")
    values = keras.Input((TV, DV), name="values")
    mask = keras.Input((TV,), dtype="bool", name="mask")
    context, weights = BahdanauAttention(UNITS, use_bias=True)(query, values, mask=mask)
    model = keras.Model([query, values, mask], [context, weights])

    rng = _rng()
    inputs = [
        rng.normal(size=(B, DQ)).astype("float32"),
        rng.normal(size=(B, TV, DV)).astype("float32"),
        np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], bool),
    ]
    expected = model.predict(inputs, verbose=0)
    assert np.all(expected[1][0, [2, 4]] == 0.0)
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.layers[-1], BahdanauAttention)
    for a, b in zip(expected, loaded.predict(inputs, verbose=0)):
        np.testing.assert_array_equal(a, b)
