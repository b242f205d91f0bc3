"""Music sources (``--data``), train/valid/test splits, and the ``tf.data`` pipelines.

Sources:

- ``builtin:chorales`` — the Bach chorales of music21's corpus (:mod:`apps.music.chorales`,
  parsed once and cached);
- a folder of MIDI files (``.mid``/``.midi``, subfolders included), read with ``pretty_midi``.
  Empty, truncated, non-MIDI, too large (> 8 MB) or drum-only files are skipped with a warning
  naming each; the run goes on when at least 3 pieces remain, else it stops (exit 2);
- a piano-roll JSON or JSON.gz file in the Boulanger-Lewandowski form
  ``{"train": [[[pitches] per step] per piece], "valid": ..., "test": ...}`` (JSB Chorales,
  Nottingham, MuseData, Piano-midi.de). Pickle and MATLAB files are refused: pickles can run
  code, and every benchmark set exists as JSON.

Note sources are split into train/valid/test (80/10/10 by piece, seeded); roll files keep their
own published splits. Roll files have no note boundaries, so they serve ``--repr roll`` only.

Training windows (``seq_len`` steps) are padded per batch; every batch is
``(inputs, targets, weights)`` with weight 0 on padding, so losses average over real steps only.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError
from apps.common.sources import Source, parse_source
from apps.music.config import BUILTIN_DATA
from apps.music.events import EventCodec
from apps.music.midi_io import MidiError, midi_files, read_midi_notes
from apps.music.notes import KEYS, Piece, pitch_sets_to_roll

MIN_PIECES = 3
MAX_JSON_BYTES = 512 * 1024 * 1024  # uncompressed
SPLIT_KEYS = {"train": ("train",), "valid": ("valid", "validation", "val"), "test": ("test",)}
Warn = Callable[[str], None]


@dataclasses.dataclass
class MusicData:
    """A source's pieces, split.

    Attributes:
        train, valid, test: the pieces of each split.
        description: where the data came from, for the user.
        has_notes: whether the pieces are notes (else rolls: ``--repr roll`` only).
        skipped: ``(file, reason)`` for every file that could not be used.
    """

    train: list[Piece]
    valid: list[Piece]
    test: list[Piece]
    description: str
    has_notes: bool
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def split(self, name: str) -> list[Piece]:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


# --------------------------------------------------------------------------- sources
def split_pieces(
    pieces: Sequence[Piece], seed: int
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """Seeded 80/10/10 split by piece (at least one piece in each split)."""
    if len(pieces) < MIN_PIECES:
        raise DataError(f"--data: {len(pieces)} usable pieces; need at least {MIN_PIECES}")
    order = np.random.default_rng(seed).permutation(len(pieces))
    n_test = max(1, round(0.1 * len(pieces)))
    n_valid = max(1, round(0.1 * len(pieces)))
    test = [pieces[i] for i in order[:n_test]]
    valid = [pieces[i] for i in order[n_test : n_test + n_valid]]
    train = [pieces[i] for i in order[n_test + n_valid :]]
    return train, valid, test


def read_midi_folder(
    folder: str | os.PathLike,
    *,
    limit: int | None = None,
    warn: Warn | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Piece], list[tuple[str, str]]]:
    """Every usable MIDI file of ``folder`` as a piece; bad files are skipped and reported.

    Returns:
        ``(pieces, skipped)``; ``warn`` is called with one line per skipped file.

    Raises:
        DataError: the folder has no MIDI files, or none of them can be used.
    """
    folder = Path(folder)
    paths = midi_files(folder)
    if not paths:
        raise DataError(f"--data: no MIDI files (.mid, .midi) in {folder}")
    pieces, skipped = [], []
    for i, path in enumerate(paths):
        if limit is not None and len(pieces) >= limit:
            break
        try:
            pieces.append(Piece(str(path.relative_to(folder)), notes=read_midi_notes(path)))
        except MidiError as e:
            skipped.append((str(path), str(e)))
            if warn is not None:
                warn(f"skipped {path}: {e}")
        if on_progress is not None:
            on_progress(i + 1, len(paths))
    if not pieces:
        first = f" ({skipped[0][0]} {skipped[0][1]})" if skipped else ""
        raise DataError(
            f"--data: none of the {len(paths)} MIDI files in {folder} could be read{first}"
        )
    return pieces, skipped


def _read_json(path: Path) -> Any:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"--data: cannot read {path}: {e}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise DataError(f"--data: {path} is over {MAX_JSON_BYTES >> 20} MB of JSON")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(
            f"--data: {path} is not UTF-8 JSON (bad byte at offset {e.start})"
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(f"--data: {path} is not valid JSON: {e.msg} at line {e.lineno}") from None


def read_roll_json(
    path: str | os.PathLike, *, limit: int | None = None
) -> tuple[list[Piece], list[Piece], list[Piece]]:
    """The train/valid/test pieces of a Boulanger-Lewandowski piano-roll JSON(.gz) file.

    Args:
        path: the file: ``{"train"|"valid"|"test": [[[MIDI pitches] per step] per piece]}``.
        limit: at most this many pieces per split.

    Raises:
        DataError: unreadable file, missing split, or a malformed step or pitch (the message
            names the split, the piece and the step).
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"--data: {path} must hold a JSON object with train/valid/test splits")
    splits = []
    for split, names in SPLIT_KEYS.items():
        key = next((k for k in names if k in data), None)
        if key is None:
            raise DataError(
                f"--data: {path} has no '{split}' split (keys: {', '.join(map(str, data))})"
            )
        pieces = data[key]
        if not isinstance(pieces, list):
            raise DataError(f"--data: {path}: '{key}' must be a list of pieces")
        if limit is not None:
            pieces = pieces[:limit]
        out = []
        for i, steps in enumerate(pieces):
            try:
                roll = pitch_sets_to_roll(steps, f"{key}[{i}]")
            except (TypeError, ValueError) as e:
                raise DataError(f"--data: {path}: {e}") from None
            if len(roll):
                out.append(Piece(f"{key}[{i}]", roll=roll))
        if not out:
            raise DataError(f"--data: {path}: the '{key}' split has no pieces")
        splits.append(out)
    return splits[0], splits[1], splits[2]


def load_splits(
    spec: str,
    *,
    seed: int,
    limit: int | None = None,
    representation: str = "roll",
    warn: Warn | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> MusicData:
    """Read a ``--data`` source and split it.

    Args:
        spec: ``builtin:chorales``, a MIDI folder, or a piano-roll ``.json``/``.json.gz``.
        seed: split seed for note sources.
        limit: at most this many pieces (per split for a roll file).
        representation: ``roll`` or ``events`` (events need notes).
        warn: called with one line per skipped file.
        on_progress: ``(done, total)`` while parsing.

    Raises:
        DataError: anything wrong with the source, in one line naming ``--data``.
    """
    source = check_data_spec(spec, representation)
    skipped: list[tuple[str, str]] = []
    if source.kind == "builtin":
        from apps.music.chorales import load_chorales

        pieces, description, skipped = load_chorales(limit, on_progress=on_progress)
        for name, reason in skipped:
            if warn is not None:
                warn(f"skipped chorale {name}: {reason}")
        return MusicData(*split_pieces(pieces, seed), description, True, skipped)
    path = source.path
    if path.is_dir():
        pieces, skipped = read_midi_folder(path, limit=limit, warn=warn, on_progress=on_progress)
        if len(pieces) < MIN_PIECES:
            raise DataError(f"--data: only {len(pieces)} usable MIDI files in {path} "
                            f"({len(skipped)} skipped); need at least {MIN_PIECES}")  # fmt: skip
        notes = sum(len(p.notes) for p in pieces)
        description = (f"{path} — {len(pieces)} MIDI files, {notes:,} notes, read with pretty_midi"
                       + (f" ({len(skipped)} skipped)" if skipped else ""))  # fmt: skip
        return MusicData(*split_pieces(pieces, seed), description, True, skipped)
    train, valid, test = read_roll_json(path, limit=limit)
    steps = sum(len(p.roll) for p in train + valid + test)
    description = (f"{path} — piano rolls, {len(train)}/{len(valid)}/{len(test)} "
                   f"train/valid/test pieces, {steps:,} time steps")  # fmt: skip
    return MusicData(train, valid, test, description, False)


def check_data_spec(spec: str, representation: str = "roll") -> Source:
    """Pure-Python checks of a ``--data`` value before anything is read or written.

    Raises:
        DataError: an unknown builtin (with a word on Nottingham), a tfds source, a missing
            path, a pickle/MATLAB/single MIDI file, an unknown format, or a piano roll given to
            ``--repr events``.
    """
    if isinstance(spec, str) and spec.strip() == "builtin:nottingham":
        raise DataError("--data: music21's corpus holds only 2 tunes of the Nottingham set, so "
                        "there is no builtin:nottingham; give the piano-roll file "
                        "Nottingham.json.gz (Boulanger-Lewandowski splits) instead")  # fmt: skip
    source = parse_source(spec, BUILTIN_DATA)
    if source.kind == "tfds":
        raise DataError("--data: the music app reads no tfds datasets; give builtin:chorales, a "
                        "MIDI folder or a piano-roll JSON")  # fmt: skip
    if source.kind == "builtin" or source.path.is_dir():
        return source
    path = source.path
    name = path.name.lower()
    if name.endswith((".pkl", ".pickle", ".pkl.gz", ".npz", ".npy")):
        raise DataError(f"--data: {path}: pickle/NumPy files are not read (a pickle can run code); "
                        "give the JSON(.gz) form of the piano rolls")  # fmt: skip
    if name.endswith(".mat"):
        raise DataError(f"--data: {path}: MATLAB files are not read; give the JSON(.gz) form "
                        "(e.g. Nottingham.json.gz, or jsb_chorales/jsb-chorales-quarter.json)")  # fmt: skip
    if name.endswith((".mid", ".midi")):
        raise DataError(
            f"--data: {path} is one MIDI file; give the folder of MIDI files to learn from"
        )
    if not name.endswith((".json", ".json.gz")):
        raise DataError(f"--data: {path}: unknown format; give builtin:chorales, a folder of MIDI "
                        "files or a piano-roll .json/.json.gz")  # fmt: skip
    if representation == "events":
        raise DataError(f"--data: {path} is a piano roll (no note boundaries); --repr events "
                        "needs notes: builtin:chorales or a folder of MIDI files")  # fmt: skip
    return source


# --------------------------------------------------------------------------- encoding
def roll_sequence(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` of a whole roll: the inputs are the frames shifted right by one
    behind an all-off start frame, so every frame (the first included) is predicted."""
    inputs = np.concatenate([np.zeros((1, KEYS), dtype=roll.dtype), roll[:-1]], axis=0)
    return inputs, roll


def token_sequence(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` of a token sequence that starts with ``BOS``."""
    return tokens[:-1], tokens[1:]


def windows(
    inputs: np.ndarray, targets: np.ndarray, seq_len: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive ``seq_len``-step windows (the last one shorter)."""
    return [
        (inputs[i : i + seq_len], targets[i : i + seq_len]) for i in range(0, len(inputs), seq_len)
    ]


def encode_pieces(
    pieces: Sequence[Piece],
    representation: str,
    *,
    steps_per_quarter: int,
    codec: EventCodec | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every piece as a whole ``(inputs, targets)`` sequence (pieces too short are left out)."""
    out = []
    for piece in pieces:
        if representation == "roll":
            roll = piece.to_roll(steps_per_quarter)
            if len(roll):
                out.append(roll_sequence(roll))
        else:
            if piece.notes is None or codec is None:
                raise DataError(f"--repr events needs notes; {piece.name} is a piano roll")
            tokens = codec.encode(piece.notes)
            if len(tokens) >= 2:
                out.append(token_sequence(tokens))
    return out


def make_dataset(
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
    representation: str,
    *,
    seq_len: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    transpose: int = 0,
) -> Any:
    """A ``tf.data.Dataset`` of ``(inputs, targets, weights)`` batches of ``seq_len`` windows.

    Roll inputs/targets are float32 ``(B, T, 88)``; event inputs/targets int32 ``(B, T)``;
    weights float32 ``(B, T)``, 0 on the padding of the batch's shorter windows. With
    ``transpose=K`` (rolls), every window is shifted by its own random number of semitones in
    ``[-K, K]`` (:func:`transpose_window`), drawn again every epoch from a seeded stream.
    """
    import tensorflow as tf

    chunks = [w for x, y in sequences for w in windows(x, y, seq_len)]
    if not chunks:
        raise DataError("--data: no music left to train on after encoding")
    lengths = np.array([len(x) for x, _ in chunks], dtype=np.int64)
    xs = tf.RaggedTensor.from_row_lengths(np.concatenate([x for x, _ in chunks]), lengths)
    ys = tf.RaggedTensor.from_row_lengths(np.concatenate([y for _, y in chunks]), lengths)
    ds = tf.data.Dataset.from_tensor_slices((xs, ys))
    if shuffle:
        ds = ds.shuffle(len(chunks), seed=seed, reshuffle_each_iteration=True)
    dtype = tf.float32 if representation == "roll" else tf.int32

    def prepare(x, y):
        if isinstance(x, tf.RaggedTensor):
            x, y = x.to_tensor(), y.to_tensor()
        weight = tf.ones(tf.shape(x)[:1], tf.float32)
        return tf.cast(x, dtype), tf.cast(y, dtype), weight

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if transpose and representation == "roll":
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, draws)).map(
            lambda example, draw: transpose_window(*example, draw, transpose),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def transpose_window(x: Any, y: Any, weight: Any, draw: Any, limit: int) -> tuple[Any, Any, Any]:
    """Shift a roll window ``x``/``y`` ``(T, 88)`` by ``s`` semitones along the keys.

    ``s`` is ``draw`` (a random int64) mapped uniformly onto the shifts in ``[-limit, limit]``
    that keep every sounding key of ``x`` and ``y`` on the keyboard, so no note is lost or
    wrapped around; a silent window is left as is.
    """
    import tensorflow as tf

    sounding = tf.where(tf.reduce_max(tf.maximum(x, y), axis=0) > 0)[:, 0]
    low = tf.reduce_min(tf.concat([sounding, [KEYS - 1]], 0))
    high = tf.reduce_max(tf.concat([sounding, [0]], 0))
    down = tf.minimum(tf.cast(limit, tf.int64), low)
    up = tf.maximum(tf.minimum(tf.cast(limit, tf.int64), KEYS - 1 - high), 0)
    choices = down + up + 1
    shift = tf.math.floormod(draw, choices) - down
    shift = tf.where(tf.size(sounding) > 0, shift, tf.zeros_like(shift))
    return tf.roll(x, shift, axis=1), tf.roll(y, shift, axis=1), weight


def count_steps(sequences: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
    """Predicted time steps (or tokens) in ``sequences``."""
    return int(sum(len(y) for _, y in sequences))
