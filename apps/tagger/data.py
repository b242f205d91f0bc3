"""Tagged sentences from every ``--data`` source, the vocabularies, and the ``tf.data`` pipeline.

Sources (see :func:`load_splits`):

- ``builtin:teddy`` — generated NER sentences (:mod:`apps.tagger.teddy`), clearly labelled so;
- a CoNLL file or folder (``token<TAB|SPACE>tag``; WNUT-17, Wikigold, CoNLL-2003 layout) — NER;
- a CoNLL-U file or folder (UD treebanks) — part of speech, ``upos`` (default) or ``xpos``;
- ``tfds:conll2003[:SPLIT]`` — when tensorflow-datasets can download it (offline: a clear error).

Splits: a folder with ``*train*``, ``*dev*``/``*valid*`` and ``*test*`` files uses them as
train / validation / test. With train and dev only (WNUT-17, UD English-EWT here: the official
test sets are not shipped), validation is a seeded 10 % of the training *documents* and the test
split is the official dev set, so the reported number is on data never used for model selection.
A single file (Wikigold) is split 80/10/10 by document (by sentence when it has fewer than 10
documents), seeded.

NER tags are read in any scheme (IOB1, IOB2, BIOES) and converted to IOB2
(:mod:`apps.tagger.schemes`); POS tags are kept as they are.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError
from apps.common.rundir import atomic_write_json
from apps.common.sources import Source, parse_source
from apps.tagger import conll, schemes, teddy
from apps.tagger.conll import Sentence

BUILTIN_DATA = ("teddy",)
TAG_SETS = ("auto", "ner", "upos", "xpos")
PAD_ID, OOV_ID = 0, 1
CONLL_SUFFIXES = (".conll", ".conllu", ".txt", ".iob", ".iob1", ".iob2", ".bio", ".bioes", ".tsv")
VOCAB_FORMAT = "rnnsuite.tagger.vocab/1"
_DIGITS = re.compile(r"\d")


@dataclasses.dataclass
class TaggedData:
    """Train / validation / test sentences of one source.

    Attributes:
        train, val, test: the sentences (IOB2 tags for NER).
        task: ``"ner"`` or ``"pos"``.
        tag_set: ``"ner"``, ``"upos"`` or ``"xpos"``.
        scheme: the scheme the NER source was written in (``IOB1``/``IOB2``/``BIOES``), or
            ``None`` for POS.
        description: where the data came from, for the user.
    """

    train: list[Sentence]
    val: list[Sentence]
    test: list[Sentence]
    task: str
    tag_set: str
    scheme: str | None
    description: str

    def split(self, name: str) -> list[Sentence]:
        """``train``, ``val``, ``test`` or ``all`` (the three together)."""
        if name == "all":
            return self.train + self.val + self.test
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val, test or all. Received: {name!r}")
        return getattr(self, name)


# ------------------------------------------------------------------------ files
def _split_of(name: str) -> str | None:
    lowered = name.lower()
    if "train" in lowered:
        return "train"
    if re.search(r"(dev|valid|val)", lowered):
        return "dev"
    if "test" in lowered:
        return "test"
    return None


def _data_files(folder: Path) -> dict[str, Path]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CONLL_SUFFIXES
    )
    files = [p for p in files if p.name.lower() not in ("license.txt", "readme.txt")]
    if not files:
        raise DataError(
            f"--data: {folder} holds no CoNLL / CoNLL-U files (looked for "
            f"{', '.join(CONLL_SUFFIXES)})"
        )
    if len(files) == 1:
        return {"single": files[0]}
    by_split: dict[str, Path] = {}
    for path in files:
        split = _split_of(path.name)
        if split is None:
            continue
        if split in by_split:
            raise DataError(
                f"--data: {folder} has two {split} files ({by_split[split].name}, {path.name}); "
                "give one file"
            )
        by_split[split] = path
    if not by_split:
        names = ", ".join(p.name for p in files)
        raise DataError(
            f"--data: {folder} has several files ({names}) but none is named train/dev/test; "
            "give one file"
        )
    if "train" not in by_split:
        if len(by_split) == 1:
            return {"single": next(iter(by_split.values()))}
        raise DataError(f"--data: {folder} has no training file (a name with 'train')")
    return by_split


def _resolve_tag_set(tag_set: str, is_conllu: bool, where: str) -> str:
    if tag_set not in TAG_SETS:
        raise DataError(f"--tags: unknown tag set {tag_set!r} (choose from {', '.join(TAG_SETS)})")
    if tag_set == "auto":
        return "upos" if is_conllu else "ner"
    if is_conllu and tag_set == "ner":
        raise DataError(f"--tags: {where} is CoNLL-U (part of speech); use --tags upos or xpos")
    if not is_conllu and tag_set in ("upos", "xpos"):
        raise DataError(
            f"--tags: {where} is a CoNLL column file; --tags {tag_set} needs a CoNLL-U file"
        )
    return tag_set


def read_tagged_file(path: Path, tag_set: str) -> list[Sentence]:
    """Sentences of one CoNLL / CoNLL-U file with tags of ``tag_set`` (NER tags not converted)."""
    if tag_set in ("upos", "xpos"):
        return conll.read_conllu(path, tag_set)
    return conll.read_conll(path)


def normalize_ner(sentences: list[Sentence], where: str) -> tuple[list[Sentence], str]:
    """Check the NER tags of ``sentences`` and convert them to IOB2.

    Returns:
        ``(converted sentences, the scheme they were written in)``.

    Raises:
        DataError: a tag outside the schemes (naming the file line) or mixed schemes.
    """
    try:
        scheme = schemes.detect_scheme(s.tags for s in sentences)
    except schemes.SchemeError as e:
        if e.index is not None:
            bad = sentences[e.index]
            line = f":{bad.line}" if bad.line else f" (sentence {e.index + 1})"
            raise DataError(f"--data: {where}{line}: {e}") from None
        raise DataError(f"--data: {where}: {e}") from None
    out = [dataclasses.replace(s, tags=tuple(schemes.to_iob2(s.tags))) for s in sentences]
    return out, scheme


def _seeded_split(
    sentences: list[Sentence], seed: int, fractions: Sequence[float]
) -> list[list[Sentence]]:
    """Split by document (by sentence when there are fewer than 10 documents), seeded."""
    docs: dict[int, list[Sentence]] = collections.defaultdict(list)
    for s in sentences:
        docs[s.doc].append(s)
    by_doc = len(docs) >= 10
    units = list(docs.values()) if by_doc else [[s] for s in sentences]
    order = list(range(len(units)))
    random.Random(f"tagger-split-{seed}").shuffle(order)
    total = sum(len(u) for u in units)
    parts: list[list[Sentence]] = [[] for _ in fractions]
    targets = np.cumsum(fractions) / np.sum(fractions) * total
    filled, k = 0, 0
    for idx in order:
        while k < len(parts) - 1 and filled >= targets[k]:
            k += 1
        parts[k].extend(units[idx])
        filled += len(units[idx])
    return parts


def _unit(sentences: list[Sentence]) -> str:
    """How :func:`_seeded_split` splits ``sentences``: by document or by sentence."""
    return "by document" if len({s.doc for s in sentences}) >= 10 else "by sentence"


def _limit(sentences: list[Sentence], limit: int | None) -> list[Sentence]:
    return sentences if limit is None else sentences[:limit]


def load_splits(
    spec: str,
    *,
    tag_set: str = "auto",
    seed: int = 0,
    limit: int | None = None,
    generated: int = 4000,
) -> TaggedData:
    """Read ``--data SPEC`` into train / validation / test sentences.

    Args:
        spec: ``builtin:teddy``, ``tfds:conll2003[:SPLIT]``, or a CoNLL / CoNLL-U file or folder.
        tag_set: ``auto`` (CoNLL-U -> ``upos``, otherwise ``ner``), ``ner``, ``upos``, ``xpos``.
        seed: seed of generated data and of the splits drawn here.
        limit: keep at most this many sentences per split.
        generated: training sentences of ``builtin:teddy`` (validation and test get 1/8 each).

    Raises:
        DataError: unknown source, unreadable or malformed files, tags outside the scheme.
    """
    source = parse_source(spec, BUILTIN_DATA)
    if source.kind == "builtin":
        if tag_set not in ("auto", "ner"):
            raise DataError(f"--tags: builtin:teddy is NER data; --tags {tag_set} does not apply")
        n_eval = max(1, generated // 8)
        return TaggedData(
            _limit(teddy.generate(generated, seed, "train"), limit),
            _limit(teddy.generate(n_eval, seed, "val"), limit),
            _limit(teddy.generate(n_eval, seed, "test"), limit),
            "ner",
            "ner",
            "IOB2",
            teddy.DESCRIPTION.format(seed=seed)
            + f": {generated} train / {n_eval} validation / {n_eval} test sentences",
        )
    if source.kind == "tfds":
        return _load_tfds(source, tag_set, seed, limit)
    return _load_path(source.path, tag_set, seed, limit)


def _load_path(path: Path, tag_set: str, seed: int, limit: int | None) -> TaggedData:
    files = _data_files(path) if path.is_dir() else {"single": path}
    first = next(iter(files.values()))
    is_conllu = conll.looks_like_conllu(first)
    resolved = _resolve_tag_set(tag_set, is_conllu, str(first))
    read = {split: read_tagged_file(p, resolved) for split, p in files.items()}
    for split, sentences in read.items():
        if not sentences:
            raise DataError(f"--data: {files[split]} holds no tagged sentences")
    scheme = None
    if resolved == "ner":
        found = set()
        for split in list(read):
            read[split], file_scheme = normalize_ner(read[split], str(files[split]))
            found.add(file_scheme)
        if len(found - {"IOB2"}) > 1:
            raise DataError(f"--data: {path} mixes tag schemes across files: {sorted(found)}")
        scheme = min(found - {"IOB2"}) if found - {"IOB2"} else "IOB2"
    if "single" in read:
        train, val, test = _seeded_split(read["single"], seed, (0.8, 0.1, 0.1))
        how = f"{files['single'].name} split 80/10/10 {_unit(read['single'])}, seed {seed}"
    elif "test" in read:
        train, val, test = read["train"], read.get("dev", []), read["test"]
        if not val:
            train, val = _seeded_split(train, seed, (0.9, 0.1))
        how = "train / dev / test files"
    else:
        train, val = _seeded_split(read["train"], seed, (0.9, 0.1))
        test = read["dev"]
        how = (
            f"train = 90% of {files['train'].name}, validation = the other 10% "
            f"({_unit(read['train'])}, "
            f"seed {seed}), test = {files['dev'].name} (the official dev split)"
        )
    task = "ner" if resolved == "ner" else "pos"
    what = f"{resolved.upper()} tags" + (f", {scheme} scheme read" if scheme else "")
    return TaggedData(
        _limit(train, limit),
        _limit(val, limit),
        _limit(test, limit),
        task,
        resolved,
        scheme,
        f"{path} ({what}; {how})",
    )


def _load_tfds(source: Source, tag_set: str, seed: int, limit: int | None) -> TaggedData:
    import logging

    from apps.common.sources import load_tfds

    logging.getLogger("absl").setLevel(logging.ERROR)  # tfds' notes about missing folders
    resolved = "ner" if tag_set == "auto" else tag_set
    feature = {"ner": "ner", "xpos": "pos"}.get(resolved)
    if feature is None:
        raise DataError(f"--tags: {source.spec} has NER and PTB (xpos) tags, not {resolved}")
    splits = {}
    names = ("train", "dev", "test")
    for name in names:
        dataset, info = load_tfds(source, split=name)
        if feature not in info.features:
            raise DataError(f"--data: {source.spec} has no '{feature}' feature")
        labels = info.features[feature].feature.names
        out = []
        for n, ex in enumerate(dataset.as_numpy_iterator()):
            tokens = tuple(t.decode("utf-8") for t in ex["tokens"])
            tags = tuple(labels[int(i)] for i in ex[feature])
            if tokens:
                out.append(Sentence(tokens, tags, doc=n, line=0))
        splits[name] = out
    scheme = None
    if resolved == "ner":
        for name in names:
            splits[name], scheme = normalize_ner(splits[name], f"{source.spec}:{name}")
    return TaggedData(
        _limit(splits["train"], limit),
        _limit(splits["dev"], limit),
        _limit(splits["test"], limit),
        "ner" if resolved == "ner" else "pos",
        resolved,
        scheme,
        f"{source.spec} (tensorflow-datasets; train / dev / test)",
    )


# ------------------------------------------------------------------- vocabulary
def normalize_word(token: str) -> str:
    """The word-embedding key of a token: lower case, every digit ``0``."""
    return _DIGITS.sub("0", token.lower())


def clip_chars(token: str, max_chars: int) -> str:
    """A long token keeps its first and last ``max_chars // 2`` characters (prefix + suffix)."""
    if len(token) <= max_chars:
        return token
    head = max_chars - max_chars // 2
    return token[:head] + token[len(token) - max_chars // 2 :]


@dataclasses.dataclass
class Vocab:
    """Word, character and tag tables (``vocab.json``).

    Word and character ids: 0 padding, 1 unknown, then by decreasing training frequency (ties
    by the string), so building is deterministic. Tag ids: the sorted tags of the training set.
    """

    words: list[str]
    chars: list[str]
    tags: list[str]
    max_chars: int
    task: str

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sentence],
        *,
        max_words: int,
        min_count: int,
        max_chars: int,
        task: str,
    ) -> Vocab:
        sentences = list(sentences)
        words = collections.Counter(normalize_word(t) for s in sentences for t in s.tokens)
        chars = collections.Counter(c for s in sentences for t in s.tokens for c in t)
        tags = sorted({t for s in sentences for t in s.tags})
        kept = [
            w for w, c in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count
        ]
        char_list = [c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))]
        return cls(["", "[UNK]", *kept[: max(0, max_words - 2)]], ["", "[UNK]", *char_list],
                   tags, max_chars, task)  # fmt: skip

    @functools.cached_property
    def word_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words) if i >= 2}

    @functools.cached_property
    def char_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars) if i >= 2}

    @functools.cached_property
    def tag_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}

    def encode_words(self, tokens: Sequence[str]) -> np.ndarray:
        """Word ids ``(T,)`` int32."""
        index = self.word_index
        return np.array([index.get(normalize_word(t), OOV_ID) for t in tokens], np.int32)

    def encode_chars(self, tokens: Sequence[str], width: int | None = None) -> np.ndarray:
        """Character ids ``(T, width)`` int32 (``width`` default: the longest clipped token)."""
        clipped = [clip_chars(t, self.max_chars) for t in tokens]
        width = width or max([1, *(len(t) for t in clipped)])
        out = np.zeros((len(tokens), width), np.int32)
        index = self.char_index
        for i, tok in enumerate(clipped):
            out[i, : len(tok)] = [index.get(c, OOV_ID) for c in tok[:width]]
        return out

    def encode_tags(self, tags: Sequence[str]) -> np.ndarray:
        """Tag ids ``(T,)``; a tag unknown to the model maps to -1 (never predicted)."""
        index = self.tag_index
        return np.array([index.get(t, -1) for t in tags], np.int32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": VOCAB_FORMAT,
            "task": self.task,
            "max_chars": self.max_chars,
            "tags": self.tags,
            "words": self.words,
            "chars": self.chars,
        }

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read ``vocab.json``; ``ValueError`` when it is not a tagger vocabulary."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise ValueError(f"{path} is not a tagger vocabulary ({VOCAB_FORMAT})")
        return cls(list(data["words"]), list(data["chars"]), list(data["tags"]),
                   int(data["max_chars"]), str(data["task"]))  # fmt: skip


def encode_batch(
    vocab: Vocab, batch: Sequence[Sequence[str]], *, length: int | None = None,
    width: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Model inputs for token lists, right-padded with 0: ``word_ids (B, T)``,
    ``char_ids (B, T, C)`` (``T``/``C`` default to the longest in the batch)."""
    length = length or max([1, *(len(t) for t in batch)])
    width = width or max([1, *(len(clip_chars(w, vocab.max_chars)) for t in batch for w in t)])
    words = np.zeros((len(batch), length), np.int32)
    chars = np.zeros((len(batch), length, width), np.int32)
    for row, tokens in enumerate(batch):
        words[row, : len(tokens)] = vocab.encode_words(tokens)
        chars[row, : len(tokens)] = vocab.encode_chars(tokens, width)
    return {"word_ids": words, "char_ids": chars}


def make_dataset(
    sentences: Sequence[Sentence],
    vocab: Vocab,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
) -> Any:
    """A ``tf.data.Dataset`` of ``({"word_ids", "char_ids"}, tag_ids, weights)`` batches.

    Batches are padded per batch (0 for ids; tag 0 with weight 0 for padding). Training data is
    shuffled, then grouped so that each batch holds sentences of similar length (less padding,
    faster epochs); ``weights`` is 1 on real tokens, 0 on padding and on tags the model does not
    know.
    """
    import tensorflow as tf

    words = [vocab.encode_words(s.tokens) for s in sentences]
    tags = [vocab.encode_tags(s.tags) for s in sentences]
    clipped = [[clip_chars(t, vocab.max_chars) for t in s.tokens] for s in sentences]
    index = vocab.char_index
    flat_chars = np.array(
        [index.get(c, OOV_ID) for toks in clipped for tok in toks for c in tok], np.int32
    )
    sentence_lengths = np.array([len(w) for w in words], np.int64)
    token_lengths = np.array([len(tok) for toks in clipped for tok in toks], np.int64)

    def ragged(rows: list[np.ndarray]) -> Any:
        flat = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
        return tf.RaggedTensor.from_row_lengths(flat, sentence_lengths)

    char_rt = tf.RaggedTensor.from_nested_row_lengths(flat_chars, [sentence_lengths, token_lengths])
    ds = tf.data.Dataset.from_tensor_slices((ragged(words), char_rt, ragged(tags)))

    def to_example(w, c, t):
        c = c.to_tensor() if isinstance(c, tf.RaggedTensor) else c
        weights = tf.cast(t >= 0, tf.float32)
        return {"word_ids": w, "char_ids": c}, tf.maximum(t, 0), weights

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)
    padded = ({"word_ids": [None], "char_ids": [None, None]}, [None], [None])
    if shuffle and len(sentences) > 4 * batch_size:
        lengths = sorted(len(w) for w in words)
        bounds = sorted({lengths[int(q * (len(lengths) - 1))] + 1 for q in (0.2, 0.4, 0.6, 0.8)})
        ds = ds.bucket_by_sequence_length(
            lambda x, *_: tf.shape(x["word_ids"])[0],
            bucket_boundaries=bounds,
            bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
            padded_shapes=padded,
        )
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=padded)
    return ds.prefetch(tf.data.AUTOTUNE)
