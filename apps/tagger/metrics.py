"""Scores of a tagger: entity-level precision / recall / F1 (seqeval) and token accuracy.

Entity scores use ``seqeval`` (the maintained Python port of CoNLL's ``conlleval``) in its
default mode: an entity counts as correct only when its type and both boundaries match exactly;
``I-X`` after ``O`` starts an entity, as conlleval reads it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (0.0 for no tokens)."""
    _check_lengths(gold, pred)
    total = sum(len(g) for g in gold)
    right = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    return right / total if total else 0.0


def _check_lengths(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for n, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted")


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision / recall / F1 over exact entity spans, and the same per entity type.

    Args:
        gold: gold tag sequences (IOB2 / IOB1 / BIOES).
        pred: predicted tag sequences, same lengths.

    Returns:
        ``{"precision", "recall", "f1", "entities" (gold count), "predicted" (count),
        "per_type": {type: {"precision", "recall", "f1", "support"}}}``; a score with a zero
        denominator is 0.

    Example:
        >>> entity_scores([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"]
        0.0
    """
    from seqeval.metrics import classification_report
    from seqeval.metrics.sequence_labeling import get_entities

    _check_lengths(gold, pred)
    gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
    n_gold = len(get_entities(gold_l))
    n_pred = len(get_entities(pred_l))
    if n_gold == 0 and n_pred == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "entities": 0, "predicted": 0,
                "per_type": {}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold_l, pred_l, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    per_type = {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "entities": n_gold,
        "predicted": n_pred,
        "per_type": dict(sorted(per_type.items())),
    }


def per_tag_accuracy(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, dict[str, float | int]]:
    """For each gold tag: the fraction of its tokens tagged right, and its count."""
    _check_lengths(gold, pred)
    counts: dict[str, list[int]] = {}
    for g, p in zip(gold, pred):
        for a, b in zip(g, p):
            row = counts.setdefault(a, [0, 0])
            row[0] += a == b
            row[1] += 1
    return {t: {"accuracy": r / n, "support": n} for t, (r, n) in sorted(counts.items())}
