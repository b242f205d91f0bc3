"""Translation data: every ``--data`` source as train/val/test ``(source, target)`` pairs, and
the ``tf.data`` pipeline that feeds the models.

Sources (``--data``):

- ``builtin:numbers`` (default) — English number phrases and the same numbers written out in
  German, French or Spanish (``lang``), generated with the ``num2words`` package:
  ``three hundred and twenty-one`` → ``dreihunderteinundzwanzig`` / ``trois cent vingt et un``
  / ``trescientos veintiuno``. ``numbers`` distinct numbers are drawn from ``0..number_max`` by
  ``seed`` and split 80/10/10 *by number*, so no test number occurs in training.
- a path — an Anki / Tatoeba pairs file (``English<TAB>Other[<TAB>attribution]`` per line, the
  manythings.org layout), or a folder holding exactly one such ``*.txt`` (files starting with
  ``_`` such as ``_about.txt`` are ignored). The file must be UTF-8; a line without a tab or
  with an empty side is an error naming the line; a header line (``English<TAB>Spanish``,
  ``eng<TAB>spa``, ``source<TAB>target``…) is skipped with a note. Exact duplicate pairs are
  dropped; pairs are split 80/10/10 *by source sentence* (all translations of one source
  sentence fall in the same split).
- ``tfds:NAME[:SPLIT]`` — a tensorflow-datasets translation set read with
  ``as_supervised=True`` (``ted_hrlr_translate/pt_to_en``…); without ``SPLIT`` its own
  train/validation/test splits are used, with one the split is divided 80/10/10. Offline and not
  downloaded: a one-line error.

``direction``: ``forward`` keeps the source's order (numbers: English → ``lang``; pairs file:
English → other; tfds: supervised order), ``reverse`` swaps it, ``auto`` is forward except for
pairs files, which go into English (Spanish → English for ``spa.txt``).
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apps.common.errors import DataError
from apps.common.sources import Source, decode_utf8_strict, load_tfds, parse_source
from apps.translation.config import BUILTIN_DATA

FLAG = "--data"
NUMBER_LANGS = {"de": "German", "fr": "French", "es": "Spanish"}
ANKI_LANGS = {"spa": "Spanish", "fra": "French", "deu": "German", "ita": "Italian",
              "por": "Portuguese", "nld": "Dutch", "rus": "Russian", "tur": "Turkish",
              "jpn": "Japanese", "cmn": "Chinese", "pol": "Polish", "ara": "Arabic"}  # fmt: skip
HEADER_WORDS = frozenset(
    {"english", "eng", "en", "source", "target", "src", "tgt", "text", "translation", "sentence",
     "input", "output", *ANKI_LANGS, *(v.lower() for v in ANKI_LANGS.values()), *NUMBER_LANGS,
     "es", "fr", "it", "pt", "nl", "ru", "tr", "ja", "zh", "pl", "ar", "other"}
)  # fmt: skip
PAIRS_HINT = "expected an Anki/Tatoeba file of English<TAB>translation lines, or a folder with one"

Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class TranslationData:
    """Train/val/test pairs of one source.

    Attributes:
        train: ``(source, target)`` pairs to train on (fit tokenisers on these only).
        val: pairs for model selection.
        test: pairs for the final evaluation (never seen in training).
        source_lang: name of the source language (``English``).
        target_lang: name of the target language (``German``).
        description: one line: what the data is, its licence, its size.
        notes: things the user should know (skipped header lines…).
    """

    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    source_lang: str
    target_lang: str
    description: str
    notes: tuple[str, ...] = ()


def _split_three(items: list[Any], seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    """Shuffle by ``seed`` and cut 80/10/10 (at least one item in val and test when >= 3)."""
    items = list(items)
    random.Random(seed).shuffle(items)
    n = len(items)
    n_test = max(1, n // 10) if n >= 3 else 0
    n_val = max(1, n // 10) if n >= 3 else 0
    return items[: n - n_val - n_test], items[n - n_val - n_test : n - n_test], items[n - n_test :]


def _orient(pairs: list[Pair], reverse: bool) -> list[Pair]:
    return [(b, a) for a, b in pairs] if reverse else pairs


# ---------------------------------------------------------------------------------- numbers
def number_pair(n: int, lang: str) -> Pair:
    """``(English words, words in lang)`` for the number ``n`` (``num2words``)."""
    from num2words import num2words

    return num2words(n, lang="en"), num2words(n, lang=lang)


def load_numbers(lang: str, *, number_max: int, count: int, seed: int, reverse: bool = False,
                 quiet: bool = True) -> TranslationData:  # fmt: skip
    """``count`` distinct numbers from ``0..number_max``, split 80/10/10 by number (a progress
    bar on stderr when writing them out takes over ~2 s, unless ``quiet``)."""
    from apps.common.progress import track

    try:
        import num2words  # noqa: F401
    except ImportError:  # pragma: no cover - declared dependency
        raise DataError(
            f"{FLAG}: builtin:numbers needs the num2words package (pip install num2words)"
        ) from None
    if lang not in NUMBER_LANGS:
        raise DataError(
            f"--lang: unknown language {lang!r} (choose from {', '.join(NUMBER_LANGS)})"
        )
    count = min(count, number_max + 1)
    numbers = random.Random(seed).sample(range(number_max + 1), count)
    train_n, val_n, test_n = _split_three(numbers, seed + 1)
    written = (number_pair(n, lang) for n in track(numbers, "writing numbers", quiet=quiet))
    pairs = dict(zip(numbers, written))
    made = [[pairs[n] for n in part] for part in (train_n, val_n, test_n)]
    train, val, test = (_orient(p, reverse) for p in made)
    names = ("English", NUMBER_LANGS[lang])
    src, tgt = names[::-1] if reverse else names
    description = (
        f"builtin:numbers — {count:,} numbers in 0..{number_max:,} written out by num2words "
        f"(LGPL), {src} → {tgt}, split by number"
    )
    return TranslationData(train, val, test, src, tgt, description)


# ------------------------------------------------------------------------------ pairs file
def find_pairs_file(path: Path) -> Path:
    """The pairs file itself, or the one ``*.txt`` in a folder (``_about.txt`` ignored)."""
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(p for p in path.glob("*.txt") if not p.name.startswith(("_", ".")))
        if len(found) == 1:
            return found[0]
        if not found:
            raise DataError(f"{FLAG}: {path} has no pairs file (*.txt); {PAIRS_HINT}")
        names = ", ".join(p.name for p in found[:5])
        raise DataError(f"{FLAG}: {path} has several .txt files ({names}); give one of them")
    raise DataError(f"{FLAG}: {path} is not a file or folder; {PAIRS_HINT}")


def _is_header(fields: Sequence[str]) -> bool:
    return all(f.strip().strip(":#").lower() in HEADER_WORDS for f in fields[:2])


def parse_pairs(text: str, name: str) -> tuple[list[Pair], list[str]]:
    """``(English, other)`` pairs of an Anki/Tatoeba file's text, and notes.

    Blank lines are skipped; a third column (attribution) is ignored; header lines are skipped
    with a note; exact duplicate pairs are kept once.

    Raises:
        DataError: a line without a tab, or with an empty side (naming the line), or no pairs.
    """
    pairs: list[Pair] = []
    seen: set[Pair] = set()
    headers: list[int] = []
    duplicates = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise DataError(f"{FLAG}: {name} line {number} has no tab ({shown!r}); {PAIRS_HINT}")
        if _is_header(fields):
            headers.append(number)
            continue
        english, other = fields[0].strip(), fields[1].strip()
        if not english or not other:
            side = "English (first)" if not english else "translation (second)"
            raise DataError(f"{FLAG}: {name} line {number} has an empty {side} column")
        if (english, other) in seen:
            duplicates += 1
            continue
        seen.add((english, other))
        pairs.append((english, other))
    notes = []
    if headers:
        where = ", ".join(str(h) for h in headers[:5])
        notes.append(f"skipped {len(headers)} header line(s) in {name} (line {where})")
    if duplicates:
        notes.append(f"dropped {duplicates:,} duplicate pairs in {name}")
    if not pairs:
        raise DataError(f"{FLAG}: {name} holds no sentence pairs; {PAIRS_HINT}")
    return pairs, notes


def _split_by_source(pairs: list[Pair], seed: int) -> tuple[list[Pair], list[Pair], list[Pair]]:
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair[0], []).append(pair)
    keys = sorted(groups, key=lambda s: zlib.crc32(s.encode("utf-8")))
    parts = _split_three(keys, seed)
    return tuple([p for k in part for p in groups[k]] for part in parts)  # type: ignore[return-value]


def load_pairs_file(path: Path, *, reverse: bool, seed: int, limit: int | None) -> TranslationData:
    """An Anki/Tatoeba pairs file (see the module docstring)."""
    file = find_pairs_file(path)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise DataError(f"{FLAG}: cannot read {file}: {e.strerror}") from None
    pairs, notes = parse_pairs(decode_utf8_strict(raw, str(file), flag=FLAG), file.name)
    total = len(pairs)
    if limit is not None and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    pairs = _orient(pairs, reverse)
    train, val, test = _split_by_source(pairs, seed)
    other = ANKI_LANGS.get(file.stem.lower(), "the other language")
    src, tgt = (other, "English") if reverse else ("English", other)
    used = f"{len(pairs):,} of {total:,}" if len(pairs) < total else f"{total:,}"
    description = (f"{file} — {used} Anki/Tatoeba sentence pairs (CC-BY 2.0 FR, tatoeba.org), "
                   f"{src} → {tgt}, split by source sentence")  # fmt: skip
    return TranslationData(train, val, test, src, tgt, description, tuple(notes))


# ------------------------------------------------------------------------------------ tfds
def _tfds_pairs(dataset: Any, limit: int | None) -> list[Pair]:
    pairs = []
    for a, b in dataset.as_numpy_iterator():
        pairs.append((bytes(a).decode("utf-8", "replace"), bytes(b).decode("utf-8", "replace")))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


def load_tfds_pairs(
    source: Source, *, reverse: bool, seed: int, limit: int | None
) -> TranslationData:
    """A tfds translation set (``as_supervised``)."""
    if source.split:
        dataset, info = load_tfds(source, as_supervised=True)
        train, val, test = _split_three(_tfds_pairs(dataset, limit), seed)
    else:
        parts = []
        for split in ("train", "validation", "test"):
            dataset, info = load_tfds(source, split=split, as_supervised=True)
            parts.append(_tfds_pairs(dataset, limit if split == "train" else None))
        train, val, test = parts
    keys = tuple(getattr(info, "supervised_keys", None) or ("source", "target"))[:2]
    src, tgt = (keys[1], keys[0]) if reverse else (keys[0], keys[1])
    train, val, test = (_orient(p, reverse) for p in (train, val, test))
    description = (
        f"{source.spec} — tensorflow-datasets, {src} → {tgt}, {len(train):,} training pairs"
    )
    return TranslationData(train, val, test, str(src), str(tgt), description)


# -------------------------------------------------------------------------------- dispatch
def load_splits(spec: str, *, lang: str = "de", direction: str = "auto", seed: int = 1234,
                limit: int | None = None, number_max: int = 999_999, numbers: int = 30_000,
                quiet: bool = True) -> TranslationData:  # fmt: skip
    """Train/val/test pairs of ``--data spec`` (see the module docstring).

    Raises:
        DataError: an unknown or unreadable source (one line naming ``--data``).
    """
    source = parse_source(spec, BUILTIN_DATA, flag=FLAG)
    if direction not in ("auto", "forward", "reverse"):
        raise DataError(f"--direction: must be auto, forward or reverse, got {direction!r}")
    if source.kind == "builtin":
        return load_numbers(lang, number_max=number_max, count=numbers, seed=seed,
                            reverse=direction == "reverse", quiet=quiet)  # fmt: skip
    if source.kind == "tfds":
        return load_tfds_pairs(source, reverse=direction == "reverse", seed=seed, limit=limit)
    return load_pairs_file(source.path, reverse=direction != "forward", seed=seed, limit=limit)


# --------------------------------------------------------------------------------- tf.data
def add_markers(
    target_ids: Sequence[int], start_id: int, end_id: int
) -> tuple[list[int], list[int]]:
    """Decoder input ``<s> y1 .. yn`` and output ``y1 .. yn </s>`` (teacher forcing)."""
    return [start_id, *target_ids], [*target_ids, end_id]


def make_dataset(source_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]],
                 batch_size: int, *, shuffle: bool, seed: int, start_id: int = 2,
                 end_id: int = 3) -> Any:  # fmt: skip
    """Batched, prefetched ``tf.data`` of ``((source, target_in), target_out, weights)``.

    Pairs are grouped by length (``bucket_by_sequence_length``) and padded with 0 per batch;
    ``weights`` is 1 on real target steps and 0 on padding (the loss and the token accuracy are
    averaged over real steps only).

    Args:
        source_ids: per pair, the source ids (no markers).
        target_ids: per pair, the target ids (no markers).
        batch_size: pairs per batch.
        shuffle: reshuffle every epoch (training).
        seed: shuffle seed.
    """
    import numpy as np
    import tensorflow as tf

    if len(source_ids) != len(target_ids):
        raise ValueError("source_ids and target_ids must have the same length")
    tin, tout = (
        zip(*(add_markers(t, start_id, end_id) for t in target_ids)) if target_ids else ((), ())
    )
    src = tf.ragged.constant([list(s) for s in source_ids], dtype=tf.int32, ragged_rank=1)
    tin = tf.ragged.constant([list(t) for t in tin], dtype=tf.int32, ragged_rank=1)
    tout = tf.ragged.constant([list(t) for t in tout], dtype=tf.int32, ragged_rank=1)
    ds = tf.data.Dataset.range(len(source_ids))
    if shuffle:
        ds = ds.shuffle(len(source_ids), seed=seed, reshuffle_each_iteration=True)
    # Plain graph functions (no Python control flow): AutoGraph has nothing to convert.
    plain = tf.autograph.experimental.do_not_convert

    @plain
    def pair(i):
        return src[i], tin[i], tout[i]

    @plain
    def length(s, ti, to):
        return tf.maximum(tf.shape(s)[0], tf.shape(ti)[0])

    @plain
    def to_model(s, ti, to):
        return (s, ti), to, tf.cast(tf.not_equal(to, 0), tf.float32)

    ds = ds.map(pair)
    lengths = [max(len(s), len(t) + 1) for s, t in zip(source_ids, target_ids)] or [1]
    top = int(np.max(lengths))
    bounds = [b for b in (4, 6, 8, 10, 12, 16, 20, 25, 30, 40, 60) if b <= top]
    ds = ds.bucket_by_sequence_length(
        length,
        bucket_boundaries=[b + 1 for b in bounds],
        bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
    )

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
