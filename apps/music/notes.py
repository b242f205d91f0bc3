"""Notes and piano rolls: the two forms every music source is turned into.

A *note array* is float64 ``(N, 4)``: ``pitch`` (MIDI number), ``start`` and ``end`` (in quarter
notes from the beginning of the piece) and ``velocity`` (1..127). Sources with notes (music21
scores, MIDI files) give note arrays; piano-roll files give rolls directly.

A *roll* is uint8 ``(T, 88)``: frame ``t`` has key ``k`` (MIDI pitch ``21 + k``) on when that
pitch sounds during the frame. Turning notes into a roll loses re-articulation (two notes of the
same pitch back to back become one long note), as in the Boulanger-Lewandowski benchmarks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PITCH_LOW = 21  # A0, the lowest piano key
PITCH_HIGH = 108  # C8, the highest piano key
KEYS = PITCH_HIGH - PITCH_LOW + 1  # 88
DEFAULT_VELOCITY = 80
PITCH, START, END, VELOCITY = range(4)


@dataclasses.dataclass
class Piece:
    """One piece of music from a source.

    Attributes:
        name: where it came from (file name, corpus name, ``test[3]``).
        notes: the note array ``(N, 4)``, or ``None`` for a piece read as a roll.
        roll: the roll ``(T, 88)`` of a piece read as a roll, else ``None``.
    """

    name: str
    notes: np.ndarray | None = None
    roll: np.ndarray | None = None

    def to_roll(self, steps_per_quarter: int) -> np.ndarray:
        """The piece as a roll (notes are put on a grid of ``steps_per_quarter``)."""
        if self.roll is not None:
            return self.roll
        return notes_to_roll(self.notes, steps_per_quarter)


def empty_notes() -> np.ndarray:
    """A note array with no notes."""
    return np.zeros((0, 4), dtype=np.float64)


def make_notes(rows: list[tuple[float, float, float, float]] | np.ndarray) -> np.ndarray:
    """A note array from ``(pitch, start, end, velocity)`` rows, sorted by start then pitch.

    Notes with ``end <= start`` (zero length) are dropped.
    """
    notes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    notes = notes[notes[:, END] > notes[:, START]]
    order = np.lexsort((notes[:, PITCH], notes[:, START]))
    return notes[order]


def in_piano_range(notes: np.ndarray) -> np.ndarray:
    """The notes whose pitch is a piano key (21..108)."""
    keep = (notes[:, PITCH] >= PITCH_LOW) & (notes[:, PITCH] <= PITCH_HIGH)
    return notes[keep]


def notes_to_roll(
    notes: np.ndarray, steps_per_quarter: int, length: int | None = None
) -> np.ndarray:
    """Put notes on a grid: key on in frames ``round(start*s) .. round(end*s) - 1`` (>= 1 frame).

    Args:
        notes: a note array; pitches outside the piano are dropped.
        steps_per_quarter: frames per quarter note.
        length: frames of the result (default: up to the last note's end).

    Returns:
        uint8 ``(T, 88)``.

    Example:
        >>> notes_to_roll(make_notes([(60, 0, 1, 80)]), 2).shape
        (2, 88)
    """
    if steps_per_quarter < 1:
        raise ValueError(f"steps_per_quarter must be >= 1. Received: {steps_per_quarter}")
    notes = in_piano_range(np.asarray(notes, dtype=np.float64).reshape(-1, 4))
    starts = np.rint(notes[:, START] * steps_per_quarter).astype(np.int64)
    ends = np.maximum(starts + 1, np.rint(notes[:, END] * steps_per_quarter).astype(np.int64))
    total = int(ends.max()) if len(notes) else 0
    if length is None:
        length = total
    roll = np.zeros((length, KEYS), dtype=np.uint8)
    keys = notes[:, PITCH].astype(np.int64) - PITCH_LOW
    for key, s, e in zip(keys, starts, ends):
        if s < length:
            roll[s : min(e, length), key] = 1
    return roll


def roll_to_notes(
    roll: np.ndarray, steps_per_quarter: int, velocity: int = DEFAULT_VELOCITY
) -> np.ndarray:
    """Each run of consecutive on-frames of a key becomes one note.

    Args:
        roll: ``(T, 88)`` (any nonzero value is on).
        steps_per_quarter: frames per quarter note.
        velocity: velocity of every note.

    Returns:
        The note array (start/end in quarter notes), sorted by start then pitch.

    Example:
        >>> roll = np.zeros((4, 88)); roll[1:3, 39] = 1
        >>> roll_to_notes(roll, 2)   # middle C from quarter 0.5 to 1.5
        array([[60. ,  0.5,  1.5, 80. ]])
    """
    on = np.asarray(roll) != 0
    if on.ndim != 2 or on.shape[1] != KEYS:
        raise ValueError(f"roll must be (T, {KEYS}). Received: shape={on.shape}")
    padded = np.zeros((on.shape[0] + 2, KEYS), dtype=np.int8)
    padded[1:-1] = on
    change = np.diff(padded, axis=0)
    rows = []
    for key in range(KEYS):
        starts = np.flatnonzero(change[:, key] == 1)
        ends = np.flatnonzero(change[:, key] == -1)
        for s, e in zip(starts, ends):
            rows.append((PITCH_LOW + key, s / steps_per_quarter, e / steps_per_quarter, velocity))
    return make_notes(rows) if rows else empty_notes()


def pitch_sets_to_roll(steps: list, where: str) -> np.ndarray:
    """A roll from a list of time steps, each a list of sounding MIDI pitches.

    This is the JSON form of the Boulanger-Lewandowski benchmarks; ``-1`` marks a silent voice
    (the ``Jsb16thSeparated`` files) and is skipped.

    Raises:
        TypeError: a step that is not a list, or a pitch that is not an integer.
        ValueError: a pitch outside 21..108. Messages name ``where`` and the step.
    """
    if not isinstance(steps, list):
        raise TypeError(f"{where} must be a list of time steps, got {type(steps).__name__}")
    roll = np.zeros((len(steps), KEYS), dtype=np.uint8)
    for t, step in enumerate(steps):
        if not isinstance(step, list):
            raise TypeError(f"{where} step {t} must be a list of MIDI pitches, got {step!r:.40}")
        for pitch in step:
            if isinstance(pitch, float) and pitch.is_integer():
                pitch = int(pitch)
            if pitch == -1:
                continue
            if not isinstance(pitch, int) or isinstance(pitch, bool):
                raise TypeError(f"{where} step {t} has pitch {pitch!r}; pitches must be integers")
            if not PITCH_LOW <= pitch <= PITCH_HIGH:
                raise ValueError(
                    f"{where} step {t} has pitch {pitch!r}; pitches must be integers in "
                    f"{PITCH_LOW}..{PITCH_HIGH} (or -1 for silence)"
                )
            roll[t, pitch - PITCH_LOW] = 1
    return roll
