"""AttentionDecoderCell / AttentionDecoder: step parity, masks, learning, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlayers.attention_decoder import AttentionDecoder, AttentionDecoderCell

B, T, TV, DIN, DV, UNITS = 2, 4, 5, 3, 4, 6

INNER_CELLS = {
    "gru": lambda: keras.layers.GRUCell(UNITS),
    "lstm": lambda: keras.layers.LSTMCell(UNITS),
}


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(B, T, DIN)).astype("float32")
    values = rng.normal(size=(B, TV, DV)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    return targets, values, mask


def _step_loop(cell, targets, values, mask, states=None, target_mask=None):
    """Runs ``cell.step`` by hand, holding the state on padded target steps."""
    states = cell.get_initial_state(targets.shape[0]) if states is None else list(states)
    keys = cell.precompute_keys(values)
    outputs, weights = [], []
    for t in range(targets.shape[1]):
        output, new_states, w = cell.step(targets[:, t], states, values, keys=keys, mask=mask)
        if target_mask is not None:
            keep = target_mask[:, t : t + 1]
            new_states = [np.where(keep, n, s) for n, s in zip(new_states, states)]
            output, w = np.where(keep, output, 0.0), np.where(keep, w, 0.0)
        states = [np.asarray(s) for s in new_states]
        outputs.append(np.asarray(output))
        weights.append(np.asarray(w))
    return np.stack(outputs, 1), states, np.stack(weights, 1)


@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("inner", sorted(INNER_CELLS))
def test_teacher_forced_equals_step_loop(inner, unroll):
    targets, values, mask = _data()
    cell = AttentionDecoderCell(INNER_CELLS[inner](), attention_units=7)
    decoder = AttentionDecoder(cell, unroll=unroll)
    outputs, states, weights = decoder(targets, values, mask=mask)
    assert tuple(outputs.shape) == (B, T, UNITS + DV) and cell.output_size == UNITS + DV
    assert tuple(weights.shape) == (B, T, TV)
    assert len(states) == (2 if inner == "lstm" else 1)

    ref_outputs, ref_states, ref_weights = _step_loop(cell, targets, values, mask)
    np.testing.assert_allclose(np.asarray(outputs), ref_outputs, atol=1e-5)
    np.testing.assert_allclose(np.asarray(weights), ref_weights, atol=1e-5)
    for s, r in zip(states, ref_states):
        np.testing.assert_allclose(np.asarray(s), r, atol=1e-5)
    # the output is [cell output; context] and the context is weights @ values
    context = np.einsum("btv,bvd->btd", np.asarray(weights), values)
    np.testing.assert_allclose(np.asarray(outputs)[..., UNITS:], context, atol=1e-5)
    assert np.all(np.asarray(weights)[0, :, 3:] == 0.0)


@pytest.mark.parametrize("inner", sorted(INNER_CELLS))
def test_step_matches_manual_equations(inner):
    """One step by hand: c = attention(s_prev[0], H); cell([y; c], s_prev); o = [out; c]."""
    targets, values, mask = _data(1)
    cell = AttentionDecoderCell(INNER_CELLS[inner]())
    rng = np.random.default_rng(2)
    states = [rng.normal(size=(B, UNITS)).astype("float32") for _ in cell.get_initial_state(B)]
    output, new_states, weights = cell.step(targets[:, 0], states, values, mask=mask)
    context, expected_weights = cell.attention(states[0], values, mask=mask)
    cell_output, expected_states = cell.cell(
        np.concatenate([targets[:, 0], np.asarray(context)], -1), states
    )
    np.testing.assert_allclose(np.asarray(weights), np.asarray(expected_weights), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(output), np.concatenate([cell_output, context], -1), atol=1e-6
    )
    for s, e in zip(new_states, expected_states):
        np.testing.assert_allclose(np.asarray(s), np.asarray(e), atol=1e-6)


@pytest.mark.parametrize("inner", sorted(INNER_CELLS))
def test_target_mask_holds_state(inner):
    targets, values, mask = _data(3)
    target_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    cell = AttentionDecoderCell(INNER_CELLS[inner]())
    decoder = AttentionDecoder(cell)
    rng = np.random.default_rng(4)
    initial = [rng.normal(size=(B, UNITS)).astype("float32") for _ in cell.get_initial_state(B)]
    outputs, states, weights = decoder(
        targets, values, initial_state=initial, mask=mask, target_mask=target_mask
    )
    ref_outputs, ref_states, ref_weights = _step_loop(
        cell, targets, values, mask, states=initial, target_mask=target_mask
    )
    np.testing.assert_allclose(np.asarray(outputs), ref_outputs, atol=1e-5)
    np.testing.assert_allclose(np.asarray(weights), ref_weights, atol=1e-5)
    assert np.all(np.asarray(outputs)[0, 2:] == 0.0) and np.all(np.asarray(weights)[0, 2:] == 0.0)
    # row 0 stops after 2 steps: its final state is the state after step 2 of an unmasked run
    _, states_after_two, _ = _step_loop(cell, targets[:, :2], values, mask, states=initial)
    for s, r, two in zip(states, ref_states, states_after_two):
        np.testing.assert_allclose(np.asarray(s), r, atol=1e-5)
        np.testing.assert_allclose(np.asarray(s)[0], two[0], atol=1e-5)


def test_dynamic_length_functional_and_dropout():
    targets, values, mask = _data(5)
    cell = AttentionDecoderCell(keras.layers.GRUCell(UNITS, dropout=0.5, recurrent_dropout=0.5))
    decoder = AttentionDecoder(cell)
    tgt_in = keras.Input((None, DIN))
    val_in = keras.Input((TV, DV))
    mask_in = keras.Input((TV,), dtype="bool")
    outputs, _, weights = decoder(tgt_in, val_in, mask=mask_in)
    model = keras.Model([tgt_in, val_in, mask_in], [outputs, weights])
    inference = model.predict([targets, values, mask], verbose=0)
    ref_outputs, _, ref_weights = _step_loop(cell, targets, values, mask)
    np.testing.assert_allclose(inference[0], ref_outputs, atol=1e-5)  # no dropout at inference
    np.testing.assert_allclose(inference[1], ref_weights, atol=1e-5)
    trained = model([targets, values, mask], training=True)
    assert np.all(np.isfinite(np.asarray(trained[0])))
    assert not np.allclose(np.asarray(trained[0]), ref_outputs, atol=1e-3)  # dropout acted
    assert getattr(cell.cell, "_dropout_mask", None) is None  # masks reset after the call


def test_learns_toy_copy_task_and_attention_gets_gradient():
    """Output the source token at the position given by the step index."""
    import tensorflow as tf

    vocab, steps, batch = 6, 5, 32
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=(batch, steps))
    positions = np.broadcast_to(np.eye(steps, dtype="float32"), (batch, steps, steps))
    values = np.concatenate([np.eye(vocab, dtype="float32")[tokens], positions], -1)
    step_inputs = positions  # y_{t-1} stands in as "step t" one-hot

    decoder = AttentionDecoder(AttentionDecoderCell(units=16, attention_units=16))
    readout = keras.layers.Dense(vocab)
    optimizer = keras.optimizers.Adam(0.02)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    decoder(step_inputs, values)
    readout.build((None, steps, decoder.cell.output_size))
    variables = decoder.trainable_variables + readout.trainable_variables

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            outputs, _, _ = decoder(step_inputs, values, training=True)
            loss = loss_fn(tokens, readout(outputs))
        return loss, tape.gradient(loss, variables)

    initial_loss, grads = train_step()
    attention = decoder.cell.attention
    by_name = {v.path: g for v, g in zip(variables, grads)}
    for weight in (attention.W_a, attention.U_a, attention.v_a):
        grad = np.asarray(by_name[weight.path])
        assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0.0, weight.path
    for _ in range(40):
        _, grads = train_step()
        optimizer.apply_gradients(zip(grads, variables))
    final_loss, _ = train_step()
    assert float(final_loss) < 0.7 * float(initial_loss), (float(initial_loss), float(final_loss))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="units"):
        AttentionDecoderCell()
    with pytest.raises(ValueError, match="attention_units"):
        AttentionDecoderCell(units=4, attention_units=0)
    with pytest.raises(ValueError, match="AttentionDecoderCell"):
        AttentionDecoder(keras.layers.GRUCell(4))
    decoder = AttentionDecoder(AttentionDecoderCell(units=4), unroll=True)
    tgt_in = keras.Input((None, DIN))
    with pytest.raises(ValueError, match="static target length"):
        decoder(tgt_in, keras.Input((TV, DV)))


@pytest.mark.parametrize("inner", sorted(INNER_CELLS))
def test_get_config_round_trip(inner):
    cell = AttentionDecoderCell(INNER_CELLS[inner](), attention_units=5, attention_use_bias=True)
    decoder = AttentionDecoder(cell, unroll=True, name="dec")
    config = decoder.get_config()
    clone = AttentionDecoder.from_config(config)
    assert clone.get_config() == config
    assert type(clone.cell.cell) is type(cell.cell) and clone.cell.cell.units == UNITS
    assert clone.cell.attention.units == 5 and clone.cell.attention.use_bias
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cell))
    assert restored.get_config() == cell.get_config()


@pytest.mark.parametrize("inner", sorted(INNER_CELLS))
def test_keras_save_load_identical_predictions(inner, tmp_path):
    targets, values, mask = _data(6)
    target_mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    cell = AttentionDecoderCell(INNER_CELLS[inner](), attention_use_bias=True)
    tgt_in = keras.Input((None, DIN), name="targets")
    val_in = keras.Input((TV, DV), name="values")
    mask_in = keras.Input((TV,), dtype="bool", name="mask")
    tmask_in = keras.Input((None,), dtype="bool", name="target_mask")
    outputs, states, weights = AttentionDecoder(cell)(
        tgt_in, val_in, mask=mask_in, target_mask=tmask_in
    )
    logits = keras.layers.Dense(7)(outputs)
    model = keras.Model([tgt_in, val_in, mask_in, tmask_in], [logits, weights, states[-1]])
    inputs = [targets, values, mask, target_mask]
    expected = model.predict(inputs, verbose=0)

    path = tmp_path / "decoder.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(expected, loaded.predict(inputs, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)

    # the loaded decoder's cell still works one step at a time, sharing the weights
    loaded_decoder = next(l for l in loaded.layers if isinstance(l, AttentionDecoder))
    ref_outputs, _, _ = _step_loop(loaded_decoder.cell, targets, values, mask)
    direct, _, _ = loaded_decoder(targets, values, mask=mask)
    np.testing.assert_allclose(np.asarray(direct), ref_outputs, atol=1e-5)


def test_one_step_functional_model():
    """The exporter's shape: (token_emb, states..., values, keys, mask) -> (out, states..., w)."""
    targets, values, mask = _data(7)
    cell = AttentionDecoderCell(keras.layers.LSTMCell(UNITS), attention_units=8)
    decoder = AttentionDecoder(cell)
    full_outputs, _, full_weights = decoder(targets, values, mask=mask)

    emb_in = keras.Input((DIN,))
    h_in, c_in = keras.Input((UNITS,)), keras.Input((UNITS,))
    val_in, keys_in = keras.Input((TV, DV)), keras.Input((TV, 8))
    mask_in = keras.Input((TV,), dtype="bool")
    output, (h, c), weights = cell(emb_in, [h_in, c_in], val_in, keys=keys_in, mask=mask_in)
    one_step = keras.Model([emb_in, h_in, c_in, val_in, keys_in, mask_in], [output, h, c, weights])

    keys = np.asarray(cell.precompute_keys(values))
    h_t, c_t = (np.zeros((B, UNITS), "float32") for _ in range(2))
    for t in range(T):
        out_t, h_t, c_t, w_t = one_step.predict_on_batch(
            [targets[:, t], h_t, c_t, values, keys, mask]
        )
        np.testing.assert_allclose(out_t, np.asarray(full_outputs)[:, t], atol=1e-5)
        np.testing.assert_allclose(w_t, np.asarray(full_weights)[:, t], atol=1e-5)
