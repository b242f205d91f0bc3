"""Note events: each note as (step, pitch, duration[, velocity]) tokens of one vocabulary.

A piece becomes ``BOS`` followed by one group of tokens per note, notes in onset order (pitches
of a chord from low to high)::

    BOS  step pitch duration [velocity]  step pitch duration [velocity]  ...

- ``step``: ticks from the previous note's onset to this one (0 = same onset, a chord),
  ``0..max_step`` (longer rests are clipped);
- ``pitch``: one of the 88 piano keys;
- ``duration``: ticks the note lasts, ``1..max_duration`` (clipped; never 0);
- ``velocity`` (when ``velocity_bins > 0``): the loudness class.

Why quantised categoricals for timing rather than positive regressions: music's timing lives on
a metric grid and its distribution is multi-modal (the next onset is *either* now, for a chord,
*or* an eighth later, ...). A softmax over grid steps represents that exactly and can be sampled
with a temperature; a regression (mean squared error) would predict the average of the modes —
an off-grid time no musician plays. One vocabulary with the step first also lets the model pick
the pitch knowing whether the note starts a new onset or joins a chord, and the duration knowing
the pitch: each note is predicted autoregressively, token by token, by the same
``(token, state) -> (logits, state)`` step that the shared decoders (:mod:`apps.common.decoding`)
and the exported one-step model use. The grammar (step, pitch, duration, velocity, step, ...)
is enforced while sampling by masking the tokens of the wrong kind.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from apps.music.notes import (
    DEFAULT_VELOCITY,
    END,
    KEYS,
    PITCH,
    PITCH_LOW,
    START,
    VELOCITY,
    empty_notes,  # fmt: skip
    in_piano_range,
    make_notes,
)

PAD, BOS = 0, 1
NEG = -1e9  # logit given to tokens the grammar forbids


@dataclasses.dataclass(frozen=True)
class EventCodec:
    """Turns note arrays into event tokens and back.

    Args:
        ticks_per_quarter: timing grid (4 = sixteenth notes).
        max_step: longest step in ticks.
        max_duration: longest duration in ticks.
        velocity_bins: number of velocity classes (0: no velocity tokens).

    Example:
        >>> codec = EventCodec(ticks_per_quarter=4, max_step=8, max_duration=8)
        >>> codec.encode(make_notes([(60, 0, 1, 80), (64, 0, 0.5, 80)])).tolist()
        [1, 2, 50, 102, 2, 54, 100]
    """

    ticks_per_quarter: int = 4
    max_step: int = 16
    max_duration: int = 16
    velocity_bins: int = 0

    def __post_init__(self) -> None:
        for name, low in (("ticks_per_quarter", 1), ("max_step", 1), ("max_duration", 1),
                          ("velocity_bins", 0)):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")

    # ------------------------------------------------------------------ layout
    @property
    def step_offset(self) -> int:
        return 2

    @property
    def pitch_offset(self) -> int:
        return self.step_offset + self.max_step + 1

    @property
    def duration_offset(self) -> int:
        return self.pitch_offset + KEYS

    @property
    def velocity_offset(self) -> int:
        return self.duration_offset + self.max_duration

    @property
    def vocab_size(self) -> int:
        return self.velocity_offset + self.velocity_bins

    @property
    def tokens_per_note(self) -> int:
        return 4 if self.velocity_bins else 3

    def ranges(self) -> dict[str, tuple[int, int]]:
        """``{kind: (first id, last id + 1)}`` for step, pitch, duration (and velocity)."""
        out = {
            "step": (self.step_offset, self.pitch_offset),
            "pitch": (self.pitch_offset, self.duration_offset),
            "duration": (self.duration_offset, self.velocity_offset),
        }
        if self.velocity_bins:
            out["velocity"] = (self.velocity_offset, self.vocab_size)
        return out

    def kind_of(self, token: int) -> str:
        """``pad``, ``bos``, ``step``, ``pitch``, ``duration`` or ``velocity``."""
        if token == PAD:
            return "pad"
        if token == BOS:
            return "bos"
        for kind, (lo, hi) in self.ranges().items():
            if lo <= token < hi:
                return kind
        raise ValueError(f"token {token} is outside the vocabulary of {self.vocab_size}")

    def next_kind(self, token: int) -> str:
        """The kind of token that must follow ``token`` in the grammar."""
        kind = self.kind_of(token)
        if kind in ("bos", "pad", "velocity"):
            return "step"
        if kind == "step":
            return "pitch"
        if kind == "pitch":
            return "duration"
        return "velocity" if self.velocity_bins else "step"

    def grammar_mask(self) -> np.ndarray:
        """``(vocab, vocab)`` additive logit mask: row ``t`` is 0 for the tokens allowed after
        token ``t`` and ``-1e9`` elsewhere."""
        mask = np.full((self.vocab_size, self.vocab_size), NEG, dtype=np.float32)
        ranges = self.ranges()
        for token in range(self.vocab_size):
            lo, hi = ranges[self.next_kind(token)]
            mask[token, lo:hi] = 0.0
        return mask

    def velocity_value(self, cls: int) -> int:
        """The velocity written for class ``cls`` (the middle of its range)."""
        width = 127 / self.velocity_bins
        return round(1 + (cls + 0.5) * width - 0.5)

    # ------------------------------------------------------------------ coding
    def encode(self, notes: np.ndarray) -> np.ndarray:
        """``BOS`` + tokens of every piano-range note (int32). Notes with the same onset tick
        and pitch are kept once."""
        notes = in_piano_range(np.asarray(notes, dtype=np.float64).reshape(-1, 4))
        tpq = self.ticks_per_quarter
        starts = np.rint(notes[:, START] * tpq).astype(np.int64)
        ends = np.rint(notes[:, END] * tpq).astype(np.int64)
        pitches = notes[:, PITCH].astype(np.int64)
        order = np.lexsort((pitches, starts))
        tokens = [BOS]
        seen: set[tuple[int, int]] = set()
        previous = 0
        for i in order:
            key = (int(starts[i]), int(pitches[i]))
            if key in seen:
                continue
            seen.add(key)
            step = min(max(int(starts[i]) - previous, 0), self.max_step)
            previous = int(starts[i])
            duration = min(max(int(ends[i] - starts[i]), 1), self.max_duration)
            tokens += [self.step_offset + step, self.pitch_offset + int(pitches[i]) - PITCH_LOW,
                       self.duration_offset + duration - 1]  # fmt: skip
            if self.velocity_bins:
                cls = int(np.clip((notes[i, VELOCITY] - 1) * self.velocity_bins // 127, 0,
                                  self.velocity_bins - 1))  # fmt: skip
                tokens.append(self.velocity_offset + cls)
        return np.asarray(tokens, dtype=np.int32)

    def decode(self, tokens: Any) -> np.ndarray:
        """The note array of a token sequence (times in quarter notes).

        Reads ``step pitch duration [velocity]`` groups; ``BOS``/``PAD`` are skipped, and a
        group broken by a token of the wrong kind, or left incomplete at the end, is dropped.
        """
        rows = []
        time = 0
        expect = "step"
        pitch = duration = 0
        for token in (int(t) for t in np.asarray(tokens).reshape(-1)):
            kind = self.kind_of(token)
            if kind in ("pad", "bos"):
                continue
            if kind != expect:  # resynchronise on the next step token
                expect = "step"
                if kind != "step":
                    continue
            if kind == "step":
                time += token - self.step_offset
                expect = "pitch"
            elif kind == "pitch":
                pitch = PITCH_LOW + token - self.pitch_offset
                expect = "duration"
            elif kind == "duration":
                duration = token - self.duration_offset + 1
                if self.velocity_bins:
                    expect = "velocity"
                else:
                    rows.append(self._row(pitch, time, duration, DEFAULT_VELOCITY))
                    expect = "step"
            else:
                velocity = self.velocity_value(token - self.velocity_offset)
                rows.append(self._row(pitch, time, duration, velocity))
                expect = "step"
        return make_notes(rows) if rows else empty_notes()

    def _row(self, pitch: int, start: int, duration: int, velocity: int) -> tuple:
        tpq = self.ticks_per_quarter
        return (pitch, start / tpq, (start + duration) / tpq, velocity)

    # ------------------------------------------------------------------- config
    def to_dict(self) -> dict[str, Any]:
        """The codec and its token layout, for ``vocab.json``."""
        return {
            "ticks_per_quarter": self.ticks_per_quarter,
            "max_step": self.max_step,
            "max_duration": self.max_duration,
            "velocity_bins": self.velocity_bins,
            "vocab_size": self.vocab_size,
            "pad": PAD,
            "bos": BOS,
            "ranges": {k: list(v) for k, v in self.ranges().items()},
            "meaning": {
                "step": "ticks since the previous onset = id - first id",
                "pitch": f"MIDI pitch = {PITCH_LOW} + id - first id",
                "duration": "ticks = id - first id + 1",
                "velocity": "class = id - first id (velocity = middle of its 127/bins range)",
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventCodec:
        return cls(int(data["ticks_per_quarter"]), int(data["max_step"]),
                   int(data["max_duration"]), int(data["velocity_bins"]))  # fmt: skip
