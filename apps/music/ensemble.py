"""Ensembles of piano-roll models: the members' key probabilities averaged, as one model.

Independently trained models make different errors; averaging their per-key probabilities
``P(key k on at t) = mean_m sigmoid(logit_m,k)`` gives again 88 independent Bernoullis per step
(so the benchmark's NLL per time step applies unchanged) and usually a lower NLL than any
member. :func:`build_ensemble` wraps trained members in one ``keras.Model`` with the same input
and output as a single roll model (frames in, 88 logits out), so ``evaluate``, ``generate`` and
``python -m export`` work on it as on any run; :func:`build_ensemble_step` is its one-step twin
(each member's state carried side by side).

The app's ``ensemble`` verb makes such a run dir from trained runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from apps.music.notes import KEYS

MEMBER_PREFIX = "member_"


@keras.saving.register_keras_serializable(package="apps.music")
class MeanProbabilityLogits(keras.layers.Layer):
    """Logits of the mean of independent sigmoid probabilities.

    For member logits ``l_1..l_n`` returns ``logit(p)`` with ``p = mean_m sigmoid(l_m)``,
    computed as ``log p - log(1 - p)`` from log-sum-exps of log-sigmoids, so it stays exact
    where some member is certain (no clipping).

    Args:
        **kwargs: base layer arguments (``name``, ``dtype``).

    Call arguments:
        inputs: list of ``n >= 1`` tensors of one shape ``(..., K)`` (logits).

    Returns:
        ``(..., K)`` logits, ``sigmoid`` of which is the mean member probability.

    Example:
        >>> MeanProbabilityLogits()([np.zeros((1, 2)), np.zeros((1, 2))])  # p = 1/2 -> 0
    """

    def call(self, inputs: Sequence[Any]) -> Any:
        stacked = ops.stack([ops.cast(x, "float32") for x in inputs], axis=0)
        # log p - log(1 - p): the -log n of both means cancels
        log_on = ops.logsumexp(ops.log_sigmoid(stacked), axis=0)
        log_off = ops.logsumexp(ops.log_sigmoid(-stacked), axis=0)
        return log_on - log_off

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return tuple(input_shape[0])


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble (``member_1``, ``member_2``, …); ``[]`` for a single
    model."""
    found = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)
    ]  # fmt: skip
    return sorted(found, key=lambda m: int(m.name[len(MEMBER_PREFIX) :]))


def build_ensemble(models: Sequence[keras.Model], name: str = "music_roll_ensemble") -> keras.Model:
    """One roll model averaging the key probabilities of ``models``.

    Args:
        models: two or more trained roll models (``(B, T, 88)`` frames -> ``(B, T, 88)``
            logits), e.g. ``model.keras`` of runs with different cells. Their layers (and
            weights) are shared, not copied.
        name: the model's name.

    Returns:
        ``keras.Model`` ``frames (B, T, 88) -> logits (B, T, 88)``; member ``i`` is the nested
        model ``member_i``.

    Raises:
        ValueError: fewer than two models, or one that is not a roll model.
    """
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models. Received: {len(models)}")
    frames = keras.Input(shape=(None, KEYS), dtype="float32", name="frames")
    logits = []
    for i, model in enumerate(models, 1):
        if tuple(model.inputs[0].shape[1:]) != (None, KEYS) or model.outputs[0].shape[-1] != KEYS:
            raise ValueError(f"member {i} ({model.name}) is not a piano-roll model "
                             f"(frames (B, T, {KEYS}) -> logits (B, T, {KEYS}))")  # fmt: skip
        member = keras.Model(model.inputs[0], model.outputs[0], name=f"{MEMBER_PREFIX}{i}")
        logits.append(member(frames))
    out = MeanProbabilityLogits(name="logits")(logits)
    return keras.Model(frames, out, name=name)


def build_ensemble_step(model: keras.Model) -> keras.Model:
    """The one-step twin of an ensemble: ``(frame, states...) -> (logits, states...)``, the
    states of member 1 first, then member 2's, …; sharing the members' layers.

    Args:
        model: from :func:`build_ensemble` (or its ``model.keras``).

    Returns:
        ``keras.Model`` as :func:`apps.music.model.build_step_model` returns for one model.
    """
    from apps.music.model import build_step_model

    frame = keras.Input(shape=(KEYS,), dtype="float32", name="frame")
    state_inputs, new_states, logits = [], [], []
    for member in ensemble_members(model):
        step = build_step_model(member)
        states = [keras.Input(shape=tuple(t.shape[1:]), dtype="float32",
                              name=f"{member.name}_state_{j}")
                  for j, t in enumerate(step.inputs[1:], 1)]  # fmt: skip
        out = step([frame, *states])
        logits.append(out[0])
        state_inputs += states
        new_states += list(out[1:])
    mean = model.get_layer("logits")(logits)
    return keras.Model([frame, *state_inputs], [mean, *new_states], name=f"{model.name}_step")
