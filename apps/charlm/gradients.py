"""The vanishing/exploding-gradient argument, measured.

Backpropagation through time multiplies one Jacobian ``∂h_{i+1}/∂h_i`` per step; for a vanilla
RNN each is ``W_hh^T diag(tanh'(·))``, whose norm is at most the largest singular value of
``W_hh`` (Bengio et al. 1994; Pascanu et al. 2013). Below 1 the gradient reaching ``k`` steps back
shrinks geometrically in ``k`` (vanishing), above 1 it can grow (exploding: hence clipping). The
LSTM's additive cell state (and the GRU's/MUT's gated interpolation) give the gradient a path
that is not squashed at every step.

:func:`gradient_norms` measures ``‖∂loss_t/∂x_{t−k}‖`` (``x`` the character embeddings) against
``k`` on real text; :func:`compare_cells` trains small models of several cells with one budget
and measures each at initialisation and after training; :func:`plot_gradients` draws the curves
on a log scale; :func:`largest_singular_values` gives ``σ_max(W_hh)`` of the vanilla layers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def probe_windows(ids: np.ndarray, count: int, length: int) -> np.ndarray:
    """``count`` windows of ``length + 1`` ids at evenly spaced offsets of ``ids`` (the last id of
    each is the target), ``(count, length + 1)``."""
    ids = np.asarray(ids, dtype=np.int32)
    if len(ids) < length + 1:
        raise ValueError(f"need at least {length + 1} ids, got {len(ids)}")
    starts = np.linspace(0, len(ids) - length - 1, num=count).astype(np.int64)
    return ids[starts[:, None] + np.arange(length + 1)[None, :]]


def gradient_norms(model: Any, windows: np.ndarray) -> np.ndarray:
    """``norms[k]``: the mean over windows of ``‖∂loss_t/∂x_{t−k}‖``, ``k = 0 … T−1``.

    ``loss_t`` is the cross-entropy of the last target of each window given its ``T`` inputs
    (read from zero state), ``x`` the embedded inputs, ``‖·‖`` the Euclidean norm.

    Args:
        model: a language model of :func:`apps.charlm.model.build_model` (stateful or not).
        windows: int ids ``(B, T + 1)``: inputs ``[:, :T]``, target ``[:, T]``.

    Returns:
        float64 ``(T,)``.
    """
    import tensorflow as tf

    from apps.charlm.model import rnn_layer_names, stateless_copy

    model = stateless_copy(model)
    windows = np.asarray(windows, dtype=np.int32)
    inputs, target = windows[:, :-1], windows[:, -1]
    x = tf.convert_to_tensor(model.get_layer("embedding")(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for name in rnn_layer_names(model):
            h = model.get_layer(name)(h, training=False)
        logits = model.get_layer("logits")(h[:, -1, :])
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
        )
    grads = tape.gradient(loss, x).numpy().astype(np.float64)  # (B, T, E); rows independent
    return np.linalg.norm(grads, axis=-1).mean(axis=0)[::-1].copy()


def largest_singular_values(model: Any) -> dict[str, float]:
    """``σ_max(W_hh)`` of every recurrent layer whose cell has a ``W_hh`` (the vanilla cell)."""
    from apps.charlm.model import rnn_layer_names

    out = {}
    for name in rnn_layer_names(model):
        w = getattr(model.get_layer(name).cell, "W_hh", None)
        if w is not None:
            out[name] = float(np.linalg.svd(np.asarray(w), compute_uv=False)[0])
    return out


def decay_rate(norms: np.ndarray) -> float:
    """Least-squares slope of ``log10 norm`` against ``k`` (decades per step; negative: the
    gradient vanishes with distance)."""
    norms = np.asarray(norms, dtype=np.float64)
    k = np.arange(len(norms))
    ok = norms > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(k[ok], np.log10(norms[ok]), 1)[0])


def train_briefly(model: Any, train_ids: np.ndarray, *, batch_size: int, bptt: int, steps: int,
                  learning_rate: float, clipnorm: float | None) -> float:  # fmt: skip
    """``steps`` windows of truncated BPTT on ``train_ids`` (a stateful ``model``); returns the
    mean loss of the last tenth of the steps (nats per character)."""
    from apps.charlm.data import make_dataset
    from apps.charlm.model import compile_model, reset_states

    compile_model(model, learning_rate, clipnorm)
    reset_states(model)
    ds = make_dataset(train_ids, batch_size, bptt).repeat().take(steps)
    losses = []
    for x, y in ds.as_numpy_iterator():
        losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
    tail = losses[-max(1, steps // 10) :]
    return float(np.mean(tail))


def compare_cells(
    cells: Sequence[str],
    train_ids: np.ndarray,
    probe_ids: np.ndarray,
    vocab_size: int,
    *,
    units: int,
    embedding_dim: int = 32,
    batch_size: int = 32,
    bptt: int = 64,
    steps: int = 200,
    horizon: int = 50,
    probes: int = 32,
    learning_rate: float = 3e-3,
    clipnorm: float | None = 5.0,
    seed: int = 1234,
    on_cell: Callable[[str, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train a one-layer model of each cell with the same budget; measure its gradient curve.

    Args:
        cells: cell names (``vanilla``, ``lstm``, ``gru``, ``mut1``…).
        train_ids: training character ids.
        probe_ids: ids the probe windows are cut from (validation text).
        vocab_size: number of character ids.
        units, embedding_dim, batch_size, bptt, learning_rate, clipnorm: model and training.
        steps: training windows per cell (0: measure at initialisation only).
        horizon: the largest ``k``.
        probes: windows averaged per curve.
        seed: the same initialisation seed for every cell.
        on_cell: called with ``(cell, result)`` after each cell.

    Returns:
        Per cell: ``{"cell", "init", "trained", "decay_init", "decay_trained", "ratio_init",
        "ratio_trained", "sigma_max_init", "sigma_max_trained", "train_loss"}`` (``trained``
        curves only when ``steps > 0``; ``sigma_max`` only for vanilla cells).
    """
    import keras

    from apps.charlm.model import build_model

    windows = probe_windows(probe_ids, probes, horizon + 1)
    results = []
    for cell in cells:
        keras.utils.set_random_seed(seed)
        model = build_model(cell, vocab_size, units=units, embedding_dim=embedding_dim,
                            batch_size=batch_size, seq_len=bptt, stateful=True, seed=seed)  # fmt: skip
        init = gradient_norms(model, windows)
        result: dict[str, Any] = {"cell": cell, "init": init.tolist(), "decay_init": decay_rate(init),
                                  "ratio_init": float(init[-1] / init[0])}  # fmt: skip
        sigma = largest_singular_values(model)
        if sigma:
            result["sigma_max_init"] = sigma["rnn_1"]
        if steps > 0:
            result["train_loss"] = train_briefly(model, train_ids, batch_size=batch_size, bptt=bptt,
                                                 steps=steps, learning_rate=learning_rate,
                                                 clipnorm=clipnorm)  # fmt: skip
            trained = gradient_norms(model, windows)
            result.update(trained=trained.tolist(), decay_trained=decay_rate(trained),
                          ratio_trained=float(trained[-1] / trained[0]))  # fmt: skip
            sigma = largest_singular_values(model)
            if sigma:
                result["sigma_max_trained"] = sigma["rnn_1"]
        results.append(result)
        if on_cell is not None:
            on_cell(cell, result)
    return results


def plot_gradients(curves: Sequence[tuple[str, Sequence[float], str]], path: str | os.PathLike,
                   *, title: str = "") -> Path:  # fmt: skip
    """``‖∂loss_t/∂x_{t−k}‖`` against ``k`` on a log scale; ``curves``: ``(label, norms, style)``
    with style ``"-"`` (trained), ``"--"`` (initialisation) or ``"own"`` (the run's own model:
    thick black). Curves whose labels start with the same word share a colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from apps.common.rundir import atomic_output

    fig = Figure(figsize=(7.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours: dict[str, Any] = {}
    for label, norms, style in curves:
        key = label.split(" ")[0]
        norms = np.asarray(norms, dtype=np.float64)
        floor = np.where(norms > 0, norms, np.nan)
        if style == "own":
            ax.plot(np.arange(len(norms)), floor, "-", label=label, color="black", lw=2.2)
            continue
        line = ax.plot(np.arange(len(norms)), floor, style, label=label, color=colours.get(key))[0]
        colours.setdefault(key, line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("k (steps back)")
    ax.set_ylabel("‖∂loss_t / ∂x_{t−k}‖")
    ax.set_title(title or "Gradient reaching k steps back")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def summary_line(result: dict[str, Any]) -> str:
    """One line per cell: decay in decades per step and ``norm[K]/norm[0]``."""
    init = f"init: {result['decay_init']:+.3f} dec/step (ratio {result['ratio_init']:.2e})"
    parts = [f"{result['cell']:<10}", init]
    if "decay_trained" in result:
        parts.append(f"trained: {result['decay_trained']:+.3f} dec/step "
                     f"(ratio {result['ratio_trained']:.2e}, loss {result['train_loss']:.3f})")  # fmt: skip
    if "sigma_max_init" in result:
        s = f"σ_max(W_hh) {result['sigma_max_init']:.3f}"
        if "sigma_max_trained" in result:
            s += f" -> {result['sigma_max_trained']:.3f}"
        parts.append(s)
    return "  ".join(parts)


def finite(value: float) -> float | None:
    """``value`` or ``None`` when it is not finite (for JSON)."""
    return value if math.isfinite(value) else None
