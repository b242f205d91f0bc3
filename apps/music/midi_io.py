"""Reading and writing standard MIDI files (with ``pretty_midi``), with checks for bad files.

Times are converted to quarter notes through the file's own tick grid
(``time_to_tick / resolution``), so tempo changes do not distort the rhythm. Drum tracks are
ignored. Every problem a user can fix is a :class:`MidiError` whose message completes the
sentence "FILE ...": ``is empty (0 bytes)``, ``is not a MIDI file``, ``has no pitched notes
(only drums)``, ...
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from apps.common.errors import DataError
from apps.common.rundir import atomic_output
from apps.music.notes import DEFAULT_VELOCITY, END, PITCH, START, VELOCITY, make_notes

MAX_MIDI_BYTES = 8 * 1024 * 1024  # the largest piano MIDI files are well under 1 MB
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
ALL_NOTES_OFF = 123  # MIDI controller written at the end of a file to mark its length


class MidiError(DataError):
    """A MIDI file that cannot be used; the message says why, without the file name."""


def midi_files(folder: str | os.PathLike) -> list[Path]:
    """The MIDI files in ``folder`` and its subfolders (by suffix), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def check_midi_file(path: str | os.PathLike, *, max_bytes: int = MAX_MIDI_BYTES) -> None:
    """Cheap checks before parsing: readable, not empty, not too large, starts like a MIDI file.

    Raises:
        MidiError: the reason, e.g. ``is 50.0 MB, over the 8 MB limit for one MIDI file``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except IsADirectoryError:
        raise MidiError("is a folder, not a MIDI file") from None
    except OSError as e:
        raise MidiError(f"cannot be read ({e.strerror})") from None
    if size == 0:
        raise MidiError("is empty (0 bytes)")
    if size > max_bytes:
        raise MidiError(
            f"is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit for one MIDI file "
            "(split it, or give a smaller one)"
        )
    if head != b"MThd":
        raise MidiError("is not a MIDI file (it does not start with the 'MThd' header)")


def read_midi_notes(path: str | os.PathLike, *, max_bytes: int = MAX_MIDI_BYTES) -> np.ndarray:
    """The pitched notes of a MIDI file as a note array (times in quarter notes).

    Args:
        path: a standard MIDI file.
        max_bytes: files larger than this are refused.

    Returns:
        float64 ``(N, 4)``: pitch, start, end, velocity; sorted by start then pitch.

    Raises:
        MidiError: empty, too large, not MIDI, truncated or corrupt, or without pitched notes.
    """
    import pretty_midi

    check_midi_file(path, max_bytes=max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "tempo changes on non-zero tracks"
            midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # noqa: BLE001 - mido/pretty_midi raise many types for bad files
        detail = " ".join(str(e).split())[:120] or type(e).__name__
        raise MidiError(f"is truncated or corrupt ({type(e).__name__}: {detail})") from None
    rows, drums = [], 0
    resolution = float(midi.resolution)
    for instrument in midi.instruments:
        if instrument.is_drum:
            drums += len(instrument.notes)
            continue
        for note in instrument.notes:
            start = midi.time_to_tick(note.start) / resolution
            end = midi.time_to_tick(note.end) / resolution
            rows.append((note.pitch, start, end, note.velocity))
    notes = make_notes(rows) if rows else np.zeros((0, 4))
    if len(notes) == 0:
        if drums:
            raise MidiError(f"has no pitched notes (only {drums} drum notes)")
        raise MidiError("has no notes")
    return notes


def _no_same_pitch_overlap(notes: np.ndarray) -> np.ndarray:
    """Cut a note short where the next note of the same pitch starts (MIDI has one key per
    pitch: readers would otherwise end both notes at the first note-off); drops duplicates."""
    notes = make_notes(notes) if len(notes) else notes
    out = notes.copy()
    keep = np.ones(len(out), dtype=bool)
    last: dict[int, int] = {}
    for i, row in enumerate(out):
        pitch = int(row[PITCH])
        j = last.get(pitch)
        if j is not None and out[j, END] > row[START]:
            if out[j, START] >= row[START]:  # same onset: keep the longer one
                out[j, END] = max(out[j, END], row[END])
                keep[i] = False
                continue
            out[j, END] = row[START]
        last[pitch] = i
    return out[keep]


def write_midi(
    notes: np.ndarray,
    path: str | os.PathLike,
    *,
    tempo_bpm: float,
    end_quarters: float | None = None,
    program: int = 0,
) -> Path:
    """Write a note array as a one-track MIDI file (piano by default), atomically.

    Args:
        notes: ``(N, 4)`` pitch, start, end (quarter notes), velocity.
        path: the ``.mid`` file to write.
        tempo_bpm: quarter notes per minute.
        end_quarters: length of the piece; an "all notes off" controller is written there so
            readers see the full length even when the piece ends in silence.
        program: General MIDI program (0 = acoustic grand piano).

    Returns:
        ``path``.
    """
    import pretty_midi

    notes = _no_same_pitch_overlap(np.asarray(notes, dtype=np.float64).reshape(-1, 4))
    seconds = 60.0 / float(tempo_bpm)
    midi = pretty_midi.PrettyMIDI(initial_tempo=float(tempo_bpm))
    piano = pretty_midi.Instrument(program=program, name="rnnsuite")
    for row in notes:
        velocity = int(
            np.clip(round(row[VELOCITY]) if row[VELOCITY] > 0 else DEFAULT_VELOCITY, 1, 127)
        )
        piano.notes.append(
            pretty_midi.Note(velocity=velocity, pitch=int(row[PITCH]),
                             start=float(row[START]) * seconds, end=float(row[END]) * seconds)
        )  # fmt: skip
    last = float(notes[:, END].max()) if len(notes) else 0.0
    end = max(last, float(end_quarters or 0.0))
    if end > 0:
        piano.control_changes.append(pretty_midi.ControlChange(ALL_NOTES_OFF, 0, end * seconds))
    midi.instruments.append(piano)
    path = Path(path)
    with atomic_output(path) as tmp:
        midi.write(str(tmp))
    return path
