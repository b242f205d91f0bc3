"""Vanilla/MUT cells inside keras' RNN machinery, and the fast layers against RNN(cell)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers import (
    MUT1,
    MUT2,
    MUT3,
    MUT1Cell,
    MUT2Cell,
    MUT3Cell,
    ProjectedRNN,
    VanillaRNN,
    VanillaRNNCell,
)

B, T, U = 3, 5, 4  # input width == units, which MUT1/MUT2 need
KINDS = {
    "vanilla": (VanillaRNNCell, VanillaRNN),
    "mut1": (MUT1Cell, MUT1),
    "mut2": (MUT2Cell, MUT2),
    "mut3": (MUT3Cell, MUT3),
}
EXACT = 1e-6


def inputs(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, U)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 3:] = False  # right padding
    mask[2, :2] = False  # left padding: leading masked steps output zeros
    return x, mask


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.trainable_weights:
        v.assign(rng.normal(0.0, 0.6, v.shape).astype("float32"))


def pair(name, **rnn_args):
    """RNN(cell) and the fast layer with the same random weights."""
    cell_cls, layer_cls = KINDS[name]
    slow, fast = keras.layers.RNN(cell_cls(U), **rnn_args), layer_cls(U, **rnn_args)
    slow.build((B, T, U))
    fast.build((B, T, U))
    randomize(slow)
    fast.set_weights(slow.get_weights())
    return slow, fast


def assert_same(a, b, atol=EXACT):
    a, b = tree_list(a), tree_list(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol)


def tree_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


RNN_CONFIGS = [
    {},
    {"return_sequences": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"go_backwards": True},
    {"return_sequences": True, "zero_output_for_mask": True},
    {"return_sequences": True, "zero_output_for_mask": True, "go_backwards": True},
    {"return_state": True, "go_backwards": True, "unroll": True},
    {"return_sequences": True, "zero_output_for_mask": True, "go_backwards": True, "unroll": True},
]


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("config", RNN_CONFIGS, ids=lambda c: "-".join(c) or "default")
def test_fast_layer_equals_rnn_of_cell(name, config):
    slow, fast = pair(name, **config)
    x, mask = inputs()
    h0 = np.random.default_rng(3).normal(size=(B, U)).astype("float32")
    assert_same(fast(x, mask=mask), slow(x, mask=mask))
    assert_same(fast(x), slow(x))
    assert_same(fast(x, initial_state=[h0], mask=mask), slow(x, initial_state=[h0], mask=mask))


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_unroll_gives_same_outputs(name, go_backwards):
    x, mask = inputs()
    args = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    slow, _ = pair(name, **args)
    slow_unrolled, fast_unrolled = pair(name, unroll=True, **args)
    assert_same(slow_unrolled(x, mask=mask), slow(x, mask=mask))
    assert_same(fast_unrolled(x, mask=mask), slow(x, mask=mask))


@pytest.mark.parametrize("name", list(KINDS))
def test_bidirectional_fast_equals_bidirectional_rnn_of_cell(name):
    cell_cls, layer_cls = KINDS[name]
    x, mask = inputs()
    slow = keras.layers.Bidirectional(keras.layers.RNN(cell_cls(U), return_sequences=True))
    fast = keras.layers.Bidirectional(layer_cls(U, return_sequences=True))
    slow.build((B, T, U))
    fast.build((B, T, U))
    randomize(slow)
    fast.set_weights(slow.get_weights())
    y = np.asarray(fast(x, mask=mask))
    assert y.shape == (B, T, 2 * U)
    assert_same(y, slow(x, mask=mask))
    # forward half == the forward layer alone; padded steps output zeros inside Bidirectional
    forward = keras.layers.RNN(cell_cls(U), return_sequences=True, zero_output_for_mask=True)
    forward.build((B, T, U))
    forward.set_weights(slow.forward_layer.get_weights())
    assert_same(y[..., :U], forward(x, mask=mask))
    assert np.all(y[1, 3:] == 0.0)


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("fast", [False, True], ids=["rnn_cell", "fast"])
def test_stateful_carries_state_between_calls_and_resets(name, fast):
    x, _ = inputs()
    slow_layer, fast_layer = pair(name, stateful=True, return_sequences=True)
    layer = fast_layer if fast else slow_layer
    _, reference = pair(name, return_sequences=True)
    full = np.asarray(reference(x))
    first = np.asarray(layer(x[:, :2]))
    second = np.asarray(layer(x[:, 2:]))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=EXACT)
    layer.reset_state()
    np.testing.assert_allclose(np.asarray(layer(x[:, :2])), full[:, :2], atol=EXACT)


def _memory_task(seed=0):
    """Recall the first input of a sequence from the last state."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 4, U)).astype("float32")
    return x, x[:, 0, :]


@pytest.mark.parametrize("name", list(KINDS))
def test_training_reduces_loss_and_every_weight_gets_gradient(name):
    cell_cls, layer_cls = KINDS[name]
    x, y = _memory_task()
    models = {
        kind: keras.Sequential([keras.Input((4, U)), rnn, keras.layers.Dense(U)])
        for kind, rnn in (("cell", keras.layers.RNN(cell_cls(U))), ("fast", layer_cls(U)))
    }
    mse = keras.losses.MeanSquaredError()
    for model in models.values():
        with tf.GradientTape() as tape:
            loss = mse(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        for v, g in zip(model.trainable_variables, grads):
            assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0.0, v.path

    model, optimizer = models["fast"], keras.optimizers.Adam(0.03)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = mse(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        )
        return loss

    losses = [float(train_step()) for _ in range(30)]
    assert losses[-1] < 0.8 * losses[0], losses


def _model(rnn, bidirectional=False):
    layer = keras.layers.Bidirectional(rnn) if bidirectional else rnn
    inp = keras.Input((None, U))
    return keras.Model(inp, keras.layers.Dense(2)(layer(keras.layers.Masking()(inp))))


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("wrap", ["rnn_cell", "fast", "projected", "bidirectional_fast"])
def test_keras_file_round_trip_safe_mode(name, wrap, tmp_path):
    cell_cls, layer_cls = KINDS[name]
    rnn = {
        "rnn_cell": lambda: keras.layers.RNN(cell_cls(U, recurrent_dropout=0.1)),
        "fast": lambda: layer_cls(U, dropout=0.1, seed=7),
        "projected": lambda: ProjectedRNN(cell_cls(U), go_backwards=True),
        "bidirectional_fast": lambda: layer_cls(U, return_sequences=True),
    }[wrap]()
    model = _model(rnn, bidirectional=wrap.startswith("bidirectional"))
    randomize(model)
    x, _ = inputs()
    x[1, 3:] = 0.0  # padded by Masking
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert_same(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.0)


@pytest.mark.parametrize("name", list(KINDS))
def test_get_config_round_trip(name):
    cell_cls, layer_cls = KINDS[name]
    cell = cell_cls(
        U,
        use_bias=False,
        dropout=0.25,
        recurrent_dropout=0.5,
        seed=3,
        kernel_regularizer="l2",
        recurrent_initializer="glorot_normal",
    )
    assert cell_cls.from_config(cell.get_config()).get_config() == cell.get_config()
    layer = layer_cls(
        U,
        use_bias=False,
        dropout=0.25,
        seed=3,
        return_sequences=True,
        go_backwards=True,
        stateful=True,
        unroll=True,
        name="rnn_x",
    )
    config = layer.get_config()
    assert config["units"] == U and config["dropout"] == 0.25 and "cell" not in config
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config and isinstance(clone.cell, cell_cls)
    assert (clone.units, clone.go_backwards, clone.cell.use_bias) == (U, True, False)


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("fast", [False, True], ids=["rnn_cell", "fast"])
def test_dropout_only_in_training(name, fast):
    cell_cls, layer_cls = KINDS[name]
    args = {"dropout": 0.3, "recurrent_dropout": 0.3, "seed": 5, "return_sequences": True}
    layer = (
        layer_cls(U, **args)
        if fast
        else keras.layers.RNN(
            cell_cls(U, **{k: args.pop(k) for k in ("dropout", "recurrent_dropout", "seed")}),
            **args,
        )
    )
    _, plain = pair(name, return_sequences=True)
    layer.build((B, T, U))
    layer.set_weights(plain.get_weights())
    x, mask = inputs()
    assert_same(layer(x, mask=mask, training=False), plain(x, mask=mask))
    trained = np.asarray(layer(x, mask=mask, training=True))
    assert np.all(np.isfinite(trained))
    assert np.abs(trained - np.asarray(plain(x, mask=mask))).max() > 1e-3


def test_projected_rnn_rejects_other_cells():
    with pytest.raises(TypeError, match="ProjectedRNNCell"):
        ProjectedRNN(keras.layers.GRUCell(U))


def test_fast_layer_trains_under_xla_with_dropout():
    x, mask = inputs()
    x[~mask] = 0.0
    y = np.random.default_rng(4).normal(size=(B, 2)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((T, U)),
            keras.layers.Masking(),
            MUT2(U, dropout=0.2, recurrent_dropout=0.2),
            keras.layers.Dense(2),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse", jit_compile=True)
    assert model.jit_compile
    eager = np.asarray(model(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), eager, atol=1e-5)
    before = [np.asarray(w) for w in model.trainable_weights]
    history = model.fit(x, y, epochs=2, batch_size=B, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.abs(np.asarray(w) - b).max() > 0 for w, b in zip(model.trainable_weights, before))
