"""Calibration inputs for ``int8`` exports of models fed post-padded sequences.

An ``int8`` export unrolled at a fixed length ``T`` (``--seq-len T``) has one copy of each op
per step, each calibrated on its own: every calibration example is post-padded to ``T``. When
*no* example reaches the last steps, the backward half of a bidirectional layer (which reads
the padding first) only ever sees its zero initial state there, so the converter calibrates
those steps' recurrent products to an empty range (a scale of ~1e-8). Such a file
holds builtin ops only, but the XNNPACK delegate (LiteRT's default CPU path, also on phones)
refuses to prepare it ("failed to create XNNPACK runtime": a requantization scale above 256),
and a real input of that length would be clipped there anyway.

:func:`with_full_length` fixes the calibration set, not the model: it mixes in examples made
of consecutive real examples joined end to end up to ``T`` steps, so every step is calibrated
on real tokens. App hooks whose training inputs are shorter than the export length call it in
their ``representative_inputs``. (The default int8 export keeps the ``WHILE`` loop, one body
for every step, calibrated over all of them (:mod:`export.loop_calibration`), so it has no such
empty step; the joined examples still show it the states of long inputs.)

>>> [len(x) for x in with_full_length([[1, 2], [3], [4, 5, 6], [7]], 4, every=2)]
[4, 2, 1, 3, 1]
>>> with_full_length([[1, 2]], None)
[[1, 2]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _steps(example: Any) -> int:
    if isinstance(example, Mapping):
        return min(len(np.asarray(v)) for v in example.values())
    return len(np.asarray(example))


def _join(parts: Sequence[Any], length: int) -> Any:
    if isinstance(parts[0], Mapping):
        return {
            name: np.concatenate([np.asarray(p[name]) for p in parts])[:length] for name in parts[0]
        }
    return np.concatenate([np.asarray(p) for p in parts])[:length]


def packed_examples(examples: Sequence[Any], length: int) -> list[Any]:
    """Consecutive ``examples`` joined end to end (time axis 0), cut to ``length`` steps.

    Each example is an array-like ``(T_i, ...)`` or a dict of them sharing the time axis 0
    (e.g. ``{"word_ids": (T_i,), "char_ids": (T_i, C)}``; the other axes must agree). A tail
    shorter than ``length`` is dropped.
    """
    out, parts, steps = [], [], 0
    for example in examples:
        if _steps(example) == 0:
            continue
        parts.append(example)
        steps += _steps(example)
        if steps >= length:
            out.append(_join(parts, length))
            parts, steps = [], 0
    return out


def with_full_length(examples: Sequence[Any], length: int | None, every: int = 8) -> list[Any]:
    """``examples`` with a full-length packed example (:func:`packed_examples`) before every
    ``every``-th one, while packed examples last; unchanged when ``length`` is ``None``.

    Interleaved (not appended) because the converter calibrates on the first examples only.
    (Packed examples are added even when a few real examples reach ``length``: the last steps
    calibrated on one or two examples still failed to load under XNNPACK.)
    """
    examples = list(examples)
    if not length or not examples:
        return examples
    if every < 1:
        raise ValueError(f"every must be >= 1. Received: every={every}")
    packed = packed_examples(examples, length)
    out = []
    for i, example in enumerate(examples):
        if i % every == 0 and packed:
            out.append(packed.pop(0))
        out.append(example)
    return out
