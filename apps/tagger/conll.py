"""Readers for tagged text in its published formats: CoNLL columns and CoNLL-U.

- **CoNLL** (``token<TAB>tag`` or ``token<SPACE>tag``; WNUT-17, Wikigold, CoNLL-2003's
  ``token POS chunk NER``): one token per line, the tag in the last column, a blank line between
  sentences, ``-DOCSTART-`` lines between documents. Files whose first column numbers the tokens
  (``1<TAB>What<TAB>O<TAB>...``, Universal NER) take the token from column 2 and the tag from
  column 3. ``#`` lines without a tab that do not look like ``token tag`` are comments.
- **CoNLL-U** (Universal Dependencies): ten tab-separated columns; UPOS is column 4, XPOS
  column 5. Per the UD spec, multi-word token ranges (``1-2``) and empty nodes (``1.1``) are
  skipped: word-level tagging uses the syntactic words. ``# newdoc`` starts a document.

Every problem is a :class:`~apps.common.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from apps.common.errors import DataError
from apps.common.sources import read_text_strict

UPOS_TAGS = [
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
]
DOCSTART = "-DOCSTART-"


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One tagged sentence.

    Attributes:
        tokens: the words.
        tags: one tag per word.
        doc: index of its document in the file (for document-level splits).
        line: line number of its first token (for error messages).
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc: int = 0
    line: int = 0


def _columns(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def read_conll(path: str | os.PathLike, *, flag: str = "--data") -> list[Sentence]:
    """Sentences of a CoNLL column file (tags as written; scheme handling is the caller's).

    Raises:
        DataError: unreadable / non-UTF-8 file, a token line with fewer than two columns or
            another column count than the file's first token line, an empty token or tag.
    """
    path = Path(path)
    lines = read_text_strict(path, flag=flag).splitlines()
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc, start, width, indexed = 0, 0, None, False

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(tags), doc, start))
        tokens, tags = [], []

    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            close()
            continue
        cols = _columns(line.strip("\n"))
        if line.startswith("#") and "\t" not in line and len(cols) != (width or 2):
            continue  # a comment line (# sent_id = ..., # text = ...)
        if cols[0] == DOCSTART:
            close()
            if sentences or doc:
                doc += 1
            continue
        if len(cols) < 2:
            raise DataError(
                f"{flag}: {path}:{number}: expected 'token<TAB>tag' (two or more columns), "
                f"got {line[:60]!r}"
            )
        if width is None:
            width = len(cols)
            indexed = width >= 3 and cols[0].isdigit() and cols[0] == "1"
        elif len(cols) != width:
            raise DataError(
                f"{flag}: {path}:{number}: {len(cols)} columns where the file's first token "
                f"line has {width}: {line[:60]!r}"
            )
        token, tag = (cols[1], cols[2]) if indexed else (cols[0], cols[-1])
        if not token.strip() or not tag.strip():
            raise DataError(f"{flag}: {path}:{number}: empty token or tag: {line[:60]!r}")
        if not tokens:
            start = number
        tokens.append(token.strip())
        tags.append(tag.strip())
    close()
    return sentences


def read_conllu(
    path: str | os.PathLike, column: str = "upos", *, flag: str = "--data"
) -> list[Sentence]:
    """Sentences of a CoNLL-U file with their ``upos`` or ``xpos`` tags.

    Multi-word token lines (``1-2``) and empty nodes (``1.1``) are skipped (UD spec).

    Raises:
        DataError: a word line without 10 tab-separated columns, a bad ID, an unknown UPOS tag,
            or ``_`` where the requested tag is needed.
    """
    if column not in ("upos", "xpos"):
        raise ValueError(f"column must be 'upos' or 'xpos'. Received: column={column!r}")
    index = 3 if column == "upos" else 4
    path = Path(path)
    lines = read_text_strict(path, flag=flag).splitlines()
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc, start, seen_doc = 0, 0, False
    upos = set(UPOS_TAGS)

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(tags), doc, start))
        tokens, tags = [], []

    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            if line.startswith("# newdoc"):
                close()
                if seen_doc or sentences:
                    doc += 1
                seen_doc = True
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(
                f"{flag}: {path}:{number}: a CoNLL-U word line needs 10 tab-separated columns, "
                f"got {len(cols)}: {line[:60]!r}"
            )
        ident = cols[0]
        if "-" in ident or "." in ident:
            continue  # multi-word token range / empty node: not a syntactic word
        if not ident.isdigit():
            raise DataError(f"{flag}: {path}:{number}: bad CoNLL-U word ID {ident!r}")
        tag = cols[index]
        if tag == "_" or not tag:
            raise DataError(f"{flag}: {path}:{number}: no {column.upper()} tag (column "
                            f"{index + 1} is {tag!r})")  # fmt: skip
        if column == "upos" and tag not in upos:
            raise DataError(
                f"{flag}: {path}:{number}: {tag!r} is not a UPOS tag "
                f"(expected one of {' '.join(UPOS_TAGS)})"
            )
        if not tokens:
            start = number
        tokens.append(cols[1])
        tags.append(tag)
    close()
    return sentences


def looks_like_conllu(path: str | os.PathLike) -> bool:
    """Whether a file is CoNLL-U: ``.conllu`` suffix, or a first word line of 10 tab columns."""
    path = Path(path)
    if path.suffix.lower() == ".conllu":
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for _, line in zip(range(200), f):
                if line.strip() and not line.startswith("#"):
                    cols = line.rstrip("\r\n").split("\t")
                    return len(cols) == 10 and cols[0].split("-")[0].split(".")[0].isdigit()
    except OSError:
        return False
    return False
