"""Configuration of the music app: one typed, frozen dataclass with three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (a GRU piano-roll model on all the
Bach chorales shipped with music21, a few minutes on two CPU cores), ``base`` is a longer run.
"""

from __future__ import annotations

import dataclasses

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

BUILTIN_DATA = ("chorales",)
REPRESENTATIONS = ("roll", "events")
CELL_CHOICES = ("vanilla", "lstm", "gru", "mut1", "mut2", "mut3", "genotype:PATH.json")


@dataclasses.dataclass(frozen=True)
class MusicConfig(AppConfig):
    """Everything needed to rebuild a music model and its preprocessing.

    Args:
        data: ``--data`` source: ``builtin:chorales`` (the Bach chorales of music21's corpus),
            a folder of MIDI files, or a Boulanger-Lewandowski piano-roll JSON(.gz) with
            ``train``/``valid``/``test`` splits (JSB Chorales, Nottingham, MuseData,
            Piano-midi.de).
        representation: ``roll`` (88-key multi-hot frames, independent sigmoids) or ``events``
            (each note as step, pitch, duration[, velocity] tokens).
        cell: recurrent cell: ``vanilla``, ``lstm``, ``gru``, ``mut1..3`` or
            ``genotype:PATH.json`` (see :mod:`apps.common.cells`).
        units: hidden size of each recurrent layer.
        layers: number of stacked recurrent layers.
        embedding_dim: token-embedding width (``events`` only).
        dropout: dropout rate after each recurrent layer.
        seq_len: training window in time steps (``roll``) or tokens (``events``); also the
            longest primer used by ``generate`` (the model's context).
        steps_per_quarter: roll frames per quarter note when notes are turned into a roll, and
            the grid assumed for a roll file when writing MIDI (JSB ``quarter`` files: 1).
        ticks_per_quarter: timing grid of ``events`` (4 = sixteenth notes).
        max_step_ticks: longest onset-to-onset step of ``events`` (longer ones are clipped).
        max_duration_ticks: longest note of ``events`` (longer ones are clipped).
        velocity_bins: ``events`` velocity classes (0: no velocity token, all notes at 80).
        limit: use at most this many pieces (``None``: all).
        tempo_bpm: tempo of written MIDI and WAV files (quarter notes per minute).
        epochs: training epochs.
        batch_size: windows per batch.
        learning_rate: Adam learning rate.
        grad_clip: gradient norm clipping (``None``: off).
        weight_noise: standard deviation of Gaussian noise added to every weight for each
            training step (Graves 2011; :class:`apps.common.training.WeightNoise`); 0: off.
        transpose: ``roll`` only: shift each training window by a random whole number of
            semitones in ``[-transpose, transpose]`` (drawn anew every epoch, limited so that
            no note leaves the 88 keys) — the same music in another key; 0: off. Validation
            and test windows are never shifted.
        patience: stop when the validation loss has not improved for this many epochs, and
            halve the learning rate after a third of them (``None``: train every epoch at one
            rate; the best epoch's model is kept either way).
        seed: seed for splits, shuffling and weights.
        members: an ensemble's member run dirs (made by the ``ensemble`` verb, ``cell``
            ``"ensemble"``: the members' key probabilities are averaged, see
            :mod:`apps.music.ensemble`); empty for a trained model. An ensemble's ``units`` is
            the members' units together and ``layers`` their deepest stack; its other keys are
            the first member's.
    """

    data: str = "builtin:chorales"
    representation: str = "roll"
    cell: str = "gru"
    units: int = 160
    layers: int = 1
    embedding_dim: int = 64
    dropout: float = 0.3
    seq_len: int = 128
    steps_per_quarter: int = 2
    ticks_per_quarter: int = 4
    max_step_ticks: int = 16
    max_duration_ticks: int = 16
    velocity_bins: int = 0
    limit: int | None = None
    tempo_bpm: float = 96.0
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 3e-3
    grad_clip: float | None = 1.0
    weight_noise: float = 0.0
    transpose: int = 0
    patience: int | None = None
    seed: int = 1234
    members: tuple[str, ...] = ()

    @classmethod
    def tiny(cls) -> MusicConfig:
        """Seconds: two dozen pieces, one epoch, 16 units."""
        return cls(limit=24, units=16, embedding_dim=8, seq_len=32, epochs=1, batch_size=8,
                   learning_rate=1e-2, dropout=0.0)  # fmt: skip

    @classmethod
    def small(cls) -> MusicConfig:
        """The main job: a GRU piano roll on all builtin chorales, minutes on two cores."""
        return cls()

    @classmethod
    def base(cls) -> MusicConfig:
        """A longer run: more units, more epochs."""
        return cls(units=256, epochs=80, learning_rate=1e-3, dropout=0.4, seq_len=256)

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("representation", self.representation in REPRESENTATIONS,
             f"one of {', '.join(REPRESENTATIONS)}"),
            ("units", self.units >= 1, ">= 1"),
            ("layers", 1 <= self.layers <= 4, "in 1..4"),
            ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("seq_len", self.seq_len >= 2, ">= 2"),
            ("steps_per_quarter", 1 <= self.steps_per_quarter <= 48, "in 1..48"),
            ("ticks_per_quarter", 1 <= self.ticks_per_quarter <= 48, "in 1..48"),
            ("max_step_ticks", 1 <= self.max_step_ticks <= 512, "in 1..512"),
            ("max_duration_ticks", 1 <= self.max_duration_ticks <= 512, "in 1..512"),
            ("velocity_bins", 0 <= self.velocity_bins <= 32, "in 0..32"),
            ("limit", self.limit is None or self.limit >= 3, ">= 3 or null"),
            ("tempo_bpm", 10.0 <= self.tempo_bpm <= 400.0, "in [10, 400]"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "> 0 or null"),
            ("weight_noise", 0.0 <= self.weight_noise <= 1.0, "in [0, 1]"),
            ("transpose", 0 <= self.transpose <= 12, "in 0..12"),
            ("patience", self.patience is None or self.patience >= 1, ">= 1 or null"),
            ("seed", self.seed >= 0, ">= 0"),
        ]  # fmt: skip
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if not self.cell.strip():
            raise ConfigError("config: cell must not be empty")
        if self.members and (self.cell != "ensemble" or self.representation != "roll"):
            raise ConfigError("config: members belong to a roll ensemble (cell 'ensemble')")
        if self.transpose and self.representation != "roll":
            raise ConfigError("config: transpose applies to representation 'roll' only")
