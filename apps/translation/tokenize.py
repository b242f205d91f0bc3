"""Reversible tokenisation for translation: words + punctuation with joiners, optional BPE.

Why not :class:`apps.common.text.WordTokenizer`? It lower-cases and forgets where the spaces
were, so a translation could not be turned back into text for detokenised BLEU / chrF. Here a
sentence is split so that :func:`detokenize` gives back its normalised form exactly:

1. Unicode NFKC, typographic apostrophes ``’ ‘ ʼ`` → ``'``, whitespace runs → one space
   (optionally lower case; accents and punctuation are kept);
2. a *word* is a run of letters, marks and digits, with single inner apostrophes (``don't``,
   ``l'homme``); every other character is a token of its own;
3. where two tokens touched (no space between them) the punctuation side carries the joiner
   ``￭`` (U+FFED), as in OpenNMT's tokenizer: ``"¿Qué?"`` → ``¿￭ Qué ￭?``, ``"twenty-one"`` →
   ``twenty ￭-￭ one``;
4. optionally, words are split into subwords with byte-pair encoding (Sennrich, Haddow & Birch,
   ACL 2016) learned on the *training* side only; a piece that continues a word starts with the
   joiner: ``dreihunderteinundzwanzig`` → ``drei ￭hundert ￭einund ￭zwanzig``.

Subwords are what make German number words learnable: the whole number is one compound
(``dreihunderteinundzwanzig``), so at word level every number would be a vocabulary item of its
own and a held-out number could never be produced. BPE pieces (``drei``, ``￭hundert``,
``￭zwanzig``…) are few, shared between numbers, and align to the English words — with the
units before the tens, which is what the attention map shows.

Ids (:class:`Vocabulary`): 0 padding, 1 ``<unk>``, 2 ``<s>`` (start), 3 ``</s>`` (end), then
the training tokens by decreasing frequency (ties by the token's code points).
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

JOINER = "\uffed"
PAD, UNK, START, END = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
RESERVED = (PAD, UNK, START, END)
FORMAT = "rnnsuite.translation.Tokenizer/1"
BPE_MAX_TYPES = 4000

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SPACES = re.compile(r"\s+")
_WORD = r"[^\W_]"  # letters and digits; combining marks (Unicode M*) are added below


@functools.lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern[str]:
    """A word (letters, marks, digits; inner apostrophes) or any other single character.

    ``\\w`` leaves out the combining marks that NFKC does not compose with their letter (the
    vowel signs of Devanagari, Thai, Myanmar, Arabic harakat, ...), so the class of every
    Unicode mark (category M*) is added: a word then splits where :func:`is_word` says.
    """
    ranges: list[list[int]] = []
    for cp in range(0x110000):
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    marks = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    char = rf"(?:{_WORD}|[{marks}])"
    return re.compile(rf"{char}+(?:'{char}+)*|\S")


def normalize(text: str, *, lowercase: bool = False) -> str:
    """NFKC, plain apostrophes, single spaces, stripped (and lower case if asked).

    Example:
        >>> normalize("  Qu’est-ce   que\\tc'est ?")
        "Qu'est-ce que c'est ?"
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).replace(JOINER, " ")
    text = _SPACES.sub(" ", text).strip()
    return text.lower() if lowercase else text


def is_word(token: str) -> bool:
    """Whether a token (without joiners) is a word rather than a punctuation mark or symbol."""
    core = token.strip(JOINER)
    return bool(core) and unicodedata.category(core[0])[0] in "LMN"


def display_token(token: str) -> str:
    """A token for plots and logs: the joiner (missing from common fonts) shown as ``·``.

    Example:
        >>> display_token("￭hundert")
        '·hundert'
    """
    return token.replace(JOINER, "\u00b7")


def split_tokens(text: str, *, lowercase: bool = False) -> list[str]:
    """Words and single-character punctuation tokens, with joiners where no space was.

    Example:
        >>> split_tokens("¿Qué pasa? Twenty-one.")
        ['¿￭', 'Qué', 'pasa', '￭?', 'Twenty', '￭-￭', 'one', '￭.']
    """
    return list(_split_cached(text, bool(lowercase)))


@functools.lru_cache(maxsize=1 << 17)
def _split_cached(text: str, lowercase: bool) -> tuple[str, ...]:
    tokens: list[str] = []
    for chunk in normalize(text, lowercase=lowercase).split(" "):
        pieces = _token_pattern().findall(chunk)
        for i, piece in enumerate(pieces):
            if i > 0:
                if not is_word(piece):
                    piece = JOINER + piece
                elif not is_word(pieces[i - 1]):
                    tokens[-1] = tokens[-1] + JOINER
            tokens.append(piece)
    return tuple(tokens)


def detokenize(tokens: Iterable[str]) -> str:
    """Text from tokens: the inverse of :func:`split_tokens` (and of the BPE split).

    Example:
        >>> detokenize(["drei", "￭hundert", "￭-￭", "x", "￭!"])
        'dreihundert-x!'
    """
    text = " ".join(t for t in tokens if t)
    text = text.replace(" " + JOINER, "").replace(JOINER + " ", "").replace(JOINER, "")
    return text


# --------------------------------------------------------------------------------------- BPE
def learn_bpe(word_counts: dict[str, int], merges: int, *,
              max_types: int = BPE_MAX_TYPES) -> list[tuple[str, str]]:  # fmt: skip
    """Learn up to ``merges`` BPE merge rules from word frequencies (training words only).

    Each step merges the adjacent symbol pair with the highest total frequency (ties: the
    smallest pair in code-point order), updating pair counts incrementally. Only the
    ``max_types`` most frequent word types are used (ties broken by a fixed hash of the word,
    so the choice is deterministic and not alphabetical): pure-Python BPE costs time in
    proportion to the characters it scans, and a few thousand types fix the frequent merges.

    Args:
        word_counts: word -> count.
        merges: number of merges (0: none).
        max_types: the most word types used.

    Returns:
        The merge rules in the order learned.
    """
    chosen = sorted(word_counts, key=lambda w: (-word_counts[w], zlib.crc32(w.encode("utf-8"))))
    word_counts = {w: word_counts[w] for w in chosen[:max_types]}
    words = [list(w) for w in word_counts]
    counts = [word_counts[w] for w in word_counts]
    pair_counts: collections.Counter[tuple[str, str]] = collections.Counter()
    where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for i, symbols in enumerate(words):
        for pair in itertools.pairwise(symbols):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    rules: list[tuple[str, str]] = []
    for _ in range(merges):
        best = None
        for pair, n in pair_counts.items():
            if n > 0 and (best is None or n > best[1] or (n == best[1] and pair < best[0])):
                best = (pair, n)
        if best is None:
            break
        pair = a, b = best[0]
        rules.append(pair)
        merged = a + b
        for i in where.pop(pair, ()):
            # Only the pairs around each occurrence change: (prev, a) -> (prev, ab) and
            # (b, next) -> (ab, next); consecutive occurrences chain through ``out[-1]``.
            symbols, n = words[i], counts[i]
            out: list[str] = []
            j = 0
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                    if out:
                        pair_counts[out[-1], a] -= n
                        pair_counts[out[-1], merged] += n
                        where[out[-1], merged].add(i)
                    if j + 2 < len(symbols):
                        pair_counts[b, symbols[j + 2]] -= n
                        pair_counts[merged, symbols[j + 2]] += n
                        where[merged, symbols[j + 2]].add(i)
                    out.append(merged)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[i] = out
        del pair_counts[pair]
        for stale in [p for p, c in pair_counts.items() if c <= 0]:
            del pair_counts[stale]
    return rules


class BPE:
    """Applies learned merge rules to words (pure Python, cached per word).

    Args:
        rules: merge rules from :func:`learn_bpe`.

    Example:
        >>> BPE([("h", "u"), ("hu", "n")]).split("hun")
        ['hun']
    """

    def __init__(self, rules: Sequence[Sequence[str]]) -> None:
        self.rules = [(str(a), str(b)) for a, b in rules]
        self._patterns = [
            (f"{a} {b}", re.compile(rf"(?<!\S){re.escape(a)} {re.escape(b)}(?!\S)"), a + b)
            for a, b in self.rules
        ]
        self.split = functools.lru_cache(maxsize=200_000)(self._split)

    def _split(self, word: str) -> list[str]:
        # Rules applied in the order learned, each to all its non-overlapping occurrences from
        # left to right: the same as repeatedly merging the lowest-ranked pair present, since a
        # merge only creates pairs with a symbol that exists from a later rule on.
        text = " ".join(word)
        for plain, pattern, merged in self._patterns:
            if plain in text:
                text = pattern.sub(merged, text)
        return text.split(" ")

    def apply(self, tokens: Sequence[str]) -> list[str]:
        """Split the word tokens; continuation pieces get the joiner prefix."""
        out: list[str] = []
        for token in tokens:
            if not self.rules or not is_word(token) or JOINER in token:
                out.append(token)
                continue
            pieces = self.split(token)
            out.append(pieces[0])
            out.extend(JOINER + p for p in pieces[1:])
        return out


# -------------------------------------------------------------------------------- tokenizer
class Tokenizer:
    """One side's tokeniser: text ↔ ids (normalise, split, BPE, vocabulary).

    Args:
        max_tokens: vocabulary size including the 4 reserved ids.
        bpe_merges: BPE merges to learn (0: whole words).
        lowercase: lower-case the text first.
        min_count: training tokens seen fewer times map to ``<unk>``.

    Example:
        >>> tok = Tokenizer(max_tokens=50).fit(["Hola, amigo.", "Hola."])
        >>> tok.encode("Hola amigo")
        [4, 6]
        >>> tok.decode(tok.encode("Hola, amigo."))
        'Hola, amigo.'
    """

    def __init__(self, max_tokens: int = 10000, *, bpe_merges: int = 0, lowercase: bool = False,
                 min_count: int = 1) -> None:  # fmt: skip
        if not isinstance(max_tokens, int) or max_tokens < len(RESERVED) + 1:
            raise ValueError(
                f"max_tokens must be an integer >= 5. Received: max_tokens={max_tokens}"
            )
        if not isinstance(bpe_merges, int) or bpe_merges < 0:
            raise ValueError(
                f"bpe_merges must be an integer >= 0. Received: bpe_merges={bpe_merges}"
            )
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1. Received: min_count={min_count}")
        self.max_tokens = max_tokens
        self.bpe_merges = bpe_merges
        self.lowercase = bool(lowercase)
        self.min_count = min_count
        self.bpe = BPE([])
        self.vocabulary: list[str] = list(RESERVED)
        self._index: dict[str, int] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def _set(self, rules: Sequence[Sequence[str]], tokens: Sequence[str]) -> None:
        self.bpe = BPE(rules)
        self.vocabulary = [*RESERVED, *tokens]
        self._index = {t: i for i, t in enumerate(self.vocabulary)}

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Learn BPE merges and the vocabulary from training texts only."""
        split = [split_tokens(t, lowercase=self.lowercase) for t in texts]
        rules: list[tuple[str, str]] = []
        if self.bpe_merges:
            words: collections.Counter[str] = collections.Counter(
                tok for toks in split for tok in toks if is_word(tok)
            )
            rules = learn_bpe(dict(words), self.bpe_merges)
        self._set(rules, [])
        counts: collections.Counter[str] = collections.Counter()
        for toks in split:
            counts.update(self.bpe.apply(toks))
        kept = [kv for kv in counts.items() if kv[1] >= self.min_count and kv[0] not in RESERVED]
        ranked = sorted(kept, key=lambda kv: (-kv[1], kv[0]))
        self._set(rules, [t for t, _ in ranked[: self.max_tokens - len(RESERVED)]])
        return self

    def tokenize(self, text: str) -> list[str]:
        """The tokens (subword pieces) of ``text``, before the vocabulary lookup."""
        return self.bpe.apply(split_tokens(text, lowercase=self.lowercase))

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (no start/end markers); unknown tokens → ``UNK_ID``."""
        return [self._index.get(t, UNK_ID) for t in self.tokenize(text)]

    def unknown(self, text: str) -> list[str]:
        """The tokens of ``text`` that are not in the vocabulary (in order, without repeats)."""
        seen: dict[str, None] = {}
        for tok in self.tokenize(text):
            if tok not in self._index:
                seen[tok.strip(JOINER)] = None
        return list(seen)

    def tokens_of(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ``ids`` (reserved ids other than ``<unk>`` are dropped)."""
        out = []
        for i in ids:
            i = int(i)
            if i in (PAD_ID, START_ID, END_ID):
                continue
            out.append(self.vocabulary[i] if 0 <= i < len(self.vocabulary) else UNK)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenised text of ``ids``."""
        return detokenize(self.tokens_of(ids))

    def get_config(self) -> dict[str, Any]:
        return {"format": FORMAT, "max_tokens": self.max_tokens, "bpe_merges": self.bpe_merges,
                "lowercase": self.lowercase, "min_count": self.min_count,
                "bpe_rules": [list(r) for r in self.bpe.rules],
                "vocabulary": list(self.vocabulary)}  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        """Rebuild from :meth:`get_config` (``ValueError`` when malformed)."""
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} vocabulary")
        vocab, rules = config.get("vocabulary"), config.get("bpe_rules")
        if not isinstance(vocab, list) or tuple(vocab[: len(RESERVED)]) != RESERVED:
            raise ValueError(f"'vocabulary' must start with {list(RESERVED)}")
        if len(set(vocab)) != len(vocab) or not all(isinstance(t, str) and t for t in vocab):
            raise ValueError("'vocabulary' must hold unique non-empty strings")
        if not isinstance(rules, list) or not all(
            isinstance(r, list) and len(r) == 2 for r in rules
        ):
            raise ValueError("'bpe_rules' must be a list of [left, right] pairs")
        tok = cls(
            int(config["max_tokens"]),
            bpe_merges=int(config["bpe_merges"]),
            lowercase=bool(config["lowercase"]),
            min_count=int(config.get("min_count", 1)),
        )
        tok._set(rules, vocab[len(RESERVED) :])
        return tok
