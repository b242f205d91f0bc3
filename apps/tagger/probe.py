"""The "Teddy" probe: minimal pairs whose decisive word is tagged by its right-hand context.

Each pair is two sentences sharing every token up to and including the *decisive* token, whose
gold tag differs between them (``He said, "Teddy bears...`` vs ``He said, "Teddy Roosevelt...``).
A left-to-right tagger computes the decisive token's tag from the shared prefix only, so it
gives both sentences the same tag and can get at most one of the two right. A bidirectional
tagger also reads the words after it. For one-way models the probe checks that the decisive
token's probabilities are identical across the pair (the lecture's argument, verified) and
raises ``RuntimeError`` if they are not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError
from apps.common.sources import read_text_strict
from apps.tagger.tokens import parse_markup

PREFIX_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class ProbePair:
    """Two marked-up sentences and the index of their decisive token."""

    tokens_a: tuple[str, ...]
    tags_a: tuple[str, ...]
    tokens_b: tuple[str, ...]
    tags_b: tuple[str, ...]
    index: int

    @property
    def word(self) -> str:
        return self.tokens_a[self.index]


def default_pairs_path() -> Path:
    """The shipped pairs (``apps/tagger/probe_pairs.json``, written for this project)."""
    return Path(__file__).with_name("probe_pairs.json")


def make_pair(a: str, b: str) -> ProbePair:
    """A :class:`ProbePair` from two ``[TYPE words]`` marked-up sentences.

    Raises:
        ValueError: same tags everywhere, or tokens that differ before the decisive token.
    """
    tokens_a, tags_a = parse_markup(a)
    tokens_b, tags_b = parse_markup(b)
    index = next((i for i, (x, y) in enumerate(zip(tags_a, tags_b)) if x != y), None)
    if index is None:
        raise ValueError("the two sentences have the same tags where they overlap")
    if tokens_a[: index + 1] != tokens_b[: index + 1]:
        raise ValueError(
            f"the sentences must share every token up to the decisive one "
            f"({tokens_a[index] if index < len(tokens_a) else '?'!r})"
        )
    return ProbePair(tuple(tokens_a), tuple(tags_a), tuple(tokens_b), tuple(tags_b), index)


def load_pairs(path: str | os.PathLike | None = None) -> list[ProbePair]:
    """Pairs from ``{"pairs": [[sentence_a, sentence_b], ...]}`` (default: the shipped file).

    Raises:
        DataError: unreadable file or a malformed pair (the message names it).
    """
    path = Path(path) if path is not None else default_pairs_path()
    try:
        data = json.loads(read_text_strict(path, flag="--pairs"))
    except json.JSONDecodeError as e:
        raise DataError(f"--pairs: {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    items = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise DataError(f'--pairs: {path} must hold {{"pairs": [["sentence a", "sentence b"]]}}')
    pairs = []
    for n, item in enumerate(items, 1):
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item)
        ):
            raise DataError(f"--pairs: pair {n} of {path} must be two strings")
        try:
            pairs.append(make_pair(*item))
        except ValueError as e:
            raise DataError(f"--pairs: pair {n} of {path}: {e}") from None
    return pairs


def probe_model(model: Any, vocab: Any, pairs: list[ProbePair], *, name: str,
                bidirectional: bool) -> dict[str, Any]:  # fmt: skip
    """Score one model on the pairs.

    Returns:
        ``{"model", "bidirectional", "pairs", "decisive_right" (of 2 * pairs),
        "both_right" (pairs with both decisive tags right), "max_prefix_diff", "results"}``.

    Raises:
        RuntimeError: a one-way model whose decisive-token probabilities differ across a pair
            (it would be reading the right context it must not see).
    """
    from apps.tagger.train import decode_tags, predict_proba

    sentences = [s for p in pairs for s in (p.tokens_a, p.tokens_b)]
    probs = predict_proba(model, vocab, sentences)
    results, right, both, max_diff = [], 0, 0, 0.0
    for k, pair in enumerate(pairs):
        pa, pb = probs[2 * k], probs[2 * k + 1]
        tags_a, tags_b = decode_tags(pa, vocab), decode_tags(pb, vocab)
        got_a, got_b = tags_a[pair.index], tags_b[pair.index]
        ok_a, ok_b = got_a == pair.tags_a[pair.index], got_b == pair.tags_b[pair.index]
        right += ok_a + ok_b
        both += ok_a and ok_b
        diff = float(np.abs(pa[pair.index] - pb[pair.index]).max())
        max_diff = max(max_diff, diff)
        results.append({
            "word": pair.word, "index": pair.index,
            "next_a": " ".join(pair.tokens_a[pair.index + 1 : pair.index + 2]),
            "next_b": " ".join(pair.tokens_b[pair.index + 1 : pair.index + 2]),
            "a": " ".join(pair.tokens_a), "gold_a": pair.tags_a[pair.index], "pred_a": got_a,
            "b": " ".join(pair.tokens_b), "gold_b": pair.tags_b[pair.index], "pred_b": got_b,
        })  # fmt: skip
    if not bidirectional and max_diff > PREFIX_TOLERANCE:
        raise RuntimeError(
            f"the one-way model {name} gave the decisive word of a pair different probabilities "
            f"(max difference {max_diff:.3g}); its tags must depend on the left context only"
        )
    return {
        "model": name,
        "bidirectional": bidirectional,
        "pairs": len(pairs),
        "decisive_right": int(right),
        "both_right": int(both),
        "max_prefix_diff": max_diff,
        "results": results,
    }
