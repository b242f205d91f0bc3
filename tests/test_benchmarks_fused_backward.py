"""The hand-written backward pass that makes the benchmarked cells fast equals autodiff.

``ProjectedRNN`` trains ``VanillaRNN`` and ``MUT1``-``MUT3`` through
``seqlayers.projected.fused_recurrence`` (a custom gradient with the weight gradients computed
once per sequence). Its outputs must be the layer's outputs and its gradients (weights and
inputs) those of autodiff through keras' own loop, for every option the fast path accepts.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import seqlayers
from seqlayers.projected import ProjectedRNN

LAYERS = ("VanillaRNN", "MUT1", "MUT2", "MUT3")
OPTIONS = (
    {},
    {"return_sequences": True},
    {"return_sequences": True, "go_backwards": True},
    {"recurrent_dropout": 0.4, "seed": 3},
)


def _outputs_and_gradients(layer, x, h0):
    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        y = layer(x, initial_state=[h0], training=True)
        loss = tf.reduce_sum(tf.sin(y) * tf.range(1.0, 1.0 + y.shape[-1]))
    grads = tape.gradient(loss, [v.value for v in layer.trainable_variables] + [x, h0])
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("name", LAYERS)
def test_fused_backward_equals_autodiff(name, options, monkeypatch):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((3, 5, 4)), tf.float32)
    h0 = tf.constant(rng.standard_normal((3, 4)) * 0.5, tf.float32)
    layer = getattr(seqlayers, name)(4, **options)
    layer(x)
    assert layer.uses_fused_backward(None, True)
    seed_state = layer.cell.seed_generator.state.numpy()
    y_fused, g_fused = _outputs_and_gradients(layer, x, h0)
    layer.cell.seed_generator.state.assign(seed_state)  # the same dropout masks again
    monkeypatch.setattr(ProjectedRNN, "uses_fused_backward", lambda self, mask, training: False)
    y_ref, g_ref = _outputs_and_gradients(layer, x, h0)
    np.testing.assert_array_equal(y_fused, y_ref)
    assert len(g_fused) == len(g_ref) == len(layer.trainable_variables) + 2
    for fused, ref in zip(g_fused, g_ref):
        np.testing.assert_allclose(fused, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("jit", [True, False], ids=["xla", "graph"])
@pytest.mark.parametrize("name", ["MUT3", "VanillaRNN"])
def test_compiled_fused_backward_with_unknown_length_equals_autodiff(name, jit):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((2, 6, 3)), tf.float32)
    layer = getattr(seqlayers, name)(3)
    layer(x)
    variables = [v.value for v in layer.trainable_variables]

    def grads(x, training):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(x, training=training)))
        return tape.gradient(loss, variables)

    # batches padded per batch have an unknown length when the step is traced
    spec = [tf.TensorSpec((None, None, 3), tf.float32)]
    fused = tf.function(lambda x: grads(x, True), jit_compile=jit, input_signature=spec)(x)
    reference = grads(x, False)  # inference mode: keras' loop and autodiff
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_fast_path_only_where_it_applies():
    layer = seqlayers.VanillaRNN(4)
    mask = tf.constant([[True, False]])
    assert layer.uses_fused_backward(None, True)
    assert not layer.uses_fused_backward(None, False)  # inference: keras' loop
    assert not layer.uses_fused_backward(mask, True)  # masks: keras' loop
    assert not seqlayers.VanillaRNN(4, unroll=True).uses_fused_backward(None, True)
    assert not seqlayers.VanillaRNN(4, activation="relu").uses_fused_backward(None, True)
