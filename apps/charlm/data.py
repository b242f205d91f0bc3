"""Corpora, the character vocabulary, and truncated-BPTT batching into contiguous streams.

Sources (``--data``):

- ``builtin:pysource`` — the Python standard library's own ``.py`` files on this machine
  (``sysconfig.get_paths()["stdlib"]``; ``site-packages``, ``__pycache__`` and the ``test``
  packages left out), the analogue of the lecture's Linux-kernel corpus. Files are taken in a
  fixed order (sorted by the SHA-1 of their relative path, so a capped corpus still samples the
  whole library) until ``max_chars`` is reached; whole files go to the validation text whenever
  that brings its share of the characters read so far closer to ``val_fraction`` (with too few
  files for that, the end of the text is held out). Same machine, same Python: same corpus.
- a text file — the first ``1 - val_fraction`` of its characters train, the rest validate.
- ``tfds:tiny_shakespeare`` — its ``train`` and ``validation`` splits (a clear error offline).

Truncated BPTT (:func:`stream_starts`): the id sequence is cut into ``batch`` contiguous streams
of equal length; batch ``w`` holds window ``w`` of every stream, so row ``b`` of batch ``w + 1``
continues exactly where row ``b`` of batch ``w`` stopped, and a ``stateful`` RNN carries its state
across windows.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import hashlib
import json
import os
import socket
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError
from apps.common.rundir import atomic_write_json
from apps.common.sources import Source, decode_utf8_strict, load_tfds, parse_source

BUILTIN_DATA = ("pysource",)
UNKNOWN_ID = 0
UNKNOWN_CHAR = "\ufffd"  # how the unknown id is shown
PYSOURCE_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests",
                                "idle_test"})  # fmt: skip
TFDS_HOSTS = {"tiny_shakespeare": "raw.githubusercontent.com"}


# ---------------------------------------------------------------------------- vocabulary
class CharVocab:
    """Characters <-> ids; id 0 is the unknown character.

    Args:
        chars: the known characters, in id order (id ``i + 1`` is ``chars[i]``).

    Example:
        >>> vocab = CharVocab.fit("hello", max_size=10)
        >>> vocab.encode("hex").tolist()   # 'x' was never seen
        [3, 2, 0]
    """

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct")
        self.chars = chars
        self._ids = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text: str, max_size: int) -> CharVocab:
        """The ``max_size - 1`` most frequent characters of ``text`` (ties: lower code point),
        numbered in code-point order after the unknown id."""
        if max_size < 2:
            raise ValueError(f"max_size must be >= 2. Received: max_size={max_size}")
        counts = collections.Counter(text)
        ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))[: max_size - 1]
        return cls(sorted(ranked))

    @property
    def size(self) -> int:
        """Number of ids, the unknown id included."""
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of ``text`` (unknown characters -> 0)."""
        get = self._ids.get
        return np.fromiter((get(c, UNKNOWN_ID) for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (the unknown id shows as U+FFFD)."""
        chars = self.chars
        return "".join(chars[i - 1] if 0 < i <= len(chars) else UNKNOWN_CHAR for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that have no id, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._ids))

    def save(self, path: str | os.PathLike) -> None:
        """Write ``{"chars": [...], "unknown_id": 0}`` atomically."""
        atomic_write_json(path, {"kind": "chars", "unknown_id": UNKNOWN_ID, "chars": self.chars})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocab:
        """Read a vocabulary written by :meth:`save` (``ValueError`` when malformed)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("chars"), list):
            raise ValueError(f"{path} is not a character vocabulary (no 'chars' list)")  # noqa: TRY004
        return cls(data["chars"])


# ------------------------------------------------------------------------------- corpora
@dataclasses.dataclass(frozen=True)
class Corpus:
    """Training and validation text of one source.

    Attributes:
        train: the training text.
        val: the validation text.
        description: where it came from, for the log and ``config.json``.
    """

    train: str
    val: str
    description: str


def stdlib_dir() -> Path:
    """The standard library folder of this Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def pysource_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The standard library's ``.py`` files (relative paths) in the corpus order."""
    root = Path(root) if root is not None else stdlib_dir()
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in PYSOURCE_SKIP_DIRS)
        for name in files:
            if name.endswith(".py"):
                found.append((Path(folder) / name).relative_to(root))
    return sorted(found, key=lambda p: (hashlib.sha1(p.as_posix().encode()).hexdigest(), p))


def load_pysource(
    max_chars: int | None, val_fraction: float, *, root: str | os.PathLike | None = None
) -> Corpus:
    """The ``builtin:pysource`` corpus (see the module docstring)."""
    root = Path(root) if root is not None else stdlib_dir()
    if not root.is_dir():
        raise DataError(f"--data: builtin:pysource: the standard library folder {root} is missing")
    train, val, total, val_total, used, skipped = [], [], 0, 0, 0, 0
    for rel in pysource_files(root):
        if max_chars is not None and total >= max_chars:
            break
        try:
            text = (root / rel).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            skipped += 1
            continue
        if not text.strip():
            continue
        text = text if text.endswith("\n") else text + "\n"
        if max_chars is not None:
            text = text[: max_chars - total]
        total += len(text)
        target = val_fraction * total  # a file is held out when that brings the share closer
        if abs(val_total + len(text) - target) < abs(val_total - target):
            val.append(text)
            val_total += len(text)
        else:
            train.append(text)
        used += 1
    if not train:
        raise DataError(f"--data: builtin:pysource: no readable Python files under {root}")
    if not val:  # a cap smaller than a few files: hold out the end of the text instead
        train_text, val_text = split_text("".join(train), val_fraction)
        train, val = [train_text], [val_text]
    note = f", {skipped} non-UTF-8 files skipped" if skipped else ""
    description = (f"builtin:pysource: {used} .py files of the Python standard library at {root} "
                   f"({total:,} characters{note})")  # fmt: skip
    return Corpus("".join(train), "".join(val), description)


def _normal_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(
            f"--encoding: unknown text encoding {encoding!r} (e.g. utf-8, latin-1)"
        ) from None


def decode_text(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Decode a whole file strictly; the error names the byte offset of the first bad byte."""
    if _normal_encoding(encoding) == "utf-8":
        try:
            return decode_utf8_strict(data, name, flag="--data")
        except DataError as e:
            raise DataError(f"{e}, or pass --encoding (e.g. --encoding latin-1)") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise DataError(
            f"--data: {name} is not valid {encoding}: byte 0x{data[e.start : e.start + 1].hex()} "
            f"at byte offset {e.start}; pass the right --encoding"
        ) from None


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """The first ``1 - val_fraction`` of ``text`` and the rest."""
    cut = len(text) - round(len(text) * val_fraction)
    return text[:cut], text[cut:]


def load_text_file(path: Path, encoding: str, max_chars: int | None, val_fraction: float) -> Corpus:
    """A plain text file, split at ``1 - val_fraction``."""
    if path.is_dir():
        raise DataError(f"--data: {path} is a folder; give a text file (or builtin:pysource)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"--data: cannot read {path}: {e.strerror}") from None
    if not data:
        raise DataError(f"--data: {path} is empty; give a text file with some text in it")
    text = decode_text(data, str(path), encoding)
    total = len(text)
    if max_chars is not None:
        text = text[:max_chars]
    train, val = split_text(text, val_fraction)
    cap = f", first {len(text):,} used" if len(text) < total else ""
    return Corpus(train, val, f"{path}: {total:,} characters{cap}")


def _network_reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _tfds_text(source: Source, split: str, download: bool, data_dir: str | None) -> str:
    dataset, _ = load_tfds(source, split=split, download=download, data_dir=data_dir)
    parts = []
    for example in dataset.as_numpy_iterator():
        value = example["text"] if isinstance(example, dict) else example
        parts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    return "".join(parts)


def load_tfds_text(source: Source, max_chars: int | None, val_fraction: float, *,
                   data_dir: str | None = None) -> Corpus:  # fmt: skip
    """A tfds text dataset with a ``text`` feature (``tiny_shakespeare``).

    Without a split in the spec, its ``train`` split trains and ``validation`` validates;
    with one (``tfds:tiny_shakespeare:test``), that split is cut at ``1 - val_fraction``. A
    dataset that is not downloaded fails at once when its host cannot be reached.
    """
    try:
        load_tfds(source, split=source.split or "train", download=False, data_dir=data_dir)
    except DataError:
        host = TFDS_HOSTS.get(source.name.split("/")[0].split(":")[0])
        if host is not None and not _network_reachable(host):
            raise DataError(
                f"--data: {source.spec} is not downloaded and {host} cannot be reached (offline); "
                "connect once, or give the text file itself, e.g. --data input.txt"
            ) from None
    if source.split:
        text = _tfds_text(source, source.split, True, data_dir)
        text = text[:max_chars] if max_chars is not None else text
        train, val = split_text(text, val_fraction)
    else:
        train = _tfds_text(source, "train", True, data_dir)
        val = _tfds_text(source, "validation", True, data_dir)
        if max_chars is not None:
            keep = max(1, round(max_chars * val_fraction))
            train, val = train[: max_chars - keep], val[:keep]
    return Corpus(
        train, val, f"{source.spec}: {len(train):,} train + {len(val):,} validation characters"
    )


def load_corpus(spec: str, *, encoding: str = "utf-8", max_chars: int | None = None,
                val_fraction: float = 0.1) -> Corpus:  # fmt: skip
    """Read ``--data SRC`` into training and validation text (see the module docstring).

    Raises:
        DataError: unknown source, unreadable or empty file, a byte that is not in ``encoding``
            (the message names its offset), an unreachable tfds dataset.
    """
    source = parse_source(spec, BUILTIN_DATA)
    if source.kind == "builtin":
        corpus = load_pysource(max_chars, val_fraction)
    elif source.kind == "path":
        corpus = load_text_file(source.path, encoding, max_chars, val_fraction)
    else:
        corpus = load_tfds_text(source, max_chars, val_fraction)
    if not corpus.train.strip():
        raise DataError(f"--data: {spec} has no training text (only blank characters)")
    return corpus


# ------------------------------------------------------------------- truncated BPTT
def min_chars(batch: int, bptt: int) -> int:
    """Characters needed for one batch of windows: ``batch * bptt`` inputs plus one target."""
    return batch * bptt + 1


def check_enough(n_chars: int, batch: int, bptt: int, what: str) -> None:
    """:class:`DataError` when ``n_chars`` cannot fill one window per stream."""
    need = min_chars(batch, bptt)
    if n_chars < need:
        raise DataError(
            f"--data: the {what} text has {n_chars:,} characters, fewer than one window x batch "
            f"(--bptt {bptt} x --batch-size {batch} + 1 = {need:,}); give more text or smaller "
            "--bptt / --batch-size"
        )


def stream_starts(n_tokens: int, batch: int, bptt: int) -> np.ndarray:
    """Start index of every window: ``starts[w, b] = b * L + w * bptt``.

    The ``n_tokens`` ids are cut into ``batch`` contiguous streams of ``L = (n_tokens - 1) //
    batch`` inputs each (the last id of a stream's inputs is followed by its target). Window
    ``w`` of stream ``b`` reads inputs ``ids[s : s + bptt]`` and targets ``ids[s + 1 : s + bptt
    + 1]`` with ``s = starts[w, b]``; there are ``L // bptt`` windows (a short tail is dropped).

    Returns:
        int64 ``(windows, batch)``; empty when one window does not fit.
    """
    if batch < 1 or bptt < 1:
        raise ValueError(f"batch and bptt must be >= 1. Received: batch={batch}, bptt={bptt}")
    stream_len = max(0, (n_tokens - 1) // batch)
    windows = stream_len // bptt
    return (np.arange(batch)[None, :] * stream_len + np.arange(windows)[:, None] * bptt).astype(
        np.int64
    )


def window_arrays(ids: np.ndarray, batch: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of every window, ``(windows, batch, bptt)`` each (see
    :func:`stream_starts`)."""
    ids = np.asarray(ids)
    starts = stream_starts(len(ids), batch, bptt)
    index = starts[:, :, None] + np.arange(bptt)[None, None, :]
    return ids[index], ids[index + 1]


def make_dataset(ids: np.ndarray, batch: int, bptt: int) -> Any:
    """A ``tf.data.Dataset`` of ``(inputs, targets)`` batches ``(batch, bptt)``, in window
    order (never shuffled: the state of a stateful RNN must flow from window to window)."""
    import tensorflow as tf

    x, y = window_arrays(ids, batch, bptt)
    return tf.data.Dataset.from_tensor_slices((x, y)).prefetch(tf.data.AUTOTUNE)


def describe_source(spec: str) -> str:
    """A short name for a ``--data`` value (for titles)."""
    return spec if len(spec) <= 40 else "…" + spec[-39:]
