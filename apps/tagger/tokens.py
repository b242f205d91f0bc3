"""Splitting raw sentences into tokens the way the tagged corpora are split, and entity markup.

Tagged corpora come tokenised (one token per line); sentences typed at the ``tag`` command do
not. :func:`tokenize` splits them close to the Penn-Treebank/CoNLL/UD conventions, keeping case
(case is the strongest cue for names): punctuation is a token of its own, ``don't -> do n't``,
``Teddy's -> Teddy 's``, ``U.S``, ``3.5`` and ``e-mail`` stay whole.

:func:`parse_markup` reads sentences written with inline entities, ``[PER Teddy Roosevelt] was
a great President!``: the generated ``builtin:teddy`` corpus and the probe pairs are written
this way, and tokenised by the same :func:`tokenize` the ``tag`` command uses.

Example:
    >>> tokenize('He said, "Teddy bears aren\\'t on sale!"')
    ['He', 'said', ',', '"', 'Teddy', 'bears', 'are', "n't", 'on', 'sale', '!', '"']
    >>> parse_markup("[PER Teddy Roosevelt] was here.")
    (['Teddy', 'Roosevelt', 'was', 'here', '.'], ['B-PER', 'I-PER', 'O', 'O', 'O'])
"""

from __future__ import annotations

import re

from apps.tagger.schemes import Span, from_spans

_TOKEN = re.compile(
    r"""
      [^\W_]+?(?=n['’]t\b)            # do|n't, ca|n't
    | n['’]t\b
    | ['’](?:s|S|re|ve|ll|d|m|RE|VE|LL|D|M)\b   # clitics: 's 're 've 'll 'd 'm
    | [^\W_]+(?:[.\-][^\W_]+)*        # words and numbers: U.S, 3.5, e-mail
    | \S                              # any other character is a token
    """,
    re.VERBOSE,
)
_ENTITY = re.compile(r"\[(?P<type>[A-Za-z][\w-]*) (?P<text>[^\[\]]+)\]")


def tokenize(text: str) -> list[str]:
    """Tokens of a raw sentence (case kept; no token is empty or holds whitespace)."""
    return _TOKEN.findall(text)


def parse_markup(text: str) -> tuple[list[str], list[str]]:
    """Tokens and IOB2 tags of a sentence with ``[TYPE words]`` entities.

    Raises:
        ValueError: unbalanced or nested brackets, or an entity without words.
    """
    tokens: list[str] = []
    entities: list[Span] = []
    pos = 0
    for match in _ENTITY.finditer(text):
        outside = text[pos : match.start()]
        if "[" in outside or "]" in outside:
            raise ValueError(f"unbalanced [ ] in markup: {text!r}")
        tokens.extend(tokenize(outside))
        words = tokenize(match["text"])
        if not words:
            raise ValueError(f"entity without words in markup: {text!r}")
        entities.append(Span(match["type"], len(tokens), len(tokens) + len(words)))
        tokens.extend(words)
        pos = match.end()
    rest = text[pos:]
    if "[" in rest or "]" in rest:
        raise ValueError(f"unbalanced [ ] in markup: {text!r}")
    tokens.extend(tokenize(rest))
    return tokens, from_spans(entities, len(tokens), "IOB2")


def detokenize(tokens: list[str]) -> str:
    """A readable sentence from tokens (no space before closing punctuation and clitics)."""
    out = ""
    quote_open = False
    for i, tok in enumerate(tokens):
        if i == 0:
            out = tok
            quote_open = tok == '"'
            continue
        prev = tokens[i - 1]
        glue = tok in {".", ",", "!", "?", ";", ":", ")", "%", "n't"} or tok.startswith("'")
        if tok == '"':
            glue = quote_open
            quote_open = not quote_open
        if prev in {"(", "$"} or (prev == '"' and quote_open and tok != '"'):
            glue = True
        out += tok if glue else " " + tok
    return out
