"""Where the decoder looked: the image once per generated word, that step's attention overlaid.

Each panel shows the input image with the attention weights of one decoding step (the grid of
encoder positions, stretched over the image with bilinear smoothing, colour and opacity growing
with the weight) drawn on top; the panel
title is the word that step produced, and the last panel the step that produced ``[END]``.
Drawn with matplotlib on its own Agg figure (no pyplot state) and written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from apps.common.rundir import atomic_output

MAX_COLUMNS = 6


def _stretch(grid: np.ndarray, size: int) -> np.ndarray:
    """A ``(h, w)`` weight grid stretched to ``(size, size)`` (bilinear), scaled to peak 1."""
    from PIL import Image

    peak = float(grid.max())
    scaled = (grid / peak if peak > 0 else grid).astype(np.float32)
    img = Image.fromarray(scaled, "F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)


def attention_figure(image: np.ndarray, words: Sequence[str], weights: np.ndarray,
                     out_png: str | os.PathLike, *, grid: tuple[int, int],
                     title: str = "") -> Path:  # fmt: skip
    """Draw the attention of every decoding step over ``image``; returns the PNG path.

    Args:
        image: ``(S, S, C)`` uint8, the model's input.
        words: the generated words (without ``[END]``).
        weights: ``(len(words) + 1, h * w)`` attention weights, one row per step (the last row
            produced ``[END]``), e.g. :meth:`apps.captioning.decode.Captioner.attention`.
        out_png: where to write the PNG.
        grid: ``(h, w)`` of the encoder grid.
        title: shown above the panels (with the caption).

    Raises:
        ValueError: ``weights`` does not have one row per step and one column per position.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from apps.captioning.vocab import detokenize

    h, w = int(grid[0]), int(grid[1])
    weights = np.asarray(weights, dtype=np.float64)
    labels = [*words, "[END]"]
    if weights.ndim != 2 or weights.shape != (len(labels), h * w):
        raise ValueError(
            f"weights must be (len(words) + 1, h * w) = ({len(labels)}, {h * w}). "
            f"Received: shape={weights.shape}"
        )
    size = image.shape[0]
    picture = image[..., 0] if image.shape[-1] == 1 else image
    cols = min(MAX_COLUMNS, len(labels))
    rows = -(-len(labels) // cols)
    fig = Figure(figsize=(2.0 * cols, 2.1 * rows + 0.5), dpi=80)
    FigureCanvasAgg(fig)
    extent = (0, size, size, 0)
    cmap = matplotlib.colormaps["jet"]
    for k, (label, row) in enumerate(zip(labels, weights)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, extent=extent,
                  vmin=0, vmax=255, interpolation="nearest")  # fmt: skip
        heat = _stretch(row.reshape(h, w), size)
        overlay = cmap(heat)
        overlay[..., 3] = 0.7 * heat  # transparent where the step did not look
        ax.imshow(overlay, extent=extent, interpolation="nearest")
        ax.set_title(label, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = detokenize(list(words))
    fig.suptitle(f"{title}: “{caption}”" if title else f"“{caption}”", fontsize=11)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
