"""Small plotting helpers shared by the apps (matplotlib, Agg canvas, atomic PNG writes).

No pyplot global state: each function builds its own ``Figure`` on an Agg canvas, so plotting
works headless and never changes the process' matplotlib backend.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from apps.common.rundir import atomic_output


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


def read_history(history_csv: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a keras ``CSVLogger`` file as float lists (``NA``/blank -> nan)."""
    with open(history_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            columns.setdefault(key, []).append(number)
    return columns


def training_curves(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """One panel per metric (train and ``val_`` curves) from a history CSV; returns the PNG path.

    Example:
        >>> training_curves("run/history.csv", "run/plots/curves.png")
    """
    columns = read_history(history_csv)
    epochs = [e + 1 for e in columns.get("epoch", [])]
    metrics = [
        k for k in columns if k != "epoch" and not k.startswith("val_") and k != "learning_rate"
    ]
    metrics = metrics or ["loss"]
    fig, axes = _figure(4.0 * len(metrics), 3.2, ncols=len(metrics))
    for ax, metric in zip(axes, metrics):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in columns and epochs:
                ax.plot(epochs, columns[key], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    return _save(fig, out_png)


def confusion_matrix(
    cm: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    out_png: str | os.PathLike,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Counts of (true row, predicted column), annotated, as a PNG."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"cm must be square with one row per label. Received: shape={cm.shape}")
    size = 1.6 + 0.7 * len(labels)
    fig, (ax,) = _figure(size + 1.0, size)
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            text = f"{cm[i, j]:g}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="white" if cm[i, j] > threshold else "black",
            )
    return _save(fig, out_png)


def heatmap(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    xlabels: Sequence[str],
    ylabels: Sequence[str],
    out_png: str | os.PathLike,
    title: str = "",
) -> Path:
    """A labelled heat map (attention weights: rows = output steps, columns = input steps)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(ylabels), len(xlabels)):
        raise ValueError(
            f"matrix shape must be (len(ylabels), len(xlabels)) = ({len(ylabels)}, "
            f"{len(xlabels)}). Received: shape={matrix.shape}"
        )
    fig, (ax,) = _figure(1.5 + 0.4 * len(xlabels), 1.2 + 0.35 * len(ylabels))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(xlabels)), labels=list(xlabels), rotation=90)
    ax.set_yticks(range(len(ylabels)), labels=list(ylabels))
    if title:
        ax.set_title(title)
    return _save(fig, out_png)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float] | Mapping[str, Sequence[float]],
    out_png: str | os.PathLike,
    *,
    title: str = "",
    ylabel: str = "",
    annotate: bool = True,
) -> Path:
    """Bars per label; ``values`` may be one series or ``{series name: values}`` (grouped)."""
    series = dict(values) if isinstance(values, Mapping) else {"": list(values)}
    for name, vals in series.items():
        if len(vals) != len(labels):
            raise ValueError(
                f"each series needs one value per label ({len(labels)}). "
                f"Received: {name or 'values'} with {len(vals)}"
            )
    fig, (ax,) = _figure(max(4.0, 1.0 + 0.8 * len(labels) * len(series)), 3.4)
    width = 0.8 / len(series)
    x = np.arange(len(labels))
    for k, (name, vals) in enumerate(series.items()):
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=name or None)
        if annotate:
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(x, labels=list(labels), rotation=30 if len(labels) > 4 else 0)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    return _save(fig, out_png)
