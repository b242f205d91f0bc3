"""Translation metrics (sacreBLEU BLEU and chrF on detokenised text, exact match), per
source-length buckets, and the Bahdanau-style figure of BLEU against source length.

BLEU note: ``builtin:numbers`` in German has one-word targets (``dreihunderteinundzwanzig``);
BLEU counts 4-grams of words, so on one-word sentences it is 0 whatever the quality — read chrF
and exact match there. French and Spanish numbers and real sentences have multi-word targets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """sacreBLEU's corpus BLEU and chrF (default settings: 13a tokenisation, case-sensitive),
    and the share of exact matches, all on a 0–100 scale.

    Example:
        >>> round(corpus_scores(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"], 6)
        100.0
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError("hypotheses and references must have the same length")
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "exact_match": 0.0}
    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score
    chrf = sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score
    exact = 100.0 * float(np.mean([h == r for h, r in zip(hypotheses, references)]))
    return {"bleu": float(bleu), "chrf": float(chrf), "exact_match": exact}


def length_buckets(lengths: Sequence[int], max_buckets: int = 10) -> list[tuple[int, int]]:
    """Inclusive ``(low, high)`` source-length ranges covering ``lengths``, at most
    ``max_buckets`` of equal width.

    Example:
        >>> length_buckets([1, 2, 3, 4], max_buckets=2)
        [(1, 2), (3, 4)]
    """
    if not lengths:
        return []
    low, high = int(min(lengths)), int(max(lengths))
    width = max(1, math.ceil((high - low + 1) / max_buckets))
    return [(a, min(a + width - 1, high)) for a in range(low, high + 1, width)]


def scores_by_length(
    source_lengths: Sequence[int],
    hypotheses: Sequence[str],
    references: Sequence[str],
    max_buckets: int = 10,
) -> list[dict[str, Any]]:
    """Corpus scores per source-length bucket: ``[{"low", "high", "count", "bleu", "chrf",
    "exact_match"}]`` (empty buckets left out)."""
    rows = []
    lengths = np.asarray(source_lengths)
    for low, high in length_buckets(list(source_lengths), max_buckets):
        idx = np.flatnonzero((lengths >= low) & (lengths <= high))
        if not len(idx):
            continue
        scores = corpus_scores([hypotheses[i] for i in idx], [references[i] for i in idx])
        rows.append({"low": low, "high": high, "count": len(idx), **scores})
    return rows


def plot_by_length(runs: Mapping[str, Sequence[Mapping[str, Any]]], out_png: str | os.PathLike,
                   *, title: str = "") -> Path:  # fmt: skip
    """BLEU (left) and chrF (right) against source length, one line per run.

    Args:
        runs: label (``attention``, ``noattention``) -> rows of :func:`scores_by_length`.
        out_png: the PNG to write (atomically).
        title: figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from apps.common.rundir import atomic_output

    fig = Figure(figsize=(9.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 2, k + 1) for k in range(2)]
    for ax, metric, name in zip(axes, ("bleu", "chrf"), ("BLEU", "chrF")):
        for label, rows in runs.items():
            xs = [(r["low"] + r["high"]) / 2 for r in rows]
            ax.plot(xs, [r[metric] for r in rows], marker="o", label=label)
        ax.set_xlabel("source length (tokens)")
        ax.set_ylabel(name)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
