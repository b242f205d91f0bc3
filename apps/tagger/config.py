"""Configuration of the tagger app: one typed, frozen dataclass with three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (a BiLSTM on the generated
``builtin:teddy`` sentences, well under three minutes on two CPU cores), ``base`` is a real run
on a treebank or NER corpus (see ``benchmarks/tagger_ud.py``).
"""

from __future__ import annotations

import dataclasses

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

MODEL_CHOICES = (
    "bilstm",
    "lstm",
    "bigru",
    "gru",
    "mut1",
    "mut2",
    "mut3",
    "genotype:PATH.json",
    "bi<cell> (bivanilla, bimut1, bigenotype:PATH.json ...)",
)


# Changes to the ``base`` preset for part of speech (UD English-EWT UPOS on dev: 94.43 % ->
# 95.19 %; the same layers lowered WNUT-17 / Wikigold entity F1): ``train --size base --layers 2
# --char-filters 128 --char-kernel 5 --word-dropout 0.25 --min-count 1 --epochs 20``.
UPOS_RECIPE = {"layers": 2, "char_filters": 128, "char_kernel": 5, "word_dropout": 0.25,
               "min_count": 1, "epochs": 20}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TaggerConfig(AppConfig):
    """Everything needed to rebuild a tagger and its preprocessing.

    Args:
        data: ``--data`` source: ``builtin:teddy`` (generated), a CoNLL / CoNLL-U file or
            folder, or ``tfds:conll2003``.
        tags: ``auto`` (CoNLL-U -> ``upos``, otherwise ``ner``), ``ner``, ``upos`` or ``xpos``.
        model: recurrent cell: ``bilstm``, ``lstm``, ``bigru``, ``mut1..3``, ``genotype:PATH``…
        limit: keep at most this many sentences per split (``None``: all).
        generated: training sentences generated for ``builtin:teddy`` (validation and test get
            an eighth each).
        max_words: word vocabulary size (padding and ``[UNK]`` included).
        min_count: training occurrences a word needs to get its own vector.
        max_chars: characters kept per word (longer words keep their start and end).
        word_dim: word embedding width.
        char_dim: character embedding width (0: no character encoder).
        char_filters: character encoder output width.
        char_kernel: characters per convolution window.
        units: recurrent units per direction.
        layers: stacked recurrent layers (dropout between them).
        dropout: dropout before and after each recurrent layer.
        word_dropout: probability of replacing a training word by ``[UNK]``.
        epochs: training epochs.
        batch_size: sentences per batch.
        learning_rate: Adam learning rate.
        seed: seed for generated data, splits, shuffling and weights.
    """

    data: str = "builtin:teddy"
    tags: str = "auto"
    model: str = "bilstm"
    limit: int | None = None
    generated: int = 4000
    max_words: int = 20000
    min_count: int = 1
    max_chars: int = 20
    word_dim: int = 64
    char_dim: int = 24
    char_filters: int = 48
    char_kernel: int = 3
    units: int = 64
    layers: int = 1
    dropout: float = 0.25
    word_dropout: float = 0.05
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 1234

    @classmethod
    def tiny(cls) -> TaggerConfig:
        """Seconds: 300 generated sentences, one epoch, 16 units."""
        return cls(
            generated=300,
            max_words=2000,
            word_dim=16,
            char_dim=8,
            char_filters=16,
            units=16,
            epochs=1,
            batch_size=32,
            learning_rate=5e-3,
        )

    @classmethod
    def small(cls) -> TaggerConfig:
        """The main job: a BiLSTM on 4,000 generated sentences, 4 epochs."""
        return cls()

    @classmethod
    def base(cls) -> TaggerConfig:
        """A real corpus (UD English-EWT, WNUT-17): wider layers, more epochs.

        Part-of-speech tagging does better with two layers and a wider character CNN
        (:data:`UPOS_RECIPE`, ``benchmarks/tagger_ud.py``); NER did worse with those, so they
        are not part of this preset (numbers in benchmarks/RESULTS.md).
        """
        return cls(
            min_count=2,
            word_dim=100,
            char_dim=32,
            char_filters=64,
            units=128,
            dropout=0.33,
            word_dropout=0.1,
            epochs=12,
            batch_size=32,
            learning_rate=2e-3,
        )

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("tags", self.tags in ("auto", "ner", "upos", "xpos"), "auto, ner, upos or xpos"),
            ("limit", self.limit is None or self.limit >= 1, ">= 1 or null"),
            ("generated", self.generated >= 8, ">= 8"),
            ("max_words", self.max_words >= 3, ">= 3"),
            ("min_count", self.min_count >= 1, ">= 1"),
            ("max_chars", self.max_chars >= 2, ">= 2"),
            ("word_dim", self.word_dim >= 1, ">= 1"),
            ("char_dim", self.char_dim >= 0, ">= 0"),
            ("char_filters", self.char_filters >= 1, ">= 1"),
            ("char_kernel", self.char_kernel >= 1 and self.char_kernel % 2 == 1, "odd and >= 1"),
            ("units", self.units >= 1, ">= 1"),
            ("layers", self.layers >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("word_dropout", 0.0 <= self.word_dropout < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("seed", self.seed >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if not self.model.strip():
            raise ConfigError("config: model must not be empty")
