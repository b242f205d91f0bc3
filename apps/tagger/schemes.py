"""Entity tagging schemes: IOB1, IOB2 (BIO), BIOES — detection, conversion and spans.

Every NER source is converted to **IOB2** (``B-`` starts every entity, ``I-`` continues it)
when it is read; the model is trained on IOB2 tags and its predictions are repaired to valid
IOB2 before spans are read, so what is printed and what is scored agree.

- **IOB1** (CoNLL-2003's original, Wikigold): ``I-`` everywhere; ``B-`` only where an entity
  directly follows another of the same type. An ``I-X`` that starts an entity becomes ``B-X``.
- **IOB2 / BIO** (WNUT-17, CoNLL-2003 as redistributed): ``B-`` at every start.
- **BIOES / IOBES** (``S-`` single-token entity, ``E-`` last token; ``L-``/``U-`` of BILOU are
  read as ``E-``/``S-``): ``S-X`` becomes ``B-X``, ``E-X`` becomes ``I-X``.

Span reading follows conlleval (and seqeval's default mode): an ``I-X`` after ``O`` or after
another type starts a new entity. A file that mixes BIOES tags with ``I-`` tags that start
entities, or IOB1's chunk-starting ``I-`` with IOB2's ``B-`` after ``O``, is rejected: the two
readings disagree and guessing would silently change the gold spans.

Example:
    >>> to_iob2(["I-PER", "I-PER", "O", "I-LOC"])
    ['B-PER', 'I-PER', 'O', 'B-LOC']
    >>> spans(["B-PER", "I-PER", "O", "S-LOC"][:3])
    [Span(type='PER', start=0, end=2)]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

OUTSIDE = "O"
PREFIXES = ("B", "I", "E", "S")
_ALIASES = {"L": "E", "U": "S"}  # BILOU spelling of BIOES
_TAG = re.compile(r"^(?P<prefix>[BIESLU])[-_](?P<type>\S+)$")
SCHEMES = ("IOB1", "IOB2", "BIOES")


class SchemeError(ValueError):
    """A tag that is outside every scheme, or a sequence mixing schemes.

    Attributes:
        index: position of the offending tag in the sequence (``None`` for a whole file).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclasses.dataclass(frozen=True)
class Span:
    """One entity: ``tokens[start:end]`` of type ``type``."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``; ``L``/``U`` read as ``E``/``S``.

    Raises:
        SchemeError: a tag that is neither ``O`` nor ``PREFIX-TYPE`` with a prefix in
            ``B I E S`` (``L U``), e.g. ``"PER"``, ``"X-LOC"`` or ``"B-"``.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    match = _TAG.match(tag)
    if match is None:
        raise SchemeError(
            f"tag {tag!r} is outside the entity schemes (expected O or B-/I-/E-/S-TYPE)"
        )
    prefix = match["prefix"]
    return _ALIASES.get(prefix, prefix), match["type"]


def _starts_entity(prefix: str, kind: str | None, prev_prefix: str, prev_kind: str | None) -> bool:
    """Whether an I-tag starts an entity (conlleval: after O, after E/S, or another type)."""
    return prev_prefix in (OUTSIDE, "E", "S") or prev_kind != kind


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """The scheme of a corpus' tags: ``"IOB1"``, ``"IOB2"`` or ``"BIOES"``.

    ``IOB2`` is also the answer for tags that fit both readings (only ``O``, or ``B-`` at every
    start). ``IOB1`` when some ``I-`` starts an entity and no ``B-`` follows ``O``.

    Raises:
        SchemeError: a tag outside the schemes (``index`` is the sentence number), or mixed
            schemes.
    """
    has_bioes = i_starts = b_after_gap = False
    first_i_start = first_bioes = None
    for n, tags in enumerate(sentences):
        prev_prefix, prev_kind = OUTSIDE, None
        for tag in tags:
            try:
                prefix, kind = split_tag(tag)
            except SchemeError as e:
                raise SchemeError(str(e), n) from None
            if prefix in ("E", "S"):
                has_bioes = True
                first_bioes = n if first_bioes is None else first_bioes
            elif prefix == "I" and _starts_entity(prefix, kind, prev_prefix, prev_kind):
                i_starts = True
                first_i_start = n if first_i_start is None else first_i_start
            elif prefix == "B" and prev_prefix == OUTSIDE:
                b_after_gap = True
            prev_prefix, prev_kind = prefix, kind
    if has_bioes and i_starts:
        raise SchemeError(
            f"mixed tag schemes: BIOES tags (E-/S-, sentence {first_bioes + 1}) together with "
            f"I- tags that start an entity (IOB1 style, sentence {first_i_start + 1})"
        )
    if has_bioes:
        return "BIOES"
    if i_starts and b_after_gap:
        raise SchemeError(
            f"mixed tag schemes: I- tags that start an entity (IOB1, first in sentence "
            f"{first_i_start + 1}) together with B- tags after O (IOB2); convert the file to "
            "one scheme"
        )
    return "IOB1" if i_starts else "IOB2"


def spans(tags: Sequence[str]) -> list[Span]:
    """Entities of a tag sequence in any scheme, read as conlleval reads them.

    ``B-``/``S-`` start an entity; ``I-``/``E-`` continue the open entity of the same type, or
    start one when none is open (after ``O``, ``E-``, ``S-`` or another type); ``E-``/``S-``
    close it.

    Example:
        >>> spans(["B-PER", "I-PER", "I-LOC", "O", "S-ORG"])
        [Span(type='PER', start=0, end=2), Span(type='LOC', start=2, end=3),
         Span(type='ORG', start=4, end=5)]
    """
    out: list[Span] = []
    start, kind = None, None
    prev_prefix, prev_kind = OUTSIDE, None
    for i, tag in enumerate(tags):
        prefix, this_kind = split_tag(tag)
        begins = prefix in ("B", "S") or (
            prefix in ("I", "E") and _starts_entity(prefix, this_kind, prev_prefix, prev_kind)
        )
        if start is not None and (prefix == OUTSIDE or begins):
            out.append(Span(kind, start, i))
            start, kind = None, None
        if begins:
            start, kind = i, this_kind
        if prefix in ("E", "S") and start is not None:
            out.append(Span(kind, start, i + 1))
            start, kind = None, None
        prev_prefix, prev_kind = prefix, this_kind
    if start is not None:
        out.append(Span(kind, start, len(tags)))
    return out


def from_spans(entities: Iterable[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """Tags of ``length`` tokens holding ``entities`` (non-overlapping) in ``scheme``.

    Raises:
        ValueError: unknown scheme, an empty or out-of-range span, or overlapping spans.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}. Received: scheme={scheme!r}")
    tags = [OUTSIDE] * length
    ordered = sorted(entities, key=lambda s: s.start)
    last_end, last_type = 0, None
    for span in ordered:
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"span {span} does not fit {length} tokens")
        if span.start < last_end:
            raise ValueError(f"span {span} overlaps the previous one")
        adjacent_same = span.start == last_end and last_type == span.type and span.start > 0
        for i in range(span.start, span.end):
            if scheme == "BIOES":
                if span.end - span.start == 1:
                    prefix = "S"
                else:
                    prefix = "B" if i == span.start else ("E" if i == span.end - 1 else "I")
            elif scheme == "IOB2":
                prefix = "B" if i == span.start else "I"
            else:  # IOB1: B only where an entity directly follows one of its type
                prefix = "B" if i == span.start and adjacent_same else "I"
            tags[i] = f"{prefix}-{span.type}"
        last_end, last_type = span.end, span.type
    return tags


def convert(tags: Sequence[str], scheme: str = "IOB2") -> list[str]:
    """Re-tag a sequence (any scheme) in ``scheme``, keeping its conlleval spans."""
    return from_spans(spans(tags), len(tags), scheme)


def to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB2 tags with the same spans (IOB1 / BIOES / invalid IOB2 all repaired the same way)."""
    return convert(tags, "IOB2")


def entity_types(sentences: Iterable[Sequence[str]]) -> list[str]:
    """Sorted entity types occurring in IOB2/IOB1/BIOES tag sequences."""
    found = set()
    for tags in sentences:
        for tag in tags:
            kind = split_tag(tag)[1]
            if kind is not None:
                found.add(kind)
    return sorted(found)
