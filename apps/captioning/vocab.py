"""Caption vocabulary: the suite's ``WordTokenizer`` with ``[START]`` and ``[END]`` tokens.

Ids: 0 padding, 1 ``[UNK]``, 2 ``[START]``, 3 ``[END]``, then the training captions' words by
decreasing frequency. The file is a plain ``WordTokenizer`` vocabulary (``vocab.json``): the
two special tokens are ordinary entries that no text can produce (the tokenizer splits ``[``
from ``START``), so a phone app reads it like any other table.

A caption is fed to the decoder as ``[START] w_1 .. w_n`` and trained to predict
``w_1 .. w_n [END]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from apps.common.text import OOV_ID, PAD_ID, WordTokenizer, split_words

START_TOKEN = "[START]"
END_TOKEN = "[END]"
START_ID = 2
END_ID = 3
_ATTACH_LEFT = frozenset(",.:;!?)")


def fit_vocab(captions: Iterable[str], max_tokens: int, min_count: int = 1) -> WordTokenizer:
    """A ``WordTokenizer`` fitted on the training captions, with ``[START]`` / ``[END]``.

    Args:
        captions: training captions only.
        max_tokens: ids in all, the four special ones included (>= 5).
        min_count: words seen fewer times map to ``[UNK]``.
    """
    if max_tokens < 5:
        raise ValueError(f"max_tokens must be >= 5. Received: max_tokens={max_tokens}")
    words = WordTokenizer(max_tokens - 2, min_count=min_count).fit(captions).vocabulary[2:]
    config = WordTokenizer(max_tokens).get_config()
    config["min_count"] = min_count
    config["vocabulary"] = ["", "[UNK]", START_TOKEN, END_TOKEN, *words]
    return WordTokenizer.from_config(config)


def check_vocab(tokenizer: WordTokenizer) -> None:
    """``ValueError`` unless ids 2 and 3 are ``[START]`` and ``[END]``."""
    vocab = tokenizer.vocabulary
    if len(vocab) < 5 or vocab[START_ID] != START_TOKEN or vocab[END_ID] != END_TOKEN:
        raise ValueError(
            f"not a caption vocabulary: ids 2 and 3 must be {START_TOKEN}, {END_TOKEN}"
        )


def encode_caption(tokenizer: WordTokenizer, text: str, max_length: int) -> list[int]:
    """``[START] w_1 .. w_n [END]`` ids, at most ``max_length`` words kept."""
    return [START_ID, *tokenizer.encode(text, max_length), END_ID]


def caption_words(tokenizer: WordTokenizer, ids: Iterable[int]) -> list[str]:
    """The tokens of generated ids (stops at ``[END]``; padding and ``[START]`` skipped)."""
    vocab = tokenizer.vocabulary
    out = []
    for i in ids:
        i = int(i)
        if i == END_ID:
            break
        if i in (PAD_ID, START_ID):
            continue
        out.append(vocab[i] if 0 <= i < len(vocab) else vocab[OOV_ID])
    return out


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens joined as text: punctuation sticks to the word before it.

    Example:
        >>> detokenize(["three", "digits", ":", "four", ",", "one", "and", "nine"])
        'three digits: four, one and nine'
    """
    text = ""
    for tok in tokens:
        if text and tok not in _ATTACH_LEFT:
            text += " "
        text += tok
    return text


def reference_tokens(
    tokenizer: WordTokenizer, text: str, max_length: int | None = None
) -> list[str]:
    """The tokens a perfect model would generate for ``text`` (unknown words as ``[UNK]``)."""
    return caption_words(tokenizer, tokenizer.encode(text, max_length))


def metric_tokens(text: str) -> list[str]:
    """Lower-cased words of ``text`` for BLEU / CIDEr: punctuation-only tokens dropped.

    This stands in for the PTB tokenizer of the COCO evaluation (which needs Java): both sides
    (references and generated captions) go through it.
    """
    return [t for t in split_words(text) if any(c.isalnum() for c in t)]
