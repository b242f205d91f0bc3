"""Configuration of the captioning app: one typed, frozen dataclass with three presets.

``tiny`` runs in seconds (tests), ``small`` is the main job (a from-scratch CNN encoder and an
attending LSTM decoder on ``builtin:digits`` in a few minutes on two CPU cores), ``base`` is a
larger run (the Flickr8k benchmark starts from it).
"""

from __future__ import annotations

import dataclasses

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

BUILTIN_DATA = ("digits",)
ENCODERS = ("cnn", "mobilenet_v3_small", "efficientnet_b0")
PRETRAINED_ENCODERS = ENCODERS[1:]


@dataclasses.dataclass(frozen=True)
class CaptioningConfig(AppConfig):
    """Everything needed to rebuild a captioning model and its preprocessing.

    Args:
        data: ``--data`` source: ``builtin:digits``, a Flickr8k folder or ``tfds:coco_captions``.
        encoder: ``cnn`` (a small CNN trained from scratch), ``mobilenet_v3_small`` or
            ``efficientnet_b0`` (``keras.applications``, ImageNet weights from
            ``encoder_weights``).
        encoder_weights: the local ImageNet weights file (no top) of a ``keras.applications``
            encoder; required for those encoders, unused by ``cnn``.
        fine_tune: train a ``keras.applications`` encoder too; when false it is frozen and its
            features are computed once and cached in ``DIR/checkpoints/features/``.
        cell: the decoder's recurrent cell (``vanilla|lstm|gru|mut1|mut2|mut3|genotype:PATH``).
        image_size: side of the square model input (``None``: the source's own size — 32 for
            ``builtin:digits``, 128 for photos).
        filters: channels of the first ``cnn`` block (doubled in the next blocks).
        embedding_dim: word-vector width.
        units: decoder hidden size.
        attention_units: size of the attention's scoring network (``None``: ``units``).
        dropout: dropout before the vocabulary layer.
        vocab_size: the most words kept (padding, ``[UNK]``, ``[START]``, ``[END]`` included).
        min_count: words seen fewer times in the training captions map to ``[UNK]``.
        max_length: the most words of a caption (training truncates, decoding stops there).
        scenes: ``builtin:digits`` training scenes (validation and test get a fifth each).
        limit: at most this many images per split of a folder / tfds source (``None``: all).
        epochs: training epochs.
        batch_size: (image, caption) pairs per batch.
        learning_rate: Adam learning rate.
        seed: seed for scenes, splits, shuffling and weights.
    """

    data: str = "builtin:digits"
    encoder: str = "cnn"
    encoder_weights: str | None = None
    fine_tune: bool = False
    cell: str = "lstm"
    image_size: int | None = None
    filters: int = 32
    embedding_dim: int = 32
    units: int = 96
    attention_units: int | None = 64
    dropout: float = 0.1
    vocab_size: int = 5000
    min_count: int = 1
    max_length: int = 16
    scenes: int = 16000
    limit: int | None = None
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 1234

    @classmethod
    def tiny(cls) -> CaptioningConfig:
        """Seconds: 240 scenes (or 12 images per split), one epoch, 16 units."""
        return cls(filters=8, embedding_dim=8, units=16, attention_units=8, scenes=240,
                   limit=12, epochs=1, batch_size=32, dropout=0.0)  # fmt: skip

    @classmethod
    def small(cls) -> CaptioningConfig:
        """The main job: builtin:digits, a few minutes on two cores."""
        return cls()

    @classmethod
    def base(cls) -> CaptioningConfig:
        """A larger run (Flickr8k): wider encoder and decoder, more epochs."""
        return cls(filters=32, embedding_dim=128, units=256, attention_units=128, dropout=0.3,
                   min_count=3, max_length=20, scenes=20000, epochs=15, batch_size=64,
                   learning_rate=1e-3)  # fmt: skip

    def validate(self) -> None:
        """Range checks (each error names the key)."""
        checks = [
            ("encoder", self.encoder in ENCODERS, f"one of {', '.join(ENCODERS)}"),
            ("image_size", self.image_size is None or 16 <= self.image_size <= 1024,
             "in [16, 1024] or null"),
            ("filters", self.filters >= 1, ">= 1"),
            ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
            ("units", self.units >= 1, ">= 1"),
            ("attention_units", self.attention_units is None or self.attention_units >= 1,
             ">= 1 or null"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("vocab_size", self.vocab_size >= 8, ">= 8"),
            ("min_count", self.min_count >= 1, ">= 1"),
            ("max_length", self.max_length >= 2, ">= 2"),
            ("scenes", self.scenes >= 20, ">= 20"),
            ("limit", self.limit is None or self.limit >= 2, ">= 2 or null"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("seed", self.seed >= 0, ">= 0"),
        ]  # fmt: skip
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"config: {key} must be {rule}, got {getattr(self, key)!r}")
        if not self.cell.strip():
            raise ConfigError("config: cell must not be empty")
        if self.encoder == "cnn" and self.image_size is not None and self.image_size < 16:
            raise ConfigError("config: image_size must be >= 16 for the cnn encoder")
        if self.encoder in PRETRAINED_ENCODERS and self.image_size is not None \
                and self.image_size < 32:  # fmt: skip
            raise ConfigError(
                f"config: image_size must be >= 32 for {self.encoder}, got {self.image_size}"
            )

    @property
    def frozen_encoder(self) -> bool:
        """Whether the encoder is a frozen ``keras.applications`` network (features cached)."""
        return self.encoder in PRETRAINED_ENCODERS and not self.fine_tune
