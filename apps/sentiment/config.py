"""Configuration of the sentiment app: one typed, frozen dataclass with three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (a BiLSTM on the builtin tweets in a
few minutes on two CPU cores), ``base`` is a full run.
"""

from __future__ import annotations

import dataclasses

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

BUILTIN_DATA = ("tweets",)
POOLINGS = ("last", "max")
MODEL_CHOICES = (
    "bow",
    "window",
    "vanilla",
    "lstm",
    "bilstm",
    "gru",
    "mut1",
    "mut2",
    "mut3",
    "genotype:PATH.json",
)


@dataclasses.dataclass(frozen=True)
class SentimentConfig(AppConfig):
    """Everything needed to rebuild a sentiment model and its preprocessing.

    Args:
        data: ``--data`` source: ``builtin:tweets``, ``tfds:imdb_reviews``, an IMDB CSV or
            aclImdb folder, or a Pang & Lee ``rt-polarity`` folder.
        model: ``bow``, ``window``, ``vanilla``, ``lstm``, ``bilstm``, ``gru``, ``mut1..3``
            or ``genotype:PATH.json``.
        limit: use at most this many examples per split (``None``: all).
        vocab_size: tokenizer size, padding and ``[UNK]`` included (the lecture's "dictionary
            size").
        max_length: tokens kept per text.
        embedding_dim: word-vector width (MUT1/MUT3 need ``embedding_dim == units``; the model
            projects when they differ).
        units: hidden size per direction.
        window: tokens per window for the ``window`` model.
        dropout: dropout rate before the classifier.
        embedding_dropout: recurrent models: rate of whole word vectors dropped in training.
        pooling: ``last`` (final state per direction) or ``max`` (max over the real steps of
            the recurrent outputs); ignored by ``bow`` and ``window``.
        epochs: training epochs.
        batch_size: examples per batch.
        learning_rate: Adam learning rate.
        seed: seed for splits, shuffling and weights.
    """

    data: str = "builtin:tweets"
    model: str = "bilstm"
    limit: int | None = None
    vocab_size: int = 10000
    max_length: int = 48
    embedding_dim: int = 64
    units: int = 64
    window: int = 3
    dropout: float = 0.2
    embedding_dropout: float = 0.0
    pooling: str = "last"
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 1234

    @classmethod
    def tiny(cls) -> SentimentConfig:
        """Seconds: a few hundred examples, one epoch, 16 units."""
        return cls(
            limit=300,
            vocab_size=2000,
            max_length=24,
            embedding_dim=16,
            units=16,
            epochs=1,
            batch_size=32,
            learning_rate=5e-3,
        )

    @classmethod
    def small(cls) -> SentimentConfig:
        """The main job: a BiLSTM on all builtin tweets, a few minutes on two cores."""
        return cls()

    @classmethod
    def base(cls) -> SentimentConfig:
        """The lecture's setting: dictionary ~16k words, hidden size 140."""
        return cls(
            vocab_size=16000,
            max_length=64,
            embedding_dim=128,
            units=140,
            epochs=8,
            batch_size=64,
            learning_rate=1e-3,
            dropout=0.3,
        )

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("limit", self.limit is None or self.limit >= 10, ">= 10 or null"),
            ("vocab_size", self.vocab_size >= 3, ">= 3"),
            ("max_length", self.max_length >= 1, ">= 1"),
            ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
            ("units", self.units >= 1, ">= 1"),
            ("window", self.window >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("embedding_dropout", 0.0 <= self.embedding_dropout < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("seed", self.seed >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"config: pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}"
            )
        if not self.model.strip():
            raise ConfigError("config: model must not be empty")
