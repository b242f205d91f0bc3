"""Hearing and seeing a piece: a WAV rendering and a piano-roll PNG.

The WAV comes from a plain additive synthesiser written in NumPy (no SoundFont, no FluidSynth):
each note is a sum of four harmonics (amplitudes 1, 1/2, 1/4, 1/8) under a short linear attack,
an exponential decay and a linear release, loudness following velocity; the mix is normalised
and written as 16-bit mono PCM with the standard-library ``wave`` module.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from apps.common.rundir import atomic_output
from apps.music.notes import END, KEYS, PITCH, PITCH_LOW, START, VELOCITY, notes_to_roll

SAMPLE_RATE = 22050
HARMONICS = (1.0, 0.5, 0.25, 0.125)
ATTACK_S, RELEASE_S, DECAY_PER_S = 0.01, 0.08, 2.5
MAX_WAV_SECONDS = 600.0


def synthesize(
    notes: np.ndarray,
    *,
    tempo_bpm: float,
    sample_rate: int = SAMPLE_RATE,
    end_quarters: float | None = None,
) -> np.ndarray:
    """Render a note array to float32 samples in ``[-1, 1]`` (additive synthesis).

    Args:
        notes: ``(N, 4)`` pitch, start, end (quarter notes), velocity.
        tempo_bpm: quarter notes per minute.
        sample_rate: samples per second.
        end_quarters: length of the piece (default: the last note's end), plus the release.

    Returns:
        float32 ``(samples,)``; at most ``MAX_WAV_SECONDS`` long (later notes are cut).
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    seconds_per_quarter = 60.0 / float(tempo_bpm)
    last = float(notes[:, END].max()) if len(notes) else 0.0
    total_s = min(max(last, end_quarters or 0.0) * seconds_per_quarter + RELEASE_S, MAX_WAV_SECONDS)
    out = np.zeros(int(np.ceil(total_s * sample_rate)) + 1, dtype=np.float64)
    release = int(RELEASE_S * sample_rate)
    attack = max(1, int(ATTACK_S * sample_rate))
    for row in notes:
        begin = int(row[START] * seconds_per_quarter * sample_rate)
        held = int((row[END] - row[START]) * seconds_per_quarter * sample_rate)
        if begin >= len(out) or held <= 0:
            continue
        n = min(held + release, len(out) - begin)
        t = np.arange(n) / sample_rate
        freq = 440.0 * 2.0 ** ((row[PITCH] - 69) / 12.0)
        tone = sum(a * np.sin(2 * np.pi * freq * (h + 1) * t)
                   for h, a in enumerate(HARMONICS) if freq * (h + 1) < sample_rate / 2)  # fmt: skip
        envelope = np.exp(-DECAY_PER_S * t)
        envelope[: min(attack, n)] *= np.linspace(0.0, 1.0, min(attack, n), endpoint=False)
        if n > held:  # release after the key is let go
            envelope[held:] *= np.linspace(1.0, 0.0, n - held)
        out[begin : begin + n] += (row[VELOCITY] / 127.0) * tone * envelope
    peak = np.abs(out).max()
    if peak > 0:
        out *= 0.8 / peak
    return out.astype(np.float32)


def write_wav(
    samples: np.ndarray, path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE
) -> Path:
    """Write float samples in ``[-1, 1]`` as 16-bit mono PCM WAV, atomically."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    path = Path(path)
    with atomic_output(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def piano_roll_png(
    notes: np.ndarray,
    path: str | os.PathLike,
    *,
    steps_per_quarter: int = 4,
    title: str = "",
    end_quarters: float | None = None,
) -> Path:
    """Draw a piece as a piano roll (time across, pitch up), atomically; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    length = None
    if end_quarters is not None:
        length = max(1, int(np.ceil(end_quarters * steps_per_quarter)))
    roll = notes_to_roll(notes, steps_per_quarter, length)
    if len(roll) == 0:
        roll = np.zeros((1, KEYS), dtype=np.uint8)
    keys = np.flatnonzero(roll.any(axis=0))
    low, high = (int(keys.min()) - 3, int(keys.max()) + 4) if len(keys) else (27, 60)
    low, high = max(0, low), min(KEYS, high)
    fig = Figure(figsize=(min(14.0, 3.0 + len(roll) / 40), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(roll[:, low:high].T, aspect="auto", origin="lower", cmap="Greys",
              interpolation="nearest", extent=(0, len(roll) / steps_per_quarter, low - 0.5, high - 0.5))  # fmt: skip
    c_keys = [k for k in range(low, high) if (k + PITCH_LOW) % 12 == 0]
    ax.set_yticks(c_keys, labels=[f"C{(k + PITCH_LOW) // 12 - 1}" for k in c_keys])
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("pitch")
    ax.grid(axis="y", alpha=0.25)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
