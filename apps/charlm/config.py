"""Configuration of the character-level language model: one typed, frozen dataclass, three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (an LSTM on ~1.5M characters of the
Python standard library in under five minutes on two CPU cores), ``base`` is the lecture-sized
run (a 2-layer LSTM of 512 units, Karpathy 2015's char-rnn setting).
"""

from __future__ import annotations

import dataclasses

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

BUILTIN_DATA = ("pysource",)
CELL_CHOICES = ("lstm", "gru", "vanilla", "mut1", "mut2", "mut3", "genotype:PATH.json")


@dataclasses.dataclass(frozen=True)
class CharLMConfig(AppConfig):
    """Everything needed to rebuild a character-level language model and its data.

    Args:
        data: ``--data`` source: ``builtin:pysource`` (the standard library's ``.py`` files),
            a UTF-8 text file, or ``tfds:tiny_shakespeare``.
        encoding: text encoding of a text-file source (``utf-8`` is read strictly).
        max_chars: use at most this many characters of the corpus (``None``: all).
        val_fraction: share of the corpus held out for validation (the end of a text file,
            every n-th file of ``builtin:pysource``).
        vocab_size: most distinct characters kept (the most frequent ones), the unknown
            character (id 0) included.
        cell: ``lstm``, ``gru``, ``vanilla``, ``mut1..3`` or ``genotype:PATH.json``.
        layers: stacked recurrent layers.
        units: hidden size of every layer.
        embedding_dim: character-embedding width (MUT1/MUT2 need it equal to ``units``; the
            model then uses ``units``).
        dropout: dropout between layers and before the output layer.
        bptt: characters per window of truncated backpropagation through time.
        batch_size: parallel contiguous streams the text is cut into (= rows per batch).
        epochs: passes over the training text.
        learning_rate: Adam learning rate.
        clipnorm: clip the global gradient norm to this value (``None`` or 0: no clipping).
        seed: seed for weights.
    """

    data: str = "builtin:pysource"
    encoding: str = "utf-8"
    max_chars: int | None = 1_500_000
    val_fraction: float = 0.1
    vocab_size: int = 128
    cell: str = "lstm"
    layers: int = 1
    units: int = 256
    embedding_dim: int = 32
    dropout: float = 0.0
    bptt: int = 64
    batch_size: int = 64
    epochs: int = 4
    learning_rate: float = 3e-3
    clipnorm: float | None = 5.0
    seed: int = 1234

    RESUMABLE = ("epochs",)

    @classmethod
    def tiny(cls) -> CharLMConfig:
        """Seconds: ~20k characters, 32 units, one epoch."""
        return cls(max_chars=20_000, units=32, embedding_dim=16, bptt=32, batch_size=8,
                   epochs=1, learning_rate=1e-2)  # fmt: skip

    @classmethod
    def small(cls) -> CharLMConfig:
        """The main job: an LSTM on ~1.5M characters of Python, under five minutes on two cores."""
        return cls()

    @classmethod
    def base(cls) -> CharLMConfig:
        """Karpathy's char-rnn setting: 2 layers of 512 LSTM units, windows of 100, dropout."""
        return cls(max_chars=None, layers=2, units=512, embedding_dim=64, dropout=0.25,
                   bptt=100, batch_size=64, epochs=30, learning_rate=2e-3)  # fmt: skip

    @property
    def clipping(self) -> float | None:
        """The gradient-norm clip value, or ``None`` when clipping is off."""
        return self.clipnorm if self.clipnorm else None

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("max_chars", self.max_chars is None or self.max_chars >= 100, ">= 100 or null"),
            ("val_fraction", 0.0 < self.val_fraction < 0.9, "in (0, 0.9)"),
            ("vocab_size", self.vocab_size >= 2, ">= 2"),
            ("layers", self.layers >= 1, ">= 1"),
            ("units", self.units >= 1, ">= 1"),
            ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("bptt", self.bptt >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("clipnorm", self.clipnorm is None or self.clipnorm >= 0, ">= 0 or null"),
            ("seed", self.seed >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if not self.cell.strip():
            raise ConfigError("config: cell must not be empty")
        if not self.encoding.strip():
            raise ConfigError("config: encoding must not be empty")
