"""Word tokeniser shared by the text apps, with a pure-Python path and a TensorFlow twin.

Standardisation (both paths, in this order):

1. Unicode NFKC (``ﬁ`` → ``fi``, full-width ``Ａ`` → ``A``, ``…`` → ``...``, ``e`` + U+0301 → ``é``);
2. lower case, character by character (``Σ`` always becomes ``σ``: no final-sigma rule);
3. ``’ ‘ ʼ`` → ``'``;
4. whitespace, control and format characters (Z*, Cc, Cf — so also ZWJ), variation selectors and
   emoji skin-tone modifiers → a space;
5. HTML line breaks ``<br />`` / ``<br/>`` / ``<br>`` → a space.

Splitting: a *word* is a run of letters, marks and digits (Unicode L*, M*, N*), which may contain
single apostrophes between such characters (``don't``, ``rock'n'roll``); every other character —
punctuation, symbols, emoji, ``�`` — is a token of its own.

Ids: 0 = padding, 1 = out-of-vocabulary ``[UNK]``, then the words of the training texts by
decreasing frequency, ties broken by the token's code points (so fitting is deterministic).

The TensorFlow path (:meth:`WordTokenizer.tf_encode`, :meth:`WordTokenizer.as_keras_layer`) is
written with TF string and integer ops only (no ``tf.py_function``), from tables computed with
Python's :mod:`unicodedata`, so both paths agree on the Unicode version. TensorFlow has no NFKC
op, so the twin implements it: per-code-point compatibility decomposition (table), canonical
reordering of combining marks (a stable sort), and the canonical composition algorithm of
UAX #15 run as vectorised passes. The parity tests compare both paths on real tweets, IMDB and
Pang & Lee texts and on every assigned code point alone, in context and decomposed.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
FORMAT = "rnnsuite.WordTokenizer"
STANDARDIZE_VERSION = "nfkc-lower-apostrophe-space-br/1"

_MAX_CODE_POINT = 0x110000
_APOSTROPHES = {0x2019: "'", 0x2018: "'", 0x02BC: "'"}
_EXTRA_SPACES = (
    range(0xFE00, 0xFE10),  # variation selectors (emoji / text presentation)
    range(0xE0100, 0xE01F0),  # variation selectors supplement
    range(0x1F3FB, 0x1F400),  # emoji skin-tone modifiers
)
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
_BR_PATTERN = "< *br */? *>"
_MAX_COMPOSE_PASSES = 32


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _fold_case(text: str) -> str:
    """Steps 2-3: lower case without the final-sigma rule, typographic apostrophes → ``'``."""
    return text.replace("\u03a3", "\u03c3").lower().translate(_APOSTROPHES)


def _standardize_chars(text: str) -> str:
    """Steps 1-3 of the standardisation (NFKC, lower case, apostrophes) on any text."""
    return _fold_case(_nfkc(text))


def _ranges(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive code point ranges where ``flags`` is true."""
    out: list[tuple[int, int]] = []
    start = None
    for cp, flag in enumerate(flags):
        if flag and start is None:
            start = cp
        elif not flag and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return out


def _py_class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


def _re2_class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    body = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


@functools.lru_cache(maxsize=1)
def _unicode_tables() -> dict[str, Any]:
    """Character classes and per-code-point maps, computed once from :mod:`unicodedata`."""
    is_word = [False] * _MAX_CODE_POINT
    is_space = [False] * _MAX_CODE_POINT
    nfkd_map: dict[int, str] = {}
    ccc: dict[int, int] = {}
    case_map: dict[int, str] = {}
    pairs: dict[tuple[int, int], int] = {}
    extra_spaces = {cp for r in _EXTRA_SPACES for cp in r}
    for cp in range(_MAX_CODE_POINT):
        if 0xD800 <= cp < 0xE000:
            continue  # surrogates: never in valid UTF-8 (TF decodes them to U+FFFD)
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Cn":
            continue
        if cp in extra_spaces or cat in _SPACE_CATEGORIES:
            is_space[cp] = True
        elif cat[0] in "LMN":
            is_word[cp] = True
        nfkd = unicodedata.normalize("NFKD", ch)
        if nfkd != ch:
            nfkd_map[cp] = nfkd
        if unicodedata.combining(ch):
            ccc[cp] = unicodedata.combining(ch)
        if _fold_case(ch) != ch:
            case_map[cp] = _fold_case(ch)
        # Canonical composition (a, b) -> cp, unless cp is a composition exclusion.
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = [int(p, 16) for p in decomposition.split()]
            if (
                len(parts) == 2
                and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == ch
            ):
                pairs[(parts[0], parts[1])] = cp
    for lead in range(19):  # Hangul: L + V -> LV, LV + T -> LVT
        for vowel in range(21):
            lv = 0xAC00 + (lead * 21 + vowel) * 28
            pairs[(0x1100 + lead, 0x1161 + vowel)] = lv
            for trail in range(1, 28):
                pairs[(lv, 0x11A7 + trail)] = lv + trail
    word = _ranges(is_word)
    return {
        "nfkd_map": nfkd_map,
        "ccc": ccc,
        "case_map": case_map,
        "pairs": pairs,
        "word_ranges": word,
        "space_ranges": _ranges(is_space),
        "word_or_space_ranges": _ranges([w or s for w, s in zip(is_word, is_space)]),
    }


@functools.lru_cache(maxsize=1)
def _python_patterns() -> dict[str, re.Pattern[str]]:
    tables = _unicode_tables()
    word = _py_class(tables["word_ranges"])
    bmp_word = _py_class([(a, min(b, 0xFFFF)) for a, b in tables["word_ranges"] if a <= 0xFFFF])
    # Once every whitespace-class character is a plain space, "any other character" is [^ ].
    # Python's re matches a class fast only when it has no astral ranges: texts without astral
    # characters use the BMP class (same matches on such texts).
    return {
        "spaces": re.compile(_py_class(tables["space_ranges"]) + "+"),
        "br": re.compile(_BR_PATTERN),
        "tokens": re.compile(f"{word}+(?:'{word}+)*|[^ ]"),
        "bmp_tokens": re.compile(f"{bmp_word}+(?:'{bmp_word}+)*|[^ ]"),
    }


def standardize(text: str) -> str:
    """The standardised form of ``text`` (see the module docstring), words separated by spaces.

    Args:
        text: any text.

    Returns:
        The standardised text (a space stands for each run of whitespace and each line break).

    Example:
        >>> standardize("Great<br />MOVIE ﬁlm")
        'great movie film'
    """
    patterns = _python_patterns()
    text = patterns["spaces"].sub(" ", _standardize_chars(text))
    return patterns["br"].sub(" ", text)


def split_words(text: str) -> list[str]:
    """Standardise ``text`` and split it into word and single-character tokens (pure Python).

    Example:
        >>> split_words("I didn't LOVE it... 😍<br />Bof.")
        ['i', "didn't", 'love', 'it', '.', '.', '.', '😍', 'bof', '.']
    """
    patterns = _python_patterns()
    text = patterns["spaces"].sub(" ", _standardize_chars(text))
    text = patterns["br"].sub(" ", text)
    astral = bool(text) and max(text) > "\uffff"
    return patterns["tokens" if astral else "bmp_tokens"].findall(text)


class WordTokenizer:
    """Word-level tokeniser: a frequency vocabulary fitted on training texts.

    Args:
        max_tokens: the vocabulary size including padding (id 0) and ``[UNK]`` (id 1); the
            ``max_tokens - 2`` most frequent training tokens get ids 2, 3, ...
        min_count: tokens seen fewer times in the training texts are left out (map to 1).

    Example:
        >>> tok = WordTokenizer(max_tokens=10).fit(["a good film", "a bad film"])
        >>> tok.vocabulary
        ['', '[UNK]', 'a', 'film', 'bad', 'good']
        >>> tok.encode("A GOOD, good film!")
        [2, 5, 1, 5, 3, 1]
    """

    def __init__(self, max_tokens: int = 20000, *, min_count: int = 1) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 3:
            raise ValueError(
                f"max_tokens must be an integer >= 3. Received: max_tokens={max_tokens}"
            )
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1. Received: min_count={min_count}")
        self.max_tokens = max_tokens
        self.min_count = min_count
        self._vocabulary: list[str] = [PAD_TOKEN, OOV_TOKEN]
        self._index: dict[str, int] = {}
        self._tf_state: dict[str, Any] | None = None
        self._fitted = False

    # ----------------------------------------------------------------------------- vocabulary
    @property
    def vocabulary(self) -> list[str]:
        """All tokens by id: ``["", "[UNK]", most frequent, ...]``."""
        return list(self._vocabulary)

    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and ``[UNK]`` included (the embedding's input dimension)."""
        return len(self._vocabulary)

    @property
    def fitted(self) -> bool:
        """Whether a vocabulary was fitted or loaded."""
        return self._fitted

    def _set_vocabulary(self, tokens: Sequence[str]) -> None:
        self._vocabulary = [PAD_TOKEN, OOV_TOKEN, *tokens]
        self._index = {tok: i for i, tok in enumerate(self._vocabulary) if i >= 2}
        self._tf_state = None
        self._fitted = True

    def fit(self, texts: Iterable[str]) -> WordTokenizer:
        """Build the vocabulary from training texts (only those: never fit on val/test).

        Args:
            texts: the training texts.

        Returns:
            ``self``.
        """
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(split_words(text))
        ranked = sorted(
            (item for item in counts.items() if item[1] >= self.min_count),
            key=lambda item: (-item[1], item[0]),
        )
        self._set_vocabulary([tok for tok, _ in ranked[: self.max_tokens - 2]])
        return self

    # --------------------------------------------------------------------------- Python path
    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (before the vocabulary lookup)."""
        return split_words(text)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """Token ids of one text, pure Python.

        Args:
            text: the text.
            max_len: keep at most the first ``max_len`` ids (no padding is added).

        Returns:
            The ids (unknown tokens → 1).
        """
        index = self._index
        ids = [index.get(tok, OOV_ID) for tok in split_words(text)]
        return ids if max_len is None else ids[:max_len]

    def encode_batch(self, texts: Iterable[str], max_len: int | None = None) -> list[list[int]]:
        """:meth:`encode` for many texts."""
        return [self.encode(text, max_len) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens of ``ids`` joined by spaces; padding is skipped."""
        vocab = self._vocabulary
        return " ".join(vocab[i] if 0 <= i < len(vocab) else OOV_TOKEN for i in ids if i != PAD_ID)

    # ------------------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        """The JSON content of ``vocab.json``."""
        return {
            "format": FORMAT,
            "standardize": STANDARDIZE_VERSION,
            "max_tokens": self.max_tokens,
            "min_count": self.min_count,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WordTokenizer:
        """Rebuild a tokeniser from :meth:`get_config` output (``ValueError`` when malformed)."""
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} vocabulary (missing or wrong 'format' key)")
        if config.get("standardize") != STANDARDIZE_VERSION:
            raise ValueError(
                f"vocabulary was built with standardisation {config.get('standardize')!r}, "
                f"this version uses {STANDARDIZE_VERSION!r}"
            )
        vocab = config.get("vocabulary")
        if (
            not isinstance(vocab, list)
            or len(vocab) < 2
            or vocab[:2] != [PAD_TOKEN, OOV_TOKEN]
            or not all(isinstance(t, str) and t for t in vocab[2:])
            or len(set(vocab)) != len(vocab)
        ):
            raise ValueError("'vocabulary' must list '', '[UNK]', then unique non-empty tokens")
        tok = cls(int(config["max_tokens"]), min_count=int(config.get("min_count", 1)))
        tok._set_vocabulary(vocab[2:])
        return tok

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON, atomically (temporary file, then rename).

        Args:
            path: the file (``DIR/vocab.json``).

        Returns:
            The path written.
        """
        from apps.common.rundir import atomic_write_json

        path = Path(path)
        atomic_write_json(path, self.get_config(), indent=0)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordTokenizer:
        """Read a vocabulary written by :meth:`save`.

        Raises:
            DataError: no such file, not valid JSON, or not a tokeniser vocabulary (one line
                naming the file).
        """
        from apps.common.errors import DataError

        path = Path(path)
        try:
            return cls.from_config(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise DataError(f"no vocabulary file: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: cannot read the vocabulary ({e})") from None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a tokenizer vocabulary ({e})") from None

    # ------------------------------------------------------------------------------ TF path
    def _tf(self) -> dict[str, Any]:
        """TF tables (built once per tokeniser, on first use)."""
        if self._tf_state is None:
            self._tf_state = _build_tf_state(self._vocabulary)
        return self._tf_state

    def tf_standardize(self, strings: Any) -> Any:
        """TF twin of :func:`standardize` steps 1-5 (returns strings with single-space gaps
        where the Python path has runs of spaces; the split ignores the difference)."""
        return _tf_standardize(self._tf(), strings)

    def tf_split(self, strings: Any) -> Any:
        """TF twin of the Python split on standardised strings; ``tf.RaggedTensor`` of tokens."""
        return _tf_split(self._tf(), strings)

    def tf_tokenize(self, strings: Any) -> Any:
        """Tokens of a batch of strings: ``tf.RaggedTensor`` of ``tf.string``, shape (N, None)."""
        return self.tf_split(self.tf_standardize(strings))

    def tf_encode(self, strings: Any, max_len: int | None = None) -> Any:
        """Token ids of a batch of strings with TF ops (usable inside ``tf.data`` maps).

        Args:
            strings: a ``tf.string`` tensor of shape (N,) (or a list of Python strings).
            max_len: keep at most the first ``max_len`` ids of each text.

        Returns:
            ``tf.RaggedTensor`` of int32 ids, shape (N, None); equal to :meth:`encode` per text.
        """
        import tensorflow as tf

        state = self._tf()
        tokens = self.tf_tokenize(tf.convert_to_tensor(strings, dtype=tf.string))
        ids = tf.cast(
            tokens.with_flat_values(state["vocab_table"].lookup(tokens.flat_values)), tf.int32
        )
        return ids if max_len is None else ids[:, :max_len]

    def as_keras_layer(self, max_len: int | None = None, **kwargs: Any) -> Any:
        """A ``keras.layers.TextVectorization`` with this vocabulary and the TF twin as its
        standardize/split callables (TF backend only).

        Args:
            max_len: ``output_sequence_length`` (pad/truncate to it); ``None`` returns ragged ids.
            **kwargs: passed to ``TextVectorization``.

        Returns:
            The layer; it maps a batch of strings to int64 ids equal to :meth:`encode`'s (the
            callables are plain methods, so keep it out of saved models: export the ids instead).
        """
        import keras

        if not self._fitted:
            raise ValueError("fit or load the tokenizer before as_keras_layer()")
        return keras.layers.TextVectorization(
            standardize=self.tf_standardize,
            split=self.tf_split,
            vocabulary=self._vocabulary[2:],
            output_mode="int",
            output_sequence_length=max_len,
            ragged=max_len is None,
            **kwargs,
        )


# ---------------------------------------------------------------------------- TF internals
def _tf_char_map(char_map: dict[int, str]) -> dict[str, Any]:
    """Dense tables for a code point map: one-to-one entries in ``single``; one-to-many
    entries (``ﬁ`` → ``fi``, ``İ`` → ``i̇``) as slices of ``values``."""
    import numpy as np
    import tensorflow as tf

    single = np.arange(_MAX_CODE_POINT, dtype=np.int32)
    multi = np.full(_MAX_CODE_POINT, -1, dtype=np.int32)
    starts, lengths, values = [], [], [0]
    for cp, mapped in sorted(char_map.items()):
        if len(mapped) == 1:
            single[cp] = ord(mapped)
        else:
            multi[cp] = len(starts)
            starts.append(len(values))
            lengths.append(len(mapped))
            values.extend(ord(c) for c in mapped)
    return {
        "single": tf.constant(single),
        "multi": tf.constant(multi),
        "start": tf.constant(np.array(starts or [0], dtype=np.int32)),
        "length": tf.constant(np.array(lengths or [1], dtype=np.int32)),
        "values": tf.constant(np.array(values, dtype=np.int32)),
    }


def _build_tf_state(vocabulary: Sequence[str]) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    tables = _unicode_tables()
    pairs: dict[tuple[int, int], int] = tables["pairs"]
    ccc = np.zeros(_MAX_CODE_POINT, dtype=np.int32)
    for cp, value in tables["ccc"].items():
        ccc[cp] = value
    is_second = np.zeros(_MAX_CODE_POINT, dtype=bool)
    for _, second in pairs:
        is_second[second] = True
    keys = np.array([a * _MAX_CODE_POINT + b for a, b in pairs], dtype=np.int64)
    composed = np.array(list(pairs.values()), dtype=np.int64)
    word = _re2_class(tables["word_ranges"])
    vocab = list(vocabulary)
    return {
        "nfkd": _tf_char_map(tables["nfkd_map"]),
        "case": _tf_char_map(tables["case_map"]),
        "ccc": tf.constant(ccc),
        "is_second": tf.constant(is_second),
        "pair_table": tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(composed)), -1
        ),
        "spaces_re": _re2_class(tables["space_ranges"]) + "+",
        "protect_re": f"({word})'({word})",
        "single_re": "(" + _re2_class(tables["word_or_space_ranges"], negate=True) + ")",
        "vocab_table": tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab[2:] or [OOV_TOKEN], dtype=tf.string),
                tf.constant(list(range(2, len(vocab))) or [OOV_ID], dtype=tf.int64),
            ),
            OOV_ID,
        ),
    }


def _tf_map_code_points(table: dict[str, Any], flat: Any, rows: Any) -> tuple[Any, Any]:
    """Replace each code point of ``flat`` (row ids ``rows``) by its image under a char map."""
    import tensorflow as tf

    which = tf.gather(table["multi"], flat)
    flat = tf.gather(table["single"], flat)

    def expand() -> tuple[Any, Any]:
        is_multi = which >= 0
        safe = tf.maximum(which, 0)
        lengths = tf.where(is_multi, tf.gather(table["length"], safe), 1)
        offsets = tf.cumsum(lengths, exclusive=True)
        total = tf.reduce_sum(lengths)
        out = tf.scatter_nd(offsets[:, None], flat, total[None])
        out_rows = tf.repeat(rows, lengths)
        pos = tf.where(is_multi)[:, 0]
        m_len = tf.gather(lengths, pos)
        m_start = tf.gather(table["start"], tf.gather(safe, pos))
        m_off = tf.gather(offsets, pos)
        src = tf.ragged.range(m_start, m_start + m_len).flat_values
        dst = tf.ragged.range(m_off, m_off + m_len).flat_values
        out = tf.tensor_scatter_nd_update(out, dst[:, None], tf.gather(table["values"], src))
        return out, out_rows

    return tf.cond(tf.reduce_any(which >= 0), expand, lambda: (flat, rows))


def _tf_reorder(state: dict[str, Any], flat: Any, rows: Any) -> Any:
    """Canonical ordering: sort each run of combining marks by combining class (stable)."""
    import tensorflow as tf

    ccc = tf.gather(state["ccc"], flat)
    same_row = tf.equal(rows[1:], rows[:-1])
    out_of_order = tf.logical_and(same_row, tf.logical_and(ccc[1:] > 0, ccc[:-1] > ccc[1:]))

    def reorder() -> Any:
        starts = tf.logical_or(
            tf.equal(ccc, 0), tf.concat([tf.constant([True]), tf.logical_not(same_row)], 0)
        )
        segment = tf.cumsum(tf.cast(starts, tf.int64))
        order = tf.argsort(segment * 256 + tf.cast(ccc, tf.int64), stable=True)
        return tf.gather(flat, order)

    return tf.cond(tf.reduce_any(out_of_order), reorder, lambda: flat)


def _tf_compose_pass(state: dict[str, Any], flat: Any, rows: Any, final: Any) -> tuple[Any, ...]:
    """One vectorised step of the canonical composition algorithm (Unicode UAX #15).

    Every starter S composes with the first following character C that is not blocked from it
    (no character between them has a combining class >= C's) and forms a primary composite with
    it; characters checked before that one are final (they never compose, as in the
    sequential algorithm). Repeated until nothing composes, this equals the sequential one.
    """
    import tensorflow as tf

    n = tf.size(flat, out_type=tf.int64)
    index = tf.range(n)
    ccc = tf.gather(state["ccc"], flat)
    is_starter = tf.equal(ccc, 0)
    # Last starter strictly before each position, in the same row (-1 if none).
    starter_pos = tf.boolean_mask(index, is_starter)
    count = tf.cumsum(tf.cast(is_starter, tf.int64), exclusive=True)
    last = tf.where(count > 0, tf.gather(starter_pos, tf.maximum(count - 1, 0)), -1)
    valid = tf.logical_and(last >= 0, tf.equal(tf.gather(rows, tf.maximum(last, 0)), rows))
    valid = tf.logical_and(valid, tf.logical_not(final))
    previous_ccc = tf.concat([tf.constant([0], ccc.dtype), ccc[:-1]], 0)
    adjacent = tf.equal(last, index - 1)
    unblocked = tf.logical_or(adjacent, tf.logical_and(ccc > 0, previous_ccc < ccc))
    maybe = tf.logical_and(tf.logical_and(valid, unblocked), tf.gather(state["is_second"], flat))
    pos = tf.where(maybe)[:, 0]
    starter = tf.gather(last, pos)
    keys = tf.cast(tf.gather(flat, starter), tf.int64) * _MAX_CODE_POINT + tf.cast(
        tf.gather(flat, pos), tf.int64
    )
    composed = state["pair_table"].lookup(keys)
    ok = composed >= 0
    pos, starter, composed = (tf.boolean_mask(t, ok) for t in (pos, starter, composed))
    # The first success of each starter.
    first = tf.math.unsorted_segment_min(pos, starter, num_segments=n)  # int64 max if none
    chosen = tf.equal(tf.gather(first, starter), pos)
    pos, starter, composed = (tf.boolean_mask(t, chosen) for t in (pos, starter, composed))
    # A starter absorbed in this pass must not compose in it (its result is recomputed later).
    absorbed = tf.scatter_nd(pos[:, None], tf.ones_like(pos, tf.int32), n[None]) > 0
    apply = tf.logical_not(tf.gather(absorbed, starter))
    pos, starter, composed = (tf.boolean_mask(t, apply) for t in (pos, starter, composed))
    # Characters checked (and failed) before their starter's first success become final,
    # unless that starter is itself absorbed now.
    checked = tf.logical_and(valid, index < tf.gather(first, tf.maximum(last, 0)))
    checked = tf.logical_and(checked, tf.logical_not(tf.gather(absorbed, tf.maximum(last, 0))))
    final = tf.logical_or(final, checked)
    flat = tf.tensor_scatter_nd_update(flat, starter[:, None], tf.cast(composed, flat.dtype))
    keep = tf.logical_not(tf.scatter_nd(pos[:, None], tf.ones_like(pos, tf.int32), n[None]) > 0)
    flat, rows, final = (tf.boolean_mask(t, keep) for t in (flat, rows, final))
    return flat, rows, final, tf.size(pos) > 0


def _tf_compose(state: dict[str, Any], flat: Any, rows: Any) -> tuple[Any, Any]:
    """Canonical composition of decomposed, canonically ordered code points."""
    import tensorflow as tf

    def body(i, flat, rows, final, _):
        return (i + 1, *_tf_compose_pass(state, flat, rows, final))

    def compose() -> tuple[Any, Any]:
        final = tf.zeros_like(flat, dtype=tf.bool)
        _, out, out_rows, _, _ = tf.while_loop(
            lambda i, f, r, fi, changed: tf.logical_and(changed, i < _MAX_COMPOSE_PASSES),
            body,
            (tf.constant(0), flat, rows, final, tf.constant(True)),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([]),
            ),
        )
        return out, out_rows

    needed = tf.reduce_any(tf.gather(state["is_second"], flat))
    return tf.cond(needed, compose, lambda: (flat, rows))


def _tf_standardize(state: dict[str, Any], strings: Any) -> Any:
    import tensorflow as tf

    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    shape = tf.shape(strings)
    cps = tf.strings.unicode_decode(tf.reshape(strings, [-1]), "UTF-8", errors="replace")
    flat, rows = cps.flat_values, cps.value_rowids()
    flat, rows = _tf_map_code_points(state["nfkd"], flat, rows)
    flat = _tf_reorder(state, flat, rows)
    flat, rows = _tf_compose(state, flat, rows)
    flat, rows = _tf_map_code_points(state["case"], flat, rows)
    cps = tf.RaggedTensor.from_value_rowids(flat, rows, nrows=cps.nrows())
    text = tf.strings.unicode_encode(cps, "UTF-8")
    text = tf.strings.regex_replace(text, state["spaces_re"], " ")
    text = tf.strings.regex_replace(text, _BR_PATTERN, " ")
    return tf.reshape(text, shape)


def _tf_split(state: dict[str, Any], strings: Any) -> Any:
    import tensorflow as tf

    text = tf.convert_to_tensor(strings, dtype=tf.string)
    # Protect apostrophes inside words (two passes: matches cannot overlap), pad every other
    # non-word, non-space character with spaces, then restore the apostrophes and split.
    for _ in range(2):
        text = tf.strings.regex_replace(text, state["protect_re"], "\\1\x00\\2")
    text = tf.strings.regex_replace(text, state["single_re"], " \\1 ")
    text = tf.strings.regex_replace(text, "\x00", "'")
    tokens = tf.strings.split(text, sep=" ")
    return tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
