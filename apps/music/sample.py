"""Generating music through the one-step model, carrying the recurrent state.

Both representations loop over :func:`apps.music.model.build_step_model` (compiled once with
``tf.function``), so every step costs one small call and nothing is re-run:

- ``events``: the shared sampler :func:`apps.common.decoding.sample` (temperature, top-k) over
  a step function that adds the event grammar to the logits — after a step token only pitches,
  after a pitch only durations, ... — and forbids a pitch already sounding at the same onset
  (a chord holds each pitch once). That bookkeeping is one extra state array.
- ``roll``: every key is an independent Bernoulli, ``p = sigmoid(logit / temperature)``; the
  shared decoders sample one categorical token per step, so the roll has its own small loop.

A primer (a MIDI file) is fed through the same step function first; only its last
``context`` steps are used when it is longer than the model's training window.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import decoding
from apps.music.events import BOS, NEG, EventCodec
from apps.music.notes import KEYS, notes_to_roll


class StepRunner:
    """NumPy front of a one-step model: ``runner(inputs, states) -> (logits, states)``.

    Args:
        step_model: from :func:`apps.music.model.build_step_model`.
    """

    def __init__(self, step_model: Any) -> None:
        import tensorflow as tf

        self.step_model = step_model
        self.sizes = [int(t.shape[-1]) for t in step_model.inputs[1:]]
        self.input_dtype = np.int32 if "int" in str(step_model.inputs[0].dtype) else np.float32
        self._fn = tf.function(lambda inputs: step_model(inputs, training=False),
                               reduce_retracing=True)  # fmt: skip

    def initial_states(self, batch: int) -> list[np.ndarray]:
        """All-zero states for ``batch`` rows."""
        return [np.zeros((batch, s), dtype=np.float32) for s in self.sizes]

    def __call__(
        self, inputs: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        outs = self._fn([np.asarray(inputs, dtype=self.input_dtype), *states])
        outs = [np.asarray(o) for o in outs]
        return outs[0], outs[1:]

    def run(self, sequences: np.ndarray) -> np.ndarray:
        """Step through ``(B, T, ...)`` inputs from zero states: the logits ``(B, T, ...)``
        of every step (what the whole-sequence model gives, one step at a time)."""
        states = self.initial_states(len(sequences))
        steps = []
        for t in range(sequences.shape[1]):
            logits, states = self(sequences[:, t], states)
            steps.append(logits)
        return np.stack(steps, axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


@dataclasses.dataclass
class Generated:
    """A generated piece.

    Attributes:
        primer_steps: steps (roll frames or event tokens) taken from the primer.
        steps: the generated steps (frames ``(T, 88)`` or tokens).
        full: primer followed by the generated steps.
    """

    primer_steps: int
    steps: np.ndarray
    full: np.ndarray


# ----------------------------------------------------------------------------- roll
def generate_roll(
    runner: StepRunner,
    length: int,
    *,
    temperature: float = 1.0,
    rng: np.random.Generator | int | None = None,
    primer: np.ndarray | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Generated:
    """Sample ``length`` frames, one Bernoulli per key, after an optional primer roll.

    Args:
        runner: the roll model's one-step runner.
        length: frames to generate.
        temperature: > 0; logits are divided by it before the sigmoid.
        rng: generator or seed.
        primer: ``(P, 88)`` frames fed first (the generated frames continue it).
        on_step: called with the step index (progress).

    Returns:
        :class:`Generated` with uint8 frames.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    primer = np.zeros((0, KEYS), dtype=np.uint8) if primer is None else np.asarray(primer, np.uint8)
    states = runner.initial_states(1)
    frame = np.zeros((1, KEYS), dtype=np.float32)
    for row in primer:  # the state after the primer; the last primer frame is the next input
        _, states = runner(frame, states)
        frame = row[None].astype(np.float32)
    out = np.zeros((length, KEYS), dtype=np.uint8)
    for t in range(length):
        logits, states = runner(frame, states)
        probs = sigmoid(logits[0] / temperature)
        out[t] = rng.random(KEYS) < probs
        frame = out[t][None].astype(np.float32)
        if on_step is not None:
            on_step(t)
    return Generated(len(primer), out, np.concatenate([primer, out], axis=0))


# --------------------------------------------------------------------------- events
def event_step_fn(runner: StepRunner, codec: EventCodec) -> decoding.StepFn:
    """The step function for :func:`apps.common.decoding.sample`: model logits plus the event
    grammar, and no pitch twice at one onset.

    Its states are the model's states followed by a ``(B, 88)`` array of the pitches already
    started at the current onset (start it at zeros).
    """
    grammar = codec.grammar_mask()
    pitch_lo, pitch_hi = codec.ranges()["pitch"]
    step_lo = codec.step_offset

    def step(tokens: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        *model_states, onset = states
        onset = onset.copy()
        for i, token in enumerate(tokens):
            if step_lo < token < pitch_lo:  # a step > 0: a new onset
                onset[i] = 0
            elif pitch_lo <= token < pitch_hi:
                onset[i, token - pitch_lo] = 1
        logits, model_states = runner(tokens, model_states)
        logits = logits + grammar[tokens]
        logits[:, pitch_lo:pitch_hi] += np.where(onset > 0, NEG, 0.0)
        return logits, [*model_states, onset]

    return step


def generate_events(
    runner: StepRunner,
    codec: EventCodec,
    notes: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    rng: np.random.Generator | int | None = None,
    primer: np.ndarray | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Generated:
    """Sample ``notes`` notes (``notes * tokens_per_note`` tokens) after an optional primer.

    Args:
        runner: the events model's one-step runner.
        codec: the run's :class:`EventCodec`.
        notes: notes to generate.
        temperature, top_k, rng: as in :func:`apps.common.decoding.sample`.
        primer: tokens of whole notes to continue (``BOS`` first or not).
        on_step: called with the token index (progress).

    Returns:
        :class:`Generated` with int tokens (``full`` starts with ``BOS`` or the primer).
    """
    prefix = (
        np.array([BOS], dtype=np.int64)
        if primer is None or len(primer) == 0
        else np.asarray(primer, np.int64)
    )
    step = event_step_fn(runner, codec)
    states = [*runner.initial_states(1), np.zeros((1, KEYS), dtype=np.float32)]
    for token in prefix[:-1]:
        _, states = step(np.array([token]), states)
    out = decoding.sample(step, states, np.array([prefix[-1]]), notes * codec.tokens_per_note,
                          temperature=temperature, top_k=top_k, rng=rng,
                          on_token=(lambda i, _: on_step(i)) if on_step else None)[0]  # fmt: skip
    tokens = np.asarray(out, dtype=np.int64)
    return Generated(len(prefix), tokens, np.concatenate([prefix, tokens]))


# --------------------------------------------------------------------------- primers
def primer_roll(notes: np.ndarray, steps_per_quarter: int, context: int) -> tuple[np.ndarray, int]:
    """A primer's notes as a roll, cut to its last ``context`` frames.

    Returns:
        ``(frames, original length)``.
    """
    roll = notes_to_roll(notes, steps_per_quarter)
    return roll[-context:], len(roll)


def primer_tokens(notes: np.ndarray, codec: EventCodec, context: int) -> tuple[np.ndarray, int]:
    """A primer's notes as tokens, cut to its last whole notes within ``context`` tokens.

    Returns:
        ``(tokens, original token count)``; the tokens start with ``BOS`` unless cut.
    """
    tokens = codec.encode(notes)
    if len(tokens) <= context:
        return tokens, len(tokens)
    keep = max(1, context // codec.tokens_per_note) * codec.tokens_per_note
    return tokens[-keep:], len(tokens)


# ---------------------------------------------------------------------------- files
@dataclasses.dataclass
class SampleFiles:
    """The files of one generated sample and what they hold.

    Attributes:
        midi, png, wav: the written files.
        notes: notes in the MIDI file.
        quarters: its length in quarter notes.
        primer_steps: steps (frames or tokens) that came from the primer.
        generated_steps: steps generated (frames for ``roll``, notes for ``events``).
    """

    midi: Path
    png: Path
    wav: Path
    notes: int
    quarters: float
    primer_steps: int
    generated_steps: int


def next_sample_stem(folder: str | os.PathLike, prefix: str = "sample") -> str:
    """``sample_001``, ``sample_002``, ...: the first name none of whose files exist (earlier
    samples are never overwritten)."""
    folder = Path(folder)
    k = 1
    while any((folder / f"{prefix}_{k:03d}{ext}").exists() for ext in (".mid", ".png", ".wav")):
        k += 1
    return f"{prefix}_{k:03d}"


def save_sample(
    notes: np.ndarray,
    folder: str | os.PathLike,
    stem: str,
    *,
    tempo_bpm: float,
    end_quarters: float | None = None,
    title: str = "",
) -> tuple[Path, Path, Path]:
    """Write ``stem.mid``, ``stem.png`` (piano roll) and ``stem.wav`` (NumPy synthesiser)."""
    from apps.music.midi_io import write_midi
    from apps.music.render import piano_roll_png, synthesize, write_wav

    folder = Path(folder)
    midi = write_midi(notes, folder / f"{stem}.mid", tempo_bpm=tempo_bpm, end_quarters=end_quarters)
    png = piano_roll_png(notes, folder / f"{stem}.png", title=title, end_quarters=end_quarters)
    wav = write_wav(synthesize(notes, tempo_bpm=tempo_bpm, end_quarters=end_quarters),
                    folder / f"{stem}.wav")  # fmt: skip
    return midi, png, wav


def generate_samples(
    trained: Any,
    *,
    length: int,
    temperature: float = 1.0,
    seed: int = 0,
    count: int = 1,
    primer: np.ndarray | None = None,
    top_k: int | None = None,
    warn: Callable[[str], None] | None = None,
    quiet: bool = True,
    prefix: str = "sample",
) -> list[SampleFiles]:
    """Generate ``count`` pieces with a trained run and write them to ``DIR/samples/``.

    Args:
        trained: a :class:`apps.music.train.TrainedRun`.
        length: frames (``roll``) or notes (``events``) to generate after the primer.
        temperature: > 0.
        seed: sampling seed (sample ``k`` uses ``seed + k``).
        count: pieces to write.
        primer: note array of a primer to continue (its last ``seq_len`` steps are used).
        top_k: ``events`` only: sample among the ``k`` most likely tokens.
        warn: called with one line when the primer is cut to the model's context.
        quiet: no progress bar.
        prefix: file-name prefix.

    Returns:
        One :class:`SampleFiles` per piece; a piece's MIDI holds the primer then the
        generated music.
    """
    from apps.common.progress import Progress
    from apps.music.model import build_step_model
    from apps.music.notes import roll_to_notes

    config = trained.config
    runner = StepRunner(build_step_model(trained.model))
    spq = config.steps_per_quarter
    context = config.seq_len
    primer_steps = None
    if primer is not None:
        if config.representation == "roll":
            primer_steps, original = primer_roll(primer, spq, context)
            unit = "time steps"
        else:
            primer_steps, original = primer_tokens(primer, trained.codec, context)
            unit = "tokens"
        if original > len(primer_steps) and warn is not None:
            warn(f"the primer has {original} {unit}, more than the model's context of {context} "
                 f"(its training window); only its last {len(primer_steps)} are used")  # fmt: skip
    out = []
    folder = trained.run.samples
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        steps = length * (1 if config.representation == "roll" else trained.codec.tokens_per_note)
        with Progress(f"generating {k + 1}/{count}", total=steps, quiet=quiet) as bar:

            def tick(_: int, bar=bar) -> None:
                bar.update()

            if config.representation == "roll":
                result = generate_roll(runner, length, temperature=temperature, rng=seed + k,
                                       primer=primer_steps, on_step=tick)  # fmt: skip
                notes = roll_to_notes(result.full, spq)
                end = len(result.full) / spq
            else:
                result = generate_events(runner, trained.codec, length, temperature=temperature,
                                         top_k=top_k, rng=seed + k, primer=primer_steps,
                                         on_step=tick)  # fmt: skip
                notes = trained.codec.decode(result.full)
                end = float(notes[:, 2].max()) if len(notes) else 0.0
        stem = next_sample_stem(folder, prefix)
        title = f"{config.representation} {config.cell} — T={temperature:g}, seed {seed + k}"
        midi, png, wav = save_sample(notes, folder, stem, tempo_bpm=config.tempo_bpm,
                                     end_quarters=end, title=title)  # fmt: skip
        out.append(SampleFiles(midi, png, wav, len(notes), end, result.primer_steps, length))
    return out
